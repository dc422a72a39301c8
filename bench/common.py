"""Shared harness for the benchmarks in bench/ (not a test module: nothing here asserts timings).

A *profile* is set up from scratch for each benchmark run and torn down afterwards:

| profile | database | queue | events | worker (default) |
| --- | --- | --- | --- | --- |
| embedded | SQLite file in a temp dir | ``SQLiteQueue`` file in the same dir | in-memory callback | in-process, on the benchmark's event loop (as ``patchwire serve`` does) |
| postgres | PostgreSQL database ``pw_bench_<bench>_<pid>`` | SAQ ``PostgresQueue`` in that database | ``pg_notify`` | a separate ``patchwire worker`` process |
| redis | the same kind of PostgreSQL database | SAQ ``RedisQueue`` on Redis db 13 | Redis ``PUBLISH`` | a separate ``patchwire worker`` process |

``--worker inproc`` runs the worker of the postgres / redis profiles in-process as well (what
``tests/webapp/test_profiles.py`` does); that is also the mode to use under ``python -m cProfile``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker  # noqa: E402

from engine.changes import ExecutionChange  # noqa: E402
from engine.database import make_engine, make_sessionmaker  # noqa: E402
from engine.graph import ConnectionSpec, NodeSpec, Position, WorkflowDocument  # noqa: E402
from engine.migrate import upgrade  # noqa: E402
from engine.models import TERMINAL_STATUSES, Execution, NodeRun, User, Workflow  # noqa: E402
from engine.publisher import LocalSink, SafeSink, sink_from_url  # noqa: E402
from engine.queue import queue_from_url  # noqa: E402
from engine.settings import Settings, load_settings  # noqa: E402
from engine.worker import WorkerServices, build_worker  # noqa: E402
from nodes import registry  # noqa: E402

PROFILES = ("embedded", "postgres", "redis")
PG_ADMIN_URL = os.environ.get("PW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
RESULTS_DIR = ROOT / "bench" / "results"
PATCHWIRE = str(Path(sys.executable).with_name("patchwire"))
LOAD_AT_START = os.getloadavg()


# -- command line ------------------------------------------------------------------------------

def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", default="all", type=_profiles_arg,
                        help="embedded, postgres, redis, a comma-separated list of them, or all (default)")
    parser.add_argument("--worker", choices=["default", "inproc", "process"], default="default",
                        help="where the SAQ worker runs: in-process on the benchmark's loop, or as a separate "
                             "`patchwire worker` process (postgres/redis only); default: embedded in-process, "
                             "postgres/redis separate process")
    parser.add_argument("--log-level", default="INFO",
                        help="logging level of the benchmark process (the `patchwire` CLI uses INFO); "
                             "logs go to a file in the temp dir, never to the terminal")
    parser.add_argument("--worker-cprofile", metavar="PATH",
                        help="with a separate worker process: run it under cProfile and write the stats to "
                             "PATH.<profile>.<run>.prof")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<name>.json")
    return parser


def _profiles_arg(value: str) -> str:
    selected_profiles(value)
    return value


def selected_profiles(arg: str) -> list[str]:
    if arg == "all":
        return list(PROFILES)
    names = [n.strip() for n in arg.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown profile(s) {unknown}: use {', '.join(PROFILES)} or all")
    return names


def worker_mode(profile: str, arg: str) -> str:
    if profile == "embedded":
        if arg == "process":
            raise SystemExit("the embedded profile has no separate worker process (`patchwire worker` refuses "
                             "the SQLite queue); use --worker inproc")
        return "inproc"
    return "process" if arg == "default" else arg


# -- machine -----------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def git_state() -> dict[str, Any]:
    """The commit measured (others may be editing the tree: ``dirty`` lists changed files)."""
    def run(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [line[3:] for line in run("status", "--porcelain").splitlines()
             if line[3:].startswith(("engine/", "nodes/", "webapp/"))]
    return {"commit": run("rev-parse", "--short", "HEAD"), "dirty": dirty}


# -- memory ------------------------------------------------------------------------------------

def peak_rss_mib(pid: int | None = None) -> float:
    """VmHWM (peak resident set) of ``pid`` (default: this process) in MiB."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return float("nan")


def reset_peak_rss(pid: int | None = None) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5), so each run reports its own peak."""
    try:
        Path(f"/proc/{pid or 'self'}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of ``pid`` (default: this process, all threads) so far."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_busy_cores(before: tuple[float, float], after: tuple[float, float]) -> float:
    """How many of the machine's cores were busy on average between two ``machine_cpu()`` samples
    (everything: the worker, the databases, this process, and whatever else runs)."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total * (os.cpu_count() or 1) if total else float("nan")


# -- profiles ----------------------------------------------------------------------------------

