"""Shared fixtures: real PostgreSQL and Redis servers, found by URL.

Tests that need a service ask for the ``postgres_url`` / ``redis_url`` fixtures. When the
service does not answer they are skipped with the reason, unless
``PATCHWIRE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), in which case they fail.

Parallel runs (``make test``: pytest-xdist, ``--dist loadgroup``): each test gets its own PostgreSQL
database and each xdist worker its own Redis database, so most tests run on either worker. Two groups
stay on one worker each (:func:`xdist_group_of`): the crash suite, and every test whose processes
publish on Redis pub/sub — channels are global to a Redis server, not per database, so those tests
and the browser tests (whose PostgreSQL + Redis profile publishes on the same channel names) run one
after another.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine import eventloop
from tests.pgtools import fresh_postgres_database

# The provider fakes' fixtures (`fake_providers`, `fake_providers_server`): tests/fakes/fixtures.py.
pytest_plugins = ["tests.fakes.fixtures"]

TESTS = Path(__file__).resolve().parent
E2E_REDIS_DB = 14  # e2e/conftest.py's queue database: never a worker's
WORKER_REDIS_DBS = [db for db in range(15, -1, -1) if db != E2E_REDIS_DB]
POSTGRES_URL = os.environ.get("PATCHWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PATCHWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("PATCHWIRE_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str) -> None:
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if services_required():
        pytest.fail(f"{message} and PATCHWIRE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message} (set PATCHWIRE_TEST_{name.upper()}_URL or start it)")


@pytest.fixture(autouse=True)
def _no_browser_loop_in_the_way() -> Iterator[None]:
    """A test of ``tests/`` that follows a browser test on the same xdist worker starts with no event loop
    marked running. The browser tests' session-scoped Playwright (sync API) runs its loop in a greenlet of
    the main thread, and that leaves the thread's "running loop" set between its calls, so ``asyncio.run``
    (alembic's env.py, the CLI) and pytest-asyncio would refuse to start. Put back afterwards: Playwright's
    greenlet expects it when it is switched to again."""
    loop = asyncio.events._get_running_loop()
    if loop is None:
        yield
        return
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The admin URL of the PostgreSQL server (database ``postgres``)."""
    need_service("postgres", POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards (``postgresql://`` URL)."""
    with fresh_postgres_database(postgres_server_url, "pw_test") as url:
        yield url


def redis_db_of_this_worker() -> int:
    """15 for a run without xdist and for its first worker, then 13, 12, … (14 belongs to the e2e servers)."""
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    # Past 15 workers the numbers repeat: still safe, since the tests marked `redis` (every user of this
    # fixture) share one xdist group and so never run on two workers at once.
    return WORKER_REDIS_DBS[index % len(WORKER_REDIS_DBS)]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a database number that the test may flush (its own per xdist worker)."""
    need_service("redis", REDIS_URL)
    import redis

    url = REDIS_URL.rsplit("/", 1)[0] + f"/{redis_db_of_this_worker()}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def sink_server() -> Iterator[Any]:
    """A real HTTP server on loopback, recording requests: ``/ok`` JSON, ``/fail`` 500, ``/slow`` sleeps
    3 s, ``/flaky/N/…`` answers 503 to the first N requests of that path, ``/limited/…`` answers 429 with
    ``Retry-After: 1`` to the first request of that path."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body,
                             "at": time.monotonic()})
            if self.path.startswith("/slow"):
                time.sleep(3)
            seen = sum(1 for r in received if r["path"] == self.path)
            status = 500 if self.path.startswith("/fail") else 200
            if self.path.startswith("/flaky/") and seen <= int(self.path.split("/")[2]):
                status = 503
            if self.path.startswith("/limited/") and seen == 1:
                status = 429
            payload = json.dumps({"ok": status == 200, "greeting": "hello from the sink", "path": self.path}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if status == 429:
                self.send_header("retry-after", "1")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _reply

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.received = received  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def xdist_group_of(item: pytest.Item) -> str | None:
    """The xdist group that keeps a test of ``tests/`` on one worker with the others of its kind (or None)."""
    path = Path(str(item.path))
    if TESTS / "durability" in path.parents:
        return "durability"  # private servers and timing: one after another, as `make durability` runs them
    if item.get_closest_marker("redis") is not None:
        return "redis-pubsub"  # shared with the e2e tests (e2e/conftest.py)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if TESTS in Path(str(item.path)).parents and (group := xdist_group_of(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Async tests run on the loop Patchwire runs on (engine/eventloop.py), not asyncio's default."""
    return {"patchwire": eventloop.new_event_loop}
