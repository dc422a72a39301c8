"""Web tests: Litestar's test client against real SQLite and real PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from engine.settings import load_settings
from webapp.app import create_app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'web.db'}"
    return request.getfixturevalue("postgres_url")


LOOPBACK = "127.0.0.0/8"
"""The tests' fake services listen on loopback, which the SSRF guard refuses unless it is allowed."""


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``app_factory(**settings)``: a new app on this test's database; keyword arguments replace settings
    that the environment does not give (``preview_seconds=0.05``)."""
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}
    return lambda **settings: create_app(replace(load_settings(env), **settings))


class Browser:
    """A test client that behaves like a logged-in browser: cookies, CSRF header, htmx header."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.cookies = httpx.Cookies()

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        self.client.cookies = self.cookies  # several people share one app: each keeps its own cookies
        try:
            return getattr(self.client, method)(url, **kw)
        finally:
            self.cookies = httpx.Cookies(self.client.cookies)

    @property
    def csrf(self) -> str:
        if "csrftoken" not in self.cookies:
            self._call("get", "/login")
        return self.cookies["csrftoken"]

    def get(self, url: str, **kw: Any) -> Any:
        return self._call("get", url, **kw)

    def post(self, url: str, data: dict[str, Any] | None = None, htmx: bool = True, **kw: Any) -> Any:
        headers = {"x-csrftoken": self.csrf, **({"hx-request": "true"} if htmx else {}), **kw.pop("headers", {})}
        return self._call("post", url, data=data or {}, headers=headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self._call("delete", url, headers={"x-csrftoken": self.csrf, "hx-request": "true"}, **kw)

    def websocket(self, url: str, origin: str | None = "http://testserver.local") -> Any:
        self.client.cookies = self.cookies
        headers = {"origin": origin} if origin else {}
        return self.client.websocket_connect(url, headers=headers)

    def register(self, email: str, password: str = "correct horse battery") -> Any:
        response = self.post("/register", {"email": email, "password": password}, htmx=False, follow_redirects=False)
        assert response.status_code == 303, response.text
        return response

    def create_workflow(self, name: str = "Flow") -> int:
        response = self.post("/workflows/", {"name": name}, htmx=False, follow_redirects=False)
        assert response.status_code == 303, response.text
        return int(response.headers["location"].rsplit("/", 1)[1])

    def add_node(self, workflow_id: int, type_name: str, x: float = 0, y: float = 0) -> str:
        response = self.post(f"/workflows/{workflow_id}/nodes", {"type": type_name, "x": x, "y": y})
        assert response.status_code == 201, response.text
        return re.search(r'data-node-id="([0-9a-f]+)"', response.text).group(1)

    def connect(self, workflow_id: int, source: str, target: str, source_port: str = "main") -> Any:
        return self.post(f"/workflows/{workflow_id}/connections",
                         {"source": source, "target": target, "source_port": source_port, "target_port": "main"})

    def configure(self, workflow_id: int, node_id: str, data: dict[str, Any]) -> Any:
        return self.post(f"/workflows/{workflow_id}/nodes/{node_id}", data)

    def wait_for_execution(self, execution_id: int, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self.get(f"/executions/{execution_id}").text
            status = re.search(r'id="execution-status">(\w+)<', page).group(1)
            if status in ("succeeded", "failed", "crashed"):
                return status
            time.sleep(0.05)
        raise AssertionError(f"execution {execution_id} did not finish within {timeout} s")


@pytest.fixture
def client(app_factory: Callable[[], Any]) -> Iterator[TestClient[Any]]:
    with TestClient(app=app_factory()) as test_client:
        yield test_client


@pytest.fixture
def db_call(client: TestClient[Any]) -> Callable[..., Any]:
    """Run ``fn(db)`` on the app's own event loop and database; returns its result."""

    def call(fn: Callable[[Any], Any]) -> Any:
        async def run() -> Any:
            async with client.app.state.runtime.sessions() as db:
                return await fn(db)

        return client.blocking_portal.call(run)

    return call


@pytest.fixture
def browser(client: TestClient[Any]) -> Browser:
    return Browser(client)


@pytest.fixture
def second_browser(client: TestClient[Any]) -> Browser:
    """Another person on the same server (own cookies)."""
    return Browser(client)
