"""A new user's first start, through the real ``patchwire`` command in a subprocess.

``serve`` prints one plain line with the address to open (and, while there is no user, where to create
the first account); its logs are readable lines on a terminal and JSON lines otherwise; Ctrl-C or SIGTERM
(of ``serve`` and of a separate ``worker``) ends it with status 0 and without a warning or a traceback.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import pytest

START_TIMEOUT = 60.0  # seconds for `serve` to migrate and listen on a busy machine
STOP_TIMEOUT = 40.0  # seconds for a stop: a separate worker gives a running job its 25 s grace period

DELAY_WORKFLOW = {
    "name": "Busy at shutdown",
    "nodes": [{"id": "t", "type": "manual_trigger", "name": "Start"},
              {"id": "d", "type": "delay", "name": "Work", "config": {"seconds": 60}}],
    "connections": [{"source": "t", "target": "d"}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded profile in a fresh data directory, JSON logs (stderr is a pipe here)."""
    env = {**os.environ, "PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "PATCHWIRE_LOG_FORMAT": "json"}
    for key in ("DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL", "PATCHWIRE_HOST", "PATCHWIRE_PORT"):
        env.pop(key, None)
    return env


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    done = subprocess.run([sys.executable, "-m", "webapp", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Running:
    """A ``patchwire`` subprocess whose stdout is read line by line and whose stderr goes to a file."""

    def __init__(self, env: dict[str, str], args: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.popen = subprocess.Popen([sys.executable, "-m", "webapp", *args], env=env, stdout=subprocess.PIPE,
                                          stderr=stderr, stdin=subprocess.DEVNULL, text=True)

    def read_line_with(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The first stdout line containing ``text`` (fails when the process ends or the time is up)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.popen.stdout], [], [], left)
            if not ready:
                break
            line = self.popen.stdout.readline()
            if not line:
                pytest.fail(f"exited with {self.popen.wait()} before printing {text!r}:\n{self.stderr()}")
            if text in line:
                return line.rstrip("\n")
        pytest.fail(f"no line with {text!r} in {timeout:.0f} s:\n{self.stderr()}")

    def stop(self, signum: int) -> int:
        self.popen.send_signal(signum)
        try:
            return self.popen.wait(STOP_TIMEOUT)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start_process(*args: str, extra_env: dict[str, str] | None = None) -> Running:
        process = Running({**env, **(extra_env or {})}, list(args), tmp_path / f"stderr-{len(started)}.txt")
        started.append(process)
        return process

    yield start_process
    for process in started:
        process.kill()


def assert_quiet(stderr: str) -> None:
    """Only INFO (or DEBUG) JSON records: no warning, no error, no traceback, nothing unformatted."""
    for line in stderr.splitlines():
        record = json.loads(line)  # a bare traceback or warnings.warn line is not JSON
        assert record["level"] in {"DEBUG", "INFO"}, line
        assert "exc_info" not in record, line


def test_serve_says_where_to_go_and_where_to_register(env: dict[str, str], start: Callable[..., Running]) -> None:
    port = free_port()
    server = start("serve", "--host", "127.0.0.1", "--port", str(port))
    line = server.read_line_with("Patchwire is running at")
    assert line == (f"Patchwire is running at http://127.0.0.1:{port}/ — create the first account at "
                    f"http://127.0.0.1:{port}/register")
    assert server.stop(signal.SIGINT) == 0

    cli(env, "createuser", "first@example.com", "--password-stdin", stdin="a long password\n")
    server = start("serve", "--host", "127.0.0.1", "--port", str(port))
    assert server.read_line_with("Patchwire is running at") == f"Patchwire is running at http://127.0.0.1:{port}/"
    assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_quietly_when_idle(signum: int, start: Callable[..., Running]) -> None:
    server = start("serve", "--port", str(free_port()))
    server.read_line_with("Patchwire is running at")
    assert server.stop(signum) == 0, server.stderr()
    assert_quiet(server.stderr())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_quietly_with_an_execution_running(signum: int, env: dict[str, str], tmp_path: Path,
                                                       start: Callable[..., Running]) -> None:
    cli(env, "createuser", "busy@example.com", "--password-stdin", stdin="a long password\n")
    (tmp_path / "busy.json").write_text(json.dumps(DELAY_WORKFLOW))
    workflow_id = cli(env, "import", str(tmp_path / "busy.json"), "--owner", "busy@example.com")["workflow_id"]
    execution_id = cli(env, "run", str(workflow_id))["execution_id"]
    server = start("serve", "--port", str(free_port()))
    server.read_line_with("Patchwire is running at")
    wait_for_node(env, execution_id, "Work", "running")
    assert server.stop(signum) == 0, server.stderr()
    assert_quiet(server.stderr())
    assert cli(env, "executions", "show", str(execution_id), "--json")["status"] not in {"failed", "crashed"}


def wait_for_node(env: dict[str, str], execution_id: int, name: str, status: str) -> None:
    """Poll the embedded database (read-only) until the node run has ``status``."""
    database = Path(env["PATCHWIRE_DATA_DIR"]) / "patchwire.db"
    query = "SELECT 1 FROM node_runs WHERE execution_id = ? AND node_name = ? AND status = ?"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            if db.execute(query, (execution_id, name, status)).fetchone():
                return
        time.sleep(0.1)  # a poll interval: the loop waits for the row above, not for time
    pytest.fail(f"node {name!r} of execution {execution_id} was not {status} in {START_TIMEOUT:.0f} s")


@pytest.mark.postgres
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_worker_stops_quietly(signum: int, env: dict[str, str], postgres_url: str,
                              start: Callable[..., Running]) -> None:
    services = {"DATABASE_URL": postgres_url, "QUEUE_URL": postgres_url}
    cli({**env, **services}, "migrate")  # as a deployment does before it starts workers
    worker = start("worker", extra_env=services)
    worker.read_line_with("Patchwire worker")
    assert worker.stop(signum) == 0, worker.stderr()
    assert_quiet(worker.stderr())


# --- the log format ------------------------------------------------------------------------------
def run_with_stderr(env: dict[str, str], args: list[str], terminal: bool) -> str:
    """Run ``patchwire <args>`` with its stderr on a pseudo-terminal (or a pipe); return what it wrote there."""
    if not terminal:
        done = subprocess.run([sys.executable, "-m", "webapp", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr
    controller, terminal_fd = pty.openpty()
    with os.fdopen(controller, "rb", buffering=0) as reader:
        done = subprocess.Popen([sys.executable, "-m", "webapp", *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=terminal_fd, stdin=subprocess.DEVNULL)
        os.close(terminal_fd)
        output = read_until_closed(reader)
        assert done.wait(120) == 0, output
    return output.replace("\r\n", "\n")


def read_until_closed(reader: IO[bytes]) -> str:
    chunks = []
    while True:
        try:
            chunk = reader.read(65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize(("setting", "terminal", "expect_json"), [
    ("auto", True, False), ("auto", False, True), ("text", False, False), ("json", True, True),
], ids=["terminal", "pipe", "text-forced", "json-forced"])
def test_log_format_follows_the_terminal_unless_set(env: dict[str, str], setting: str, terminal: bool,
                                                    expect_json: bool) -> None:
    stderr = run_with_stderr({**env, "PATCHWIRE_LOG_FORMAT": setting}, ["migrate"], terminal)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "migrate logs the migrations it runs"
    for line in lines:
        if expect_json:
            assert json.loads(line)["level"] == "INFO", line
        else:
            assert not line.startswith("{") and " INFO " in line, line
