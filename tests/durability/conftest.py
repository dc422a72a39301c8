"""Fixtures of the crash suite: a recording HTTP sink, private PostgreSQL databases, a private Redis.

The ``durability`` marker is declared here (pyproject runs with ``--strict-markers``), so the
suite can be selected with ``-m durability`` or left out with ``-m "not durability"``.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import services_required
from tests.durability.harness import PrivateRedis, free_port


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "durability: crash tests that SIGKILL real worker processes (slow: about a minute per profile)")


@dataclass
class SinkRequest:
    key: str | None
    at: float
    """``time.time()`` when the request reached the sink (same clock as the workers' event ``at``)."""
    path: str


@dataclass
class Sink:
    """A loopback HTTP server (in a thread) that records every request's ``Idempotency-Key``."""

    url: str
    requests: list[SinkRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_key(self) -> dict[str, list[float]]:
        with self.lock:
            found: dict[str, list[float]] = {}
            for request in self.requests:
                found.setdefault(request.key or "", []).append(request.at)
        return {key: sorted(times) for key, times in found.items()}


@pytest.fixture
def crash_sink() -> Iterator[Sink]:
    """Answers every request with JSON after a random 0–150 ms, so kills sometimes land mid-request."""
    sink = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            with sink.lock:
                sink.requests.append(SinkRequest(self.headers.get("idempotency-key"), arrived, self.path))
            time.sleep(random.uniform(0.0, 0.15))
            payload = b'{"ok": true}'
            try:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the worker was killed while we waited: nobody reads the answer
                self.close_connection = True

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            return None  # a killed client resets its connection; that is the point of the test

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="crash-sink", daemon=True)
    thread.start()
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield sink
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def crash_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database ``pw_crash_<hex>`` on the shared server, dropped WITH (FORCE) afterwards."""
    import psycopg

    name = f"pw_crash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_server_binary() -> str:
    """``redis-server``, for tests that run a private server they may kill and wipe."""
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
def crash_redis_url(redis_server_binary: str, tmp_path: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free port: no other test run (or session) on this machine can take
    jobs from, or flush, the queue of a crash test — which a shared server's database number allows."""
    server = PrivateRedis(redis_server_binary, free_port(), tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.kill()