@dataclass
class ProfileEnv:
    profile: str
    env: dict[str, str]
    settings: Settings
    data_dir: Path


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def profile_env(profile: str, bench: str, concurrency: int = 10) -> Iterator[ProfileEnv]:
    """A fresh, migrated deployment of ``profile``; everything is removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"pw_bench_{bench}_{profile}_"))
    env = {"PATCHWIRE_DATA_DIR": str(data_dir), "PATCHWIRE_SECRET_KEY": "b" * 48, "PATCHWIRE_HTTP_ALLOW_NETWORKS": "127.0.0.0/8",
           "PATCHWIRE_WORKER_CONCURRENCY": str(concurrency)}
    dbname = f"pw_bench_{bench}_{profile}_{os.getpid()}"
    created_db = False
    try:
        if profile != "embedded":
            _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{dbname}"')
            created_db = True
            env["DATABASE_URL"] = _pg_url(dbname)
            if profile == "postgres":
                env["QUEUE_URL"] = env["DATABASE_URL"]
            else:
                _flush_redis()
                env["QUEUE_URL"] = env["REDIS_URL"] = REDIS_URL
        settings = load_settings(env)
        assert settings.profile == profile, (settings.profile, profile)
        with ThreadPoolExecutor(1) as pool:  # Alembic's env.py runs its own event loop
            pool.submit(upgrade, settings.database_url).result()
        yield ProfileEnv(profile, env, settings, data_dir)
    finally:
        if profile == "redis":
            _flush_redis()
        if created_db:
            _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def configure_logging(level: str, path: Path) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


# -- the stack: database, queue, worker ---------------------------------------------------------

@dataclass
class Stack:
    """The producer side (engine, sessions, queue) and one worker, in-process or a subprocess."""

    penv: ProfileEnv
    mode: str
    concurrency: int
    worker_cprofile: str | None = None
    label: str = "run"
    patches: tuple[str, ...] = ()
    """bench/patches.py names for a separate worker process (bench/patched_worker.py); an in-process
    worker gets whatever the caller applied to this process."""
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    queue: Any = field(init=False)
    _worker: Any = None
    _worker_task: asyncio.Task[Any] | None = None
    _worker_queue: Any = None
    _worker_engine: AsyncEngine | None = None
    _sink: Any = None
    _http: httpx.AsyncClient | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        return self.penv.settings

    async def __aenter__(self) -> Stack:
        self.engine = make_engine(self.settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.queue = queue_from_url(self.settings.queue_url)
        await self.queue.connect()
        if self.mode == "inproc":
            await self._start_inproc()
        else:
            self._start_process()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._worker is not None:
            await self._worker.stop()
            if self._worker_task is not None:
                await asyncio.gather(self._worker_task, return_exceptions=True)
        if self._proc is not None:
            self._stop_process()
        if self._sink is not None:
            await self._sink.close()
        if self._http is not None:
            await self._http.aclose()
        if self._worker_queue is not None and self._worker_queue is not self.queue:
            await self._worker_queue.disconnect()
        if self._worker_engine is not None:
            await self._worker_engine.dispose()
        await self.queue.disconnect()
        await self.engine.dispose()

    async def _start_inproc(self) -> None:
        """As ``webapp.runtime`` (embedded: one queue and engine shared with the producer side) and
        ``webapp.worker.run_worker`` (postgres/redis: the worker's own engine, queue and sink)."""
        self._http = httpx.AsyncClient(follow_redirects=False)
        if self.settings.embedded_queue:
            # as the web process's: changes to the hub as they are, events encoded for the channels
            self._sink = SafeSink(LocalSink(lambda message: None if isinstance(message, ExecutionChange)
                                            else message.to_json()))
            self._worker_queue, sessions = self.queue, self.sessions
        else:
            self._sink = sink_from_url(self.settings.channels_url)
            self._worker_engine = make_engine(self.settings.database_url)
            sessions = make_sessionmaker(self._worker_engine)
            self._worker_queue = queue_from_url(self.settings.queue_url)
            await self._worker_queue.connect()
        services = WorkerServices(sessions=sessions, sink=self._sink, registry=registry, http=self._http,
                                  execution_timeout=self.settings.execution_timeout)
        self._worker = build_worker(self._worker_queue, services, concurrency=self.concurrency, in_process=True)
        self._worker_task = asyncio.create_task(self._worker.start())
        while not self._worker.tasks:  # SAQ's stop() before start() ran would be lost (start makes a new Event)
            if self._worker_task.done():
                self._worker_task.result()
            await asyncio.sleep(0.001)

    def _start_process(self) -> None:
        env = {**os.environ, **self.penv.env, "PATCHWIRE_WORKER_CONCURRENCY": str(self.concurrency)}
        for key in ("CHANNELS_URL",):
            env.pop(key, None)
        if "REDIS_URL" not in self.penv.env:
            env.pop("REDIS_URL", None)
        argv = [PATCHWIRE, "worker"]
        if self.patches:
            argv = [str(ROOT / "bench" / "patched_worker.py"), "--patch", ",".join(self.patches)]
        if self.worker_cprofile:
            out = f"{self.worker_cprofile}.{self.penv.profile}.{self.label}.prof"
            argv = [sys.executable, "-m", "cProfile", "-o", out, *argv]
        elif self.patches:
            argv = [sys.executable, *argv]
        log = open(self.penv.data_dir / f"worker-{self.label}.log", "ab")  # noqa: SIM115
        self._proc = subprocess.Popen(argv, env=env, cwd=self.penv.data_dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _stop_process(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is None:
            # SIGTERM: SAQ stops gracefully, but an idle worker only returns after its upkeep sleeps
            # (up to 10 s) end. Nothing is in flight here, so after a short wait we kill it — except
            # under cProfile, which writes its stats only on a normal exit.
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30 if self.worker_cprofile else 2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    @property
    def worker_pid(self) -> int | None:
        """The process whose RSS is the worker's: the subprocess, or this process when in-process."""
        if self._proc is not None:
            return self._proc.pid
        return None

    def check_worker_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            log = (self.penv.data_dir / f"worker-{self.label}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker process exited with {self._proc.returncode}:\n{log}")


# -- rows --------------------------------------------------------------------------------------

async def create_owner(sessions: async_sessionmaker[AsyncSession], email: str = "bench@example.com") -> int:
    async with sessions.begin() as db:
        existing = await db.scalar(select(User).where(User.email == email))
        if existing is not None:
            return existing.id
        user = User(email=email, password_hash="not-a-real-hash")
        db.add(user)
        await db.flush()
        return user.id


async def import_workflow(sessions: async_sessionmaker[AsyncSession], owner_id: int,
                          document: WorkflowDocument) -> Workflow:
    from webapp.workflows.services import WorkflowService

    async with sessions() as db:
        workflow = await WorkflowService(db, owner_id, registry).import_document(document)
        return workflow


def chain_document(name: str, steps: list[tuple[str, str, dict[str, Any]]]) -> WorkflowDocument:
    """Manual Trigger → steps[0] → steps[1] → …; each step is (type, name, config)."""
    nodes = [NodeSpec(id="trigger", type="manual_trigger", name="Trigger", position=Position(0, 0))]
    for i, (type_, name_, config) in enumerate(steps, 1):
        nodes.append(NodeSpec(id=f"n{i}", type=type_, name=name_, config=config, position=Position(200.0 * i, 0)))
    connections = [ConnectionSpec(source=a.id, target=b.id) for a, b in zip(nodes, nodes[1:], strict=False)]
    return WorkflowDocument(name=name, nodes=nodes, connections=connections)


async def wait_terminal(stack: Stack, ids: list[int], *, timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with stack.sessions() as db:
            done = await db.scalar(select(func.count()).select_from(Execution).where(
                Execution.id.in_(ids), Execution.status.in_(TERMINAL_STATUSES)))
        if done == len(ids):
            return
        stack.check_worker_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - done} of {len(ids)} executions not finished after {timeout:g} s")
        await asyncio.sleep(poll)


async def executions(stack: Stack, ids: list[int]) -> list[Execution]:
    async with stack.sessions() as db:
        return list(await db.scalars(select(Execution).where(Execution.id.in_(ids)).order_by(Execution.id)))


async def node_runs(stack: Stack, execution_id: int) -> list[NodeRun]:
    async with stack.sessions() as db:
        return list(await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)
                                     .order_by(NodeRun.started_at, NodeRun.id)))


def ts(value: datetime) -> float:
    return value.astimezone(UTC).timestamp()


# -- output ------------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = "\n".join(" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells)
    return f"{line}\n{sep}\n{body}"


def show_and_save(name: str, results: dict[str, Any], text: str, *, save: bool,
                  extra: dict[str, Any] | None = None) -> None:
    """Print a benchmark's report, then (unless ``--no-save``) merge its results into bench/results/."""
    print()
    print(text)
    if save:
        path = save_results(name, results, extra)
        print(f"\nwrote {path.relative_to(ROOT)}")


def save_results(name: str, profile_results: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Merge into bench/results/<name>.json: results of profiles not run this time are kept."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data.setdefault("profiles", {}).update(profile_results)
    data.update(extra or {})
    data["machine"] = machine_info()
    data["git"] = git_state()
    data["loadavg"] = {"at_start": LOAD_AT_START, "at_end": os.getloadavg(),
                       "note": "other processes on the machine (1/5/15 min load averages); 2 cores"}
    data["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
