"""Fixtures of the crash suite: a recording HTTP sink, private PostgreSQL databases, a private Redis,
and a private PostgreSQL cluster that a test may restart.

The ``durability`` marker is declared here (pyproject runs with ``--strict-markers``), so the
suite can be selected with ``-m durability`` or left out with ``-m "not durability"``.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import services_required
from tests.durability.harness import PrivateRedis, free_port
from tests.pgtools import fresh_postgres_database


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
    with fresh_postgres_database(postgres_server_url, "pw_crash") as url:
        yield url


def _missing(message: str) -> NoReturn:
    """Skip, or fail when services are required (``PATCHWIRE_REQUIRE_SERVICES=1``)."""
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def redis_server_binary() -> str:
    """``redis-server``, for tests that run a private server they may kill and wipe."""
    found = shutil.which("redis-server")
    if found is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
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


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``pg_ctl``, else the ones on PATH."""
    found = sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()),
                   key=lambda d: [int(x) for x in d.parent.name.split(".") if x.isdigit()])
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb``) on its own port, never the shared server: trust auth,
    127.0.0.1 only, its socket in its own directory, no fsync. Run as the ``postgres`` OS user when we
    are root (the server refuses to run as root)."""

    def __init__(self, bin_dir: Path, directory: Path, port: int) -> None:
        self.bin_dir, self.directory, self.port = bin_dir, directory, port
        self.data, self.log = directory / "data", directory / "server.log"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{tool} {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log_tail()}"

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """Start on the same data directory and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: every backend is killed at once, as in a crash (recovery runs on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started :class:`PrivatePostgres` (database ``postgres``) that the test may stop and start again;
    stopped and removed afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _missing("the PostgreSQL server binaries (initdb, pg_ctl) are not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
        _missing("running as root needs the `postgres` OS user and runuser to start a private PostgreSQL")
    directory = Path(tempfile.mkdtemp(prefix="pw_pg_"))  # not under tmp_path: the postgres user must reach it
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        server = PrivatePostgres(bin_dir, directory, free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
