"""The crash harness: real worker processes, killed with SIGKILL, and what the database says afterwards.

Nothing here fakes a backend: the workers are ``patchwire worker`` (PostgreSQL / Redis queue) or
``patchwire serve`` (embedded profile: web + in-process worker on the SQLite queue), started as
separate processes with the console script, and the test process only creates executions (through
``webapp.executions.services.start``: commit, then enqueue) and reads the rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.models import TERMINAL_STATUSES, Execution, ExecutionEvent, Node, NodeRun, Workflow

ROOT = Path(__file__).resolve().parents[2]
PATCHWIRE = str(Path(sys.executable).parent / "patchwire")
SERVICE_ENV = ("PATCHWIRE_HTTP_ALLOW_NETWORKS", "DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL", "PATCHWIRE_DATA_DIR", "PATCHWIRE_SECRET_KEY",
               "PATCHWIRE_WORKER_CONCURRENCY", "PATCHWIRE_EXECUTION_TIMEOUT", "PATCHWIRE_HOST", "PATCHWIRE_PORT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workflow_document(sink_url: str, first_delay: float = 0.05) -> dict[str, Any]:
    """Manual Trigger → Delay(``first_delay``) → HTTP Request (to the sink) → Delay(0.05) → Set."""
    def node(id_: str, type_: str, name: str, config: dict[str, Any], x: int) -> dict[str, Any]:
        return {"id": id_, "type": type_, "version": 1, "name": name, "config": config, "position": {"x": x, "y": 100}}

    nodes = [
        node("start", "manual_trigger", "Start", {}, 0),
        node("before", "delay", "Before", {"seconds": first_delay}, 200),
        node("call", "http_request", "Call", {"url": f"{sink_url}/hook", "method": "POST",
                                              "body": {"n": "{{ item.n }}"}, "timeout": 10}, 400),
        node("after", "delay", "After", {"seconds": 0.05}, 600),
        node("done", "set", "Done", {"fields": [{"name": "done", "value": "yes"}], "keep_existing": True}, 800),
    ]
    ids = [n["id"] for n in nodes]
    connections = [{"source": a, "source_port": "main", "target": b, "target_port": "main"}
                   for a, b in zip(ids, ids[1:], strict=False)]
    return {"format": "patchwire.workflow", "format_version": 1, "name": "Crash test",
            "nodes": nodes, "connections": connections}


# -- a deployment: environment, CLI, worker processes -------------------------------------------


@dataclass
class Deployment:
    """One profile's environment; ``worker_argv`` is rebuilt per start (``serve`` gets a new port)."""

    profile: str
    directory: Path
    database_url: str
    queue_url: str
    channels_url: str | None = None
    concurrency: int = 10
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
        env.update({
            "PATCHWIRE_DATA_DIR": str(self.directory / "data"), "DATABASE_URL": self.database_url,
            "QUEUE_URL": self.queue_url, "PATCHWIRE_SECRET_KEY": "crash-suite-secret-key-0123456789",
            "PATCHWIRE_WORKER_CONCURRENCY": str(self.concurrency), "PYTHONUNBUFFERED": "1",
            "PATCHWIRE_HTTP_ALLOW_NETWORKS": "127.0.0.0/8",  # the sink is on loopback
        })
        if self.channels_url:
            env["CHANNELS_URL"] = self.channels_url
        self.env = env

    @property
    def embedded(self) -> bool:
        return self.queue_url.startswith("sqlite")

    def worker_argv(self) -> tuple[list[str], str]:
        """The command and the log line that says it is ready to work."""
        if self.embedded:  # no `patchwire worker` on the embedded queue: `serve` runs the worker in-process
            return [PATCHWIRE, "serve", "--port", str(free_port())], "Application startup complete"
        return [PATCHWIRE, "worker"], "Patchwire worker "

    def cli(self, *args: str, stdin: str | None = None) -> Any:
        result = subprocess.run([PATCHWIRE, *args], cwd=self.directory, env=self.env, input=stdin,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"patchwire {' '.join(args)} failed: {result.stderr[-2000:]}"
        return json.loads(result.stdout)

    def prepare(self, sink_url: str, first_delay: float = 0.05) -> int:
        """Migrate, create the owner, import the workflow (all with the real CLI); the workflow id."""
        self.cli("migrate")
        self.cli("createuser", "crash@example.com", "--password-stdin", stdin="a long enough password\n")
        path = self.directory / "crash-workflow.json"
        path.write_text(json.dumps(workflow_document(sink_url, first_delay)))
        return int(self.cli("import", str(path), "--owner", "crash@example.com")["workflow_id"])


class WorkerProcess:
    """One life of a worker process; its output goes to ``<dir>/worker-<n>.log``."""

    def __init__(self, deployment: Deployment, life: int) -> None:
        argv, self.ready_marker = deployment.worker_argv()
        self.log_path = deployment.directory / f"worker-{life:02d}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in kill()/stop()
        self.started_at = time.time()
        self.proc = subprocess.Popen(argv, cwd=deployment.directory, env=deployment.env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.ready_at: float | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} before it was ready:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready after {timeout} s:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.02)
        self.ready_at = time.time()
        return self.ready_at

    def kill(self) -> float:
        """SIGKILL this process (by its own pid); the time just before the signal."""
        at = time.time()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()
        return at

    def stop(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait (graceful shutdown); SIGKILL if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()
        return self.proc.returncode


class PrivateRedis:
    """A throwaway ``redis-server`` on its own port (never the shared one), without persistence."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary, self.port, self.directory = binary, port, directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and poll (20 s at most) until it answers PING."""
        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (OSError, redis.ConnectionError):
                    pass
                assert self.proc.poll() is None, f"private redis-server exited with {self.proc.returncode}"
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)
        finally:
            client.close()

    async def flushall(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis(port=self.port)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)


