"""End-to-end fixtures: a real Patchwire server (two profiles), Debian's Chromium, a loopback sink.

Profiles (the ``server`` fixture is parametrized, module scope):

* ``embedded``: one ``patchwire serve`` subprocess, SQLite database, embedded SQLite queue with
  the in-process worker, in-memory channels.
* ``postgres+redis``: a fresh PostgreSQL database (created here, dropped ``WITH (FORCE)`` at
  teardown), ``QUEUE_URL=redis://127.0.0.1:6379/14`` (flushed before and after), the web server
  and a separate ``patchwire worker`` subprocess with the same environment.

Missing Chromium, PostgreSQL or Redis skips the test with the reason, unless
``PATCHWIRE_REQUIRE_SERVICES=1``, in which case it fails (same rule as ``tests/conftest.py``).
Subprocess output goes to files under a temporary directory; it is printed when a test fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

# The provider fakes' fixtures (`fake_providers`, `fake_providers_server`), shared with tests/: tests/fakes/fixtures.py.
pytest_plugins = ["tests.fakes.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
PATCHWIRE = Path(sys.executable).with_name("patchwire")
CHROMIUM = os.environ.get("PATCHWIRE_E2E_CHROMIUM", "/usr/bin/chromium")
POSTGRES_URL = os.environ.get("PATCHWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER_URL = os.environ.get("PATCHWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
E2E_REDIS_DB = 14
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
READY_TIMEOUT = 40.0  # seconds for `patchwire serve` to migrate and answer /healthz
LOCK_TIMEOUT = 180.0  # seconds to wait for another e2e run that holds Redis db 14
ARTIFACTS = ROOT / "e2e" / "artifacts"  # screenshots and HTML of failed tests (git-ignored)
DOCS = ROOT / "docs"
DOCS_SHOTS = "PATCHWIRE_DOCS_SHOTS"  # =1 (`make docs-shots`): the tests' pictures replace the committed ones in docs/
STOP_TIMEOUT = 10.0


# --- parallel runs ---------------------------------------------------------------------------
E2E = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every browser test runs on one xdist worker, after one another, with the tests of ``tests/`` that
    publish on Redis pub/sub (group ``redis-pubsub``, tests/conftest.py): channel names are global to the
    Redis server, and the PostgreSQL + Redis profile's servers publish on the same ones."""
    for item in items:
        if E2E in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("redis-pubsub"))


