"""The address browsers use: the WebSocket Origin must match its scheme, host and port; over HTTPS
(``PATCHWIRE_PUBLIC_URL=https://…``, TLS to the server, or a trusted proxy's ``X-Forwarded-Proto``) every
cookie is ``Secure`` and HSTS is sent; over plain HTTP neither, whatever an untrusted header claims."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from engine.settings import load_settings
from tests.webapp.conftest import LOOPBACK, Browser
from webapp.app import create_app

HSTS = "max-age=31536000; includeSubDomains"
CHANGED = "/ws/executions/changed"


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``serve(base_url, **env)``: a test client of an app made with these settings."""

    @contextmanager
    def start(base_url: str = "http://testserver.local", **env: str) -> Iterator[TestClient[Any]]:
        settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
                                  "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789",
                                  "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK, **env})
        with TestClient(app=create_app(settings), base_url=base_url) as client:
            yield client

    return start


def cookies_set(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def is_secure(cookie: str) -> bool:
    return "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}


def refused(browser: Browser, origin: str) -> bool:
    """Whether the logged-in browser's WebSocket with this ``Origin`` is refused (the session cookie is sent
    by hand: the test client would keep a ``Secure`` one to itself on its ``ws://`` URL)."""
    browser.client.cookies = httpx.Cookies()
    headers = {"origin": origin, "cookie": f"session={browser.cookies['session']}"}
    try:
        with browser.client.websocket_connect(CHANGED, headers=headers):
            return False
    except WebSocketDisconnect as closed:
        assert closed.code == 4403, closed
        return True


def test_the_websocket_origin_must_match_scheme_host_and_port(browser: Browser) -> None:
    browser.register("origins@example.com")
    assert not refused(browser, "http://testserver.local")
    assert not refused(browser, "http://TestServer.local:80")  # the same origin, spelled out
    for other in ("https://testserver.local", "http://testserver.local:8080", "https://testserver.local:80",
                  "ws://testserver.local", "http://testserver.local.evil.example"):
        assert refused(browser, other), other


def test_with_a_public_url_only_its_origin_is_accepted(serve: Callable[..., Any]) -> None:
    with serve("https://testserver.local", PATCHWIRE_PUBLIC_URL="https://patchwire.example") as client:
        browser = Browser(client)
        browser.register("public-origin@example.com")
        assert not refused(browser, "https://patchwire.example")
        assert not refused(browser, "https://patchwire.example:443")
        for other in ("https://testserver.local", "http://patchwire.example", "https://patchwire.example:8443"):
            assert refused(browser, other), other


def test_plain_http_sets_no_secure_cookie_and_no_hsts(browser: Browser) -> None:
    page = browser.get("/login", headers={"x-forwarded-proto": "https"})  # nobody is trusted to say so
    assert "strict-transport-security" not in page.headers
    assert not is_secure(cookies_set(page)["csrftoken"])
    registered = browser.register("plain@example.com")
    assert not is_secure(cookies_set(registered)["session"])
    assert "strict-transport-security" not in registered.headers


def test_an_https_public_url_makes_every_cookie_secure_and_sends_hsts(serve: Callable[..., Any]) -> None:
    """Behind a TLS-terminating proxy the request itself arrives as plain HTTP: the public URL decides."""
    with serve(PATCHWIRE_PUBLIC_URL="https://patchwire.example/") as client:
        assert client.get("/healthz").headers["strict-transport-security"] == HSTS
        page = client.get("/login")
        assert page.headers["strict-transport-security"] == HSTS
        token = cookies_set(page)["csrftoken"]
        assert is_secure(token)
        token = token.split(";", 1)[0].split("=", 1)[1]
        client.cookies.clear()  # a browser would not send a Secure cookie over http: send it by hand
        registered = client.post("/register", data={"email": "https@example.com", "password": "correct horse battery"},
                                 headers={"x-csrftoken": token, "cookie": f"csrftoken={token}"}, follow_redirects=False)
        assert registered.status_code == 303, registered.text
        assert is_secure(cookies_set(registered)["session"])
        assert registered.headers["strict-transport-security"] == HSTS


def test_a_request_over_tls_gets_secure_cookies_and_hsts(serve: Callable[..., Any]) -> None:
    with serve("https://testserver.local") as client:
        browser = Browser(client)
        registered = browser.register("tls@example.com")
        assert is_secure(cookies_set(registered)["session"]) and registered.headers["strict-transport-security"] == HSTS


# --- a real server on loopback: which proxy may say the request was HTTPS --------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def patchwire_serve(tmp_path: Path, **env: str) -> Iterator[str]:
    """``patchwire serve`` as a subprocess on a free loopback port; yields its base URL once /healthz answers."""
    port = free_port()
    data_dir = tmp_path / f"serve-{port}"
    environment = {**os.environ, "PATCHWIRE_DATA_DIR": str(data_dir), "PATCHWIRE_PORT": str(port),
                   "PATCHWIRE_LOG_LEVEL": "WARNING", **env}
    for inherited in ("DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL", "PATCHWIRE_PUBLIC_URL",
                      "PATCHWIRE_TRUSTED_PROXIES"):
        if inherited not in env:
            environment.pop(inherited, None)
    log = (tmp_path / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "webapp", "serve"], env=environment, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(tmp_path: Path, trusted: str) -> None:
    """Over real HTTP on loopback against ``patchwire serve`` (whose uvicorn would trust 127.0.0.1 by
    default): the proxy's headers change the scheme (Secure cookies, HSTS) and the client address
    (``/metrics`` answers loopback clients only) exactly when the proxy is listed in
    ``PATCHWIRE_TRUSTED_PROXIES``."""
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}
    with patchwire_serve(tmp_path, PATCHWIRE_TRUSTED_PROXIES=trusted) as url:
        page = httpx.get(f"{url}/login", headers=forwarded)
        missing = httpx.get(f"{url}/no-such-page", headers=forwarded)
        metrics = httpx.get(f"{url}/metrics", headers=forwarded)
    assert page.status_code == 200 and missing.status_code == 404
    assert is_secure(cookies_set(page)["csrftoken"]) is bool(trusted)
    assert ("strict-transport-security" in page.headers) is bool(trusted)
    assert ("strict-transport-security" in missing.headers) is bool(trusted)  # every response, routed or not
    assert metrics.status_code == (403 if trusted else 200)