# -- the database side ---------------------------------------------------------------------------


class Rows:
    """Read-only views of the deployment's database from the test process."""

    def __init__(self, database_url: str, **engine_options: Any) -> None:
        self.engine: AsyncEngine = make_engine(database_url, **engine_options)
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def node_ids(self, workflow_id: int) -> dict[str, str]:
        async with self.sessions() as db:
            rows = await db.execute(select(Node.name, Node.id).where(Node.workflow_id == workflow_id))
            return {name: node_id for name, node_id in rows.all()}

    async def workflow(self, db: AsyncSession, workflow_id: int) -> Workflow:
        return await db.get_one(Workflow, workflow_id)

    async def statuses(self, ids: list[int]) -> dict[int, str]:
        async with self.sessions() as db:
            rows = await db.execute(select(Execution.id, Execution.status).where(Execution.id.in_(ids)))
            return dict(rows.all())

    async def snapshot(self) -> tuple[set[int], set[tuple[int, str]]]:
        """Executions marked ``running`` and node runs marked ``running`` (what a kill interrupted)."""
        async with self.sessions() as db:
            running = set((await db.scalars(select(Execution.id).where(Execution.status == "running"))).all())
            nodes = (await db.execute(select(NodeRun.execution_id, NodeRun.node_id)
                                      .where(NodeRun.status == "running"))).all()
        return running, {(e, n) for e, n in nodes}

    async def executions(self, ids: list[int]) -> dict[int, Execution]:
        async with self.sessions() as db:
            return {e.id: e for e in (await db.scalars(select(Execution).where(Execution.id.in_(ids)))).all()}

    async def node_runs(self, ids: list[int]) -> list[NodeRun]:
        async with self.sessions() as db:
            return list((await db.scalars(select(NodeRun).where(NodeRun.execution_id.in_(ids)))).all())

    async def starts(self, ids: list[int]) -> dict[int, list[float]]:
        """Per execution, the ``at`` of every ``workflow.started`` event (one per attempt of the job)."""
        async with self.sessions() as db:
            rows = (await db.execute(select(ExecutionEvent.execution_id, ExecutionEvent.data)
                                     .where(ExecutionEvent.execution_id.in_(ids)))).all()
        found: dict[int, list[float]] = {}
        for execution_id, data in rows:
            if data.get("type") == "workflow.started":
                found.setdefault(execution_id, []).append(float(data["at"]))
        return {k: sorted(v) for k, v in found.items()}

    async def wait_started(self, ids: list[int], timeout: float) -> bool:
        """Poll until one of ``ids`` has left ``queued`` (a worker is running it); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(status != "queued" for status in (await self.statuses(ids)).values()):
                return True
            await asyncio.sleep(0.02)
        return False

    async def wait_terminal(self, ids: list[int], timeout: float) -> tuple[dict[int, str], float]:
        """Poll until every execution is final or ``timeout`` passes; the statuses and the time taken."""
        began = time.monotonic()
        while True:
            statuses = await self.statuses(ids)
            if all(statuses.get(i) in TERMINAL_STATUSES for i in ids) or time.monotonic() - began > timeout:
                return statuses, time.monotonic() - began
            await asyncio.sleep(0.25)


async def shut_down(workers: list[WorkerProcess], queue: Any, rows: Rows) -> None:
    """A test's cleanup: stop the workers still alive, then close its queue and database handles."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.stop()
    await queue.disconnect()
    await rows.close()