# --- skip-or-fail ----------------------------------------------------------------------------
def services_required() -> bool:
    return os.environ.get("PATCHWIRE_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def unavailable(message: str) -> None:
    """Skip with ``message``, or fail when PATCHWIRE_REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"{message} and PATCHWIRE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str) -> None:
    if not _reachable(url):
        unavailable(f"{name} is not reachable at {url} (set PATCHWIRE_TEST_{name.upper()}_URL or start it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the Patchwire server ----------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no output file)"


@dataclass
class Server:
    profile: str
    url: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def logs(self) -> str:
        parts = []
        for proc in self.procs:
            status = proc.popen.poll()
            state = "running" if status is None else f"exited with {status}"
            parts.append(f"===== {proc.name} ({state}) — {proc.log} =====\n{proc.output()[-20000:]}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}\n{self.logs()}")


def _start(name: str, args: list[str], env: dict[str, str], workdir: Path, command: list[str] | None = None) -> Proc:
    """``patchwire <args>``, or ``<command> <args>`` (a module that wraps the CLI, run from the repository root)."""
    log = workdir / f"{name}.log"
    if command is not None:
        env = {**env, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        popen = subprocess.Popen([*(command or [str(PATCHWIRE)]), *args], cwd=workdir, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Proc(name, popen, log)


def _stop(proc: Proc) -> None:
    if proc.popen.poll() is not None:
        return
    proc.popen.send_signal(signal.SIGINT)  # uvicorn and the SAQ worker both shut down cleanly on SIGINT
    try:
        proc.popen.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.popen.kill()
        proc.popen.wait(STOP_TIMEOUT)


def _wait_healthy(server: Server, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as response:
                if response.status == 200 and json.loads(response.read()) == {"status": "ok"}:
                    return
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{server.url}/healthz did not answer in {READY_TIMEOUT:.0f} s ({last!r})\n{server.logs()}")


def _wait_for_line(server: Server, proc: Proc, text: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        server.check_alive()
        if text in proc.output():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not print {text!r} in time\n{server.logs()}")


def _exclusive(path: Path) -> Any:
    """Hold an flock on ``path`` (bounded wait); return the function that releases it."""
    handle = path.open("a")
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                pytest.fail(f"another e2e run kept {path} (Redis db {E2E_REDIS_DB}) for {LOCK_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def release() -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    return release


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL", "PATCHWIRE_HOST", "PATCHWIRE_PORT"}}
    env.update(PATCHWIRE_DATA_DIR=str(data_dir), PATCHWIRE_SECRET_KEY=uuid.uuid4().hex * 2,
               PYTHONUNBUFFERED="1", PATCHWIRE_WORKER_CONCURRENCY="4",
               PATCHWIRE_HTTP_ALLOW_NETWORKS="127.0.0.0/8")  # the fake services listen on loopback
    return env


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Settings a test module adds to its servers' environment (override it in the module, e.g. to point the
    OAuth providers' endpoints at a loopback fake started by a module fixture)."""
    return {}


@pytest.fixture(scope="module", params=["embedded", "postgres+redis"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           server_env: dict[str, str]) -> Iterator[Server]:
    profile: str = request.param
    # a test module may serve through a wrapper of the CLI (e.g. one that registers a test node type)
    command: list[str] | None = getattr(request.module, "PATCHWIRE_COMMAND", None)
    workdir = tmp_path_factory.mktemp(f"server-{profile.replace('+', '-')}")
    env = {**_base_env(workdir / "data"), **server_env}
    server = Server(profile, "", env)
    cleanups: list[Any] = []
    try:
        if profile == "postgres+redis":
            need_service("postgres", POSTGRES_URL)
            need_service("redis", REDIS_SERVER_URL)
            env.update(_postgres_redis(cleanups))
        port = free_port()
        server.url = f"http://127.0.0.1:{port}"
        server.procs.append(_start("web", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, workdir, command))
        deadline = time.monotonic() + READY_TIMEOUT
        _wait_healthy(server, deadline)  # `serve` migrates first, so the worker starts on a ready schema
        if profile != "embedded":
            worker = _start("worker", ["worker"], env, workdir, command)
            server.procs.append(worker)
            _wait_for_line(server, worker, "Patchwire worker", deadline)
        yield server
    finally:
        for proc in reversed(server.procs):
            _stop(proc)
        for cleanup in reversed(cleanups):
            cleanup()


def _postgres_redis(cleanups: list[Any]) -> dict[str, str]:
    """A fresh database and an empty Redis db; appends their cleanups; returns the env to add."""
    import psycopg
    import redis

    # Two e2e runs on one machine would flush each other's queue and their workers would take
    # each other's jobs (same queue name, same Redis db): take turns.
    cleanups.append(_exclusive(Path(f"/tmp/patchwire-e2e-redis-{E2E_REDIS_DB}.lock")))

    db_name = f"pw_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')

    def drop_database() -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    cleanups.append(drop_database)

    queue_url = REDIS_SERVER_URL.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}"
    client = redis.Redis.from_url(queue_url)

    def flush_redis() -> None:
        client.flushdb()
        client.close()

    cleanups.append(flush_redis)
    client.flushdb()
    return {"DATABASE_URL": f"{POSTGRES_URL.rsplit('/', 1)[0]}/{db_name}", "QUEUE_URL": queue_url}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _print_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "server" in request.fixturenames:
        server: Server = request.getfixturevalue("server")
        print(f"\n--- Patchwire output ({server.profile}) ---\n{server.logs()}", file=sys.stderr)


# --- pictures for the docs -------------------------------------------------------------------------
@pytest.fixture
def docs_shot() -> Any:
    """Where a test saves a picture that the docs show, by its file name in ``docs/``.

    A test run writes it under ``e2e/artifacts/shots/`` (git-ignored), so that ``make test`` leaves
    ``git status`` clean; ``make docs-shots`` sets ``PATCHWIRE_DOCS_SHOTS=1`` and the same tests then
    replace the committed pictures in ``docs/``."""

    def path(name: str) -> str:
        if os.environ.get(DOCS_SHOTS, "") in {"1", "true", "yes"}:
            return str(DOCS / name)
        folder = ARTIFACTS / "shots"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / name)

    return path


# --- the loopback HTTP sink ---------------------------------------------------------------------
@dataclass
class Sink:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True, "greeting": "hello from the sink"})
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)  # set = answer at once
    hold_limit: float = 20.0  # a held request is answered after this many seconds at the latest

    def __post_init__(self) -> None:
        self.gate.set()

    def hold(self) -> None:
        """Keep the next requests waiting (the calling node stays "running") until ``release()``."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture(scope="session")
def sink() -> Iterator[Sink]:
    """A JSON endpoint on 127.0.0.1 that records every request (method, path, headers, body)."""
    state = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state.lock:
                state.requests.append({"method": self.command, "path": self.path,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body.decode(errors="replace")})
                payload = json.dumps(state.body).encode()
            state.gate.wait(state.hold_limit)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="e2e-sink", daemon=True)
    thread.start()
    yield state
    state.release()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_sink(sink: Sink) -> Iterator[Sink]:
    with sink.lock:
        sink.requests.clear()
    sink.release()
    yield sink
    sink.release()


# --- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class PageErrors:
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A fresh context (no cookies) and page; JS errors and console errors are collected.

    When the test fails, a screenshot and the page's HTML are saved under ``e2e/artifacts/``.
    """
    context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
    # The node editor opens wide, under the canvas (static/js/node-editor.js); the tests written for the side
    # column keep it there. A test that wants it wide clicks its "Wide" button (e2e/test_node_editor_panes.py).
    context.add_init_script("if (!localStorage.getItem('patchwire.nodeEditor.layout')) "
                            "localStorage.setItem('patchwire.nodeEditor.layout', 'compact');")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: page_errors.page_errors.append(f"{exc.name}: {exc.message}\n{exc.stack}"))
    page.on("console", lambda msg: page_errors.console_errors.append(f"{msg.text} @ {msg.location}")
            if msg.type == "error" else None)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS / "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
        try:
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(page.content())
            print(f"\n--- failed at {page.url}; saved {stem}.png and {stem}.html", file=sys.stderr)
        except Exception as exc:  # the page may be gone; the test's own error matters more
            print(f"\n--- could not save the page: {exc!r}", file=sys.stderr)
        if page_errors.page_errors or page_errors.console_errors:
            print("--- browser errors:\n" + "\n".join(page_errors.page_errors + page_errors.console_errors),
                  file=sys.stderr)
    context.close()
