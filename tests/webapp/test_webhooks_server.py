"""The webhook route on a real server (``patchwire serve``, real sockets): a body over the limit gets 413 before
it is read whole — announced by Content-Length, or streamed in chunks — and the last node's answer travels
between processes on the PostgreSQL + Redis profile (web + one worker)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_observability import PATCHWIRE, fetch, free_port, wait_until
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import WEBHOOK_DEFAULTS

LIMIT = 4096


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``patchwire serve`` (embedded: with its in-process worker; redis: PostgreSQL + Redis and a separate
    ``patchwire worker``) with a webhook body limit of ``LIMIT`` bytes; its base URL."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PATCHWIRE_DATA_DIR": str(tmp_path / "data"),
           "PATCHWIRE_SECRET_KEY": "k" * 40, "PATCHWIRE_WEBHOOK_MAX_BODY": str(LIMIT), "PATCHWIRE_LOG_FORMAT": "text"}
    if request.param == "redis":
        postgres, redis = request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")
        env.update({"DATABASE_URL": postgres, "QUEUE_URL": redis, "REDIS_URL": redis})
    port = free_port()
    logs = tmp_path / "web.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with logs.open("wb") as out:
            procs.append(subprocess.Popen([str(PATCHWIRE), "serve", "--port", str(port)], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=tmp_path))
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: fetch(f"{base}/healthz")[0] == 200, "web server", procs)
            if request.param == "redis":
                procs.append(subprocess.Popen([str(PATCHWIRE), "worker"], env=env, stdout=out,
                                              stderr=subprocess.STDOUT, cwd=tmp_path))
            yield base
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if logs.exists():
            print(logs.read_text(errors="replace")[-4000:], file=sys.stderr)


def webhook(base: str) -> str:
    """Register, build Webhook → Set (last node answers), activate; the webhook's path."""
    with httpx.Client(base_url=base, timeout=30) as client:
        browser = Browser(client)  # type: ignore[arg-type]
        browser.register("server-hook@example.com")
        wid = browser.create_workflow("Served")
        hook = browser.add_node(wid, "webhook_trigger")
        step = browser.add_node(wid, "set", x=200)
        browser.connect(wid, hook, step)
        assert browser.configure(wid, hook, {**WEBHOOK_DEFAULTS, "path": "served"}).status_code == 200
        assert browser.configure(wid, step, {"name": "Greet", "fields.name": ["greeting"],
                                             "fields.value": ["hi {{ item.body.name }}"], "keep_existing": ""}
                                 ).status_code == 200
        assert browser.post(f"/workflows/{wid}/activate").status_code == 200
    return "/webhook/served"


def raw_exchange(base: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send ``head`` then the parts (stopping when the server has answered and closed); the answer's first line."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        answer = b""
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
        return answer.split(b"\r\n", 1)[0]


def test_a_body_over_the_limit_is_413_before_it_is_read_whole(server: str) -> None:
    path = webhook(server)
    ok = httpx.post(server + path, json={"name": "Ada"}, timeout=30)
    assert (ok.status_code, ok.json()) == (200, {"greeting": "hi Ada"})  # the last node's answer, across processes
    # announced: 10 MB, of which only 100 bytes are ever sent — the answer comes without the rest
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10_000_000}\r\n\r\n").encode()
    assert raw_exchange(server, head, [b"{" * 100]).startswith(b"HTTP/1.1 413")
    # streamed without a length: refused once past the limit, long before the sender is done
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"%x\r\n%s\r\n" % (1024, b"a" * 1024)
    assert raw_exchange(server, head, [chunk] * 8).startswith(b"HTTP/1.1 413")
    just_under = httpx.post(server + path, content=b'{"name": "' + b"b" * (LIMIT - 20) + b'"}',
                            headers={"content-type": "application/json"}, timeout=30)
    assert just_under.status_code == 200