async def start_executions(rows: Rows, queue: Any, workflow_id: int, numbers: list[int]) -> list[int]:
    """``webapp.executions.services.start`` per execution: commit the row, then enqueue the job."""
    from nodes import registry
    from webapp.executions.services import start

    ids = []
    for n in numbers:
        async with rows.sessions() as db:
            execution = await start(db, queue, registry, await rows.workflow(db, workflow_id), input={"n": n},
                                    trigger="crash")
            ids.append(execution.id)
    return ids


# -- analysis ------------------------------------------------------------------------------------


@dataclass
class Kill:
    life: int
    at: float
    uptime: float
    """Seconds the worker had been ready when it was killed."""
    running: set[int]
    in_flight: set[tuple[int, str]]
    moment: str = "run"
    """``startup`` (while the new worker sweeps and claims) or ``run`` (while its batch runs)."""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0–100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def recovery_times(kills: list[Kill], starts: dict[int, list[float]]) -> list[float]:
    """Seconds from the first kill that interrupted a run to that run's next ``workflow.started``.

    Several kills before one resume count once, from the earliest (the outage began there).
    """
    samples = []
    for execution_id, times in starts.items():
        outage_began: dict[float, float] = {}
        for kill in kills:
            if execution_id not in kill.running:
                continue
            resumed = next((t for t in times if t > kill.at), None)
            if resumed is not None:
                outage_began[resumed] = min(outage_began.get(resumed, kill.at), kill.at)
        samples += [resumed - began for resumed, began in outage_began.items()]
    return samples


def duplicate_problems(by_key: dict[str, list[float]], kills: list[Kill], slack: float = 0.25) -> tuple[list[str], Counter[int]]:
    """Every repeat of an idempotency key must be explained by a kill while that node was in flight.

    A repeat at ``t2`` after a request at ``t1`` is explained by a kill ``k`` that found the node's row
    ``running`` with ``t1 - slack < k.at < t2`` (the sink timestamps a request when it reads it, which
    can be a moment after the sender died). A node in flight at two kills may legitimately be sent three
    times; the histogram of requests per key shows it. Returns the problems and that histogram.
    """
    problems, histogram = [], Counter()
    for key, times in by_key.items():
        histogram[len(times)] += 1
        try:
            execution_id, node_id = key.split(":", 1)
            target = (int(execution_id), node_id)
        except ValueError:
            problems.append(f"request without a valid Idempotency-Key: {key!r} ({len(times)}×)")
            continue
        in_flight = [k for k in kills if target in k.in_flight]
        for t1, t2 in zip(times, times[1:], strict=False):
            if not any(t1 - slack < k.at < t2 for k in in_flight):
                problems.append(f"key {key} sent again {t2 - t1:.2f} s later with no kill in between while the node "
                                f"was in flight (kills with it in flight: {[round(k.at - t1, 2) for k in in_flight]})")
    return problems, histogram


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
