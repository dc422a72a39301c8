"""One SAQ queue contract, checked against real SQLite, PostgreSQL and Redis backends.

Where SAQ's backends differ on purpose, the test says so:

* Redis hands out a dequeued job still marked ``queued`` (the worker marks it ``active``
  right after); Postgres and SQLite mark it ``active`` in the dequeue itself. Tests call
  :func:`start_like_worker` after ``dequeue`` to reach the same state everywhere.
* Redis (and Postgres, for a waiting consumer) only moves due scheduled jobs on
  ``queue.schedule()``; :func:`dequeue_due` calls it before every dequeue, as the worker's
  upkeep does every second.
* Redis' ``dequeue(timeout=0)`` blocks forever, so tests always pass a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import saq
from saq.job import Job, Status
from saq.queue.postgres import PostgresQueue
from saq.queue.redis import RedisQueue
from saq.utils import now

from engine.queue import SQLiteQueue, queue_from_url

ROOT = Path(__file__).resolve().parents[2]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


def backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue(f"{backend}_url")


@pytest.fixture(params=BACKENDS)
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[saq.Queue]:
    """A connected queue on a fresh, empty backend."""
    q = queue_from_url(backend_url(request.param, request, tmp_path), name="contract")
    await q.connect()
    try:
        yield q
    finally:
        await q.disconnect()


# -- helpers -----------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[object]],
    what: str,
    timeout: float = 10.0,
    state: Callable[[], Awaitable[object]] | None = None,
) -> object:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    ``state`` describes what was seen instead, for the failure message.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        if loop.time() > deadline:
            seen = f"; state: {await state()!r}" if state else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{seen}")
        await asyncio.sleep(0.05)
    return result


async def dequeue_due(queue: saq.Queue, timeout: float = 0.2) -> Job | None:
    """Move due scheduled jobs (as the worker's upkeep does), then dequeue one."""
    await queue.schedule()
    return await queue.dequeue(timeout=timeout)


async def start_like_worker(job: Job) -> None:
    """What ``saq.Worker.process`` does right after a dequeue."""
    job.started = now()
    job.attempts += 1
    job.worker_id = "test-worker"
    await job.update(status=Status.ACTIVE)


async def stored(queue: saq.Queue, key: str) -> Job:
    job = await queue.job(key)
    assert job is not None, f"job {key} is not stored"
    return job


async def status_is(queue: saq.Queue, key: str, status: Status) -> Job | None:
    job = await queue.job(key)
    return job if job and job.status == status else None


@asynccontextmanager
async def running_worker(queue: saq.Queue, functions: list, **kwargs: object) -> AsyncIterator[saq.Worker]:
    """A real ``saq.Worker`` on ``queue`` without signal handlers, stopped on exit.

    The worker sweeps as soon as it starts. SAQ's Redis sweep treats every job in the active
    list whose stored status is not yet ``active`` as stuck, so it can sweep a job another
    worker task has just dequeued. Sweeping once here first takes the sweep lock (Redis: a
    key with a ``lock`` TTL) so the worker's own sweep cannot race with the test's jobs.
    """
    await queue.sweep(lock=600)
    timers = {"abort": 0.1, "schedule": 1, "worker_info": 1, "sweep": 600}
    worker = saq.Worker(queue, functions, concurrency=2, timers=timers, **kwargs)  # type: ignore[arg-type]
    worker.SIGNALS = []
    task = asyncio.create_task(worker.start())
    await asyncio.sleep(0)  # let start() install its stop event before anyone can stop it
    try:
        yield worker
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)


# -- the contract ----------------------------------------------------------------------------


class TestQueueContract:
    async def test_enqueue_dequeue_round_trips_job_fields(self, queue: saq.Queue) -> None:
        job = await queue.enqueue(
            "echo", key="k1", timeout=30, heartbeat=5, retries=3, ttl=120, meta={"run": 7}, x=1, y="two"
        )
        assert job is not None and job.status == Status.QUEUED and job.queued > 0

        fetched = await stored(queue, "k1")
        assert (fetched.function, fetched.kwargs, fetched.status) == ("echo", {"x": 1, "y": "two"}, Status.QUEUED)

        dequeued = await dequeue_due(queue)
        assert dequeued is not None
        assert dequeued.key == "k1" and dequeued.function == "echo"
        assert dequeued.kwargs == {"x": 1, "y": "two"} and dequeued.meta == {"run": 7}
        assert (dequeued.timeout, dequeued.heartbeat, dequeued.retries, dequeued.ttl) == (30, 5, 3, 120)
        assert dequeued.status in {Status.QUEUED, Status.ACTIVE}  # Redis: the worker marks it active
        assert dequeued.queue is queue

        await start_like_worker(dequeued)
        active = await stored(queue, "k1")
        assert (active.status, active.attempts, active.worker_id) == (Status.ACTIVE, 1, "test-worker")
        assert await dequeue_due(queue) is None

    async def test_dedup_by_key(self, queue: saq.Queue) -> None:
        assert await queue.enqueue("echo", key="same", n=1) is not None
        assert await queue.enqueue("echo", key="same", n=2) is None
        assert await queue.count("incomplete") == 1
        assert (await stored(queue, "same")).kwargs == {"n": 1}

        job = await dequeue_due(queue)
        assert job is not None
        await start_like_worker(job)
        assert await queue.enqueue("echo", key="same", n=3) is None  # still running
        await job.finish(Status.COMPLETE, result="done")

        again = await queue.enqueue("echo", key="same", n=4)  # a finished key may be reused
        assert again is not None
        assert (await stored(queue, "same")).kwargs == {"n": 4}

    async def test_retry_requeues_until_attempts_are_exhausted(self, queue: saq.Queue) -> None:
        await queue.enqueue("flaky", key="r", retries=2)

        for attempt in (1, 2):
            job = await dequeue_due(queue)
            assert job is not None and job.key == "r"
            await start_like_worker(job)
            assert job.attempts == attempt
            if job.retryable:  # the worker's choice after an exception
                await job.retry("boom")
                requeued = await stored(queue, "r")
                assert (requeued.status, requeued.error) == (Status.QUEUED, "boom")
            else:
                await job.finish(Status.FAILED, error="boom")

        failed = await stored(queue, "r")
        assert (failed.status, failed.attempts, failed.error) == (Status.FAILED, 2, "boom")
        assert await dequeue_due(queue) is None

    async def test_worker_retries_a_failing_function(self, queue: saq.Queue) -> None:
        attempts_seen: list[int] = []

        async def always_fails(ctx: dict) -> None:
            attempts_seen.append(ctx["job"].attempts)
            raise RuntimeError("boom")

        async with running_worker(queue, [("always_fails", always_fails)]):
            await queue.enqueue("always_fails", key="wf", retries=3)
            failed = await eventually(
                lambda: status_is(queue, "wf", Status.FAILED), "the job to fail", state=lambda: queue.job("wf")
            )

        assert attempts_seen == [1, 2, 3]
        assert failed.attempts == 3 and "RuntimeError: boom" in failed.error

    async def test_finish_sets_complete_and_result(self, queue: saq.Queue) -> None:
        await queue.enqueue("answer", key="f")
        job = await dequeue_due(queue)
        assert job is not None
        await start_like_worker(job)

        await job.finish(Status.COMPLETE, result={"answer": 42})

        done = await stored(queue, "f")
        assert (done.status, done.result, done.progress) == (Status.COMPLETE, {"answer": 42}, 1.0)
        assert done.completed >= done.started > 0
        assert await queue.count("incomplete") == 0
        assert await queue.count("active") == 0

    async def test_abort_queued_job(self, queue: saq.Queue) -> None:
        job = await queue.enqueue("never", key="aq")
        assert job is not None

        await queue.abort(job, "not needed")

        aborted = await stored(queue, "aq")
        assert (aborted.status, aborted.error) == (Status.ABORTED, "not needed")
        assert await queue.count("queued") == 0
        assert await dequeue_due(queue) is None

    async def test_abort_active_job_cancels_the_worker_function(self, queue: saq.Queue) -> None:
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def slow(ctx: dict) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with running_worker(queue, [("slow", slow)]):
            await queue.enqueue("slow", key="aa", timeout=120)
            await asyncio.wait_for(started.wait(), 10)
            await queue.abort(await stored(queue, "aa"), "stop it")
            aborted = await eventually(
                lambda: status_is(queue, "aa", Status.ABORTED), "the job to be aborted", state=lambda: queue.job("aa")
            )

        assert cancelled.is_set()
        assert aborted.error == "stop it"

    async def test_scheduled_job_is_dequeued_only_when_due(self, queue: saq.Queue) -> None:
        due = int(time.time()) + 2
        await queue.enqueue("later", key="s", scheduled=due)

        assert await dequeue_due(queue, timeout=0.5) is None
        assert time.time() < due
        info = await queue.info()
        assert (info["queued"], info["scheduled"]) == (0, 1)

        job = await eventually(
            lambda: dequeue_due(queue), "the scheduled job", timeout=8, state=lambda: queue.info(jobs=True)
        )
        assert job.key == "s"
        assert time.time() >= due

    async def test_sweep_aborts_and_retries_stuck_jobs(self, queue: saq.Queue) -> None:
        await queue.enqueue("hangs", key="retryable", heartbeat=1, timeout=30, retries=2)
        await queue.enqueue("hangs", key="final", heartbeat=1, timeout=30, retries=1)
        for _ in range(2):  # a worker takes both jobs, then dies without finishing them
            job = await dequeue_due(queue)
            assert job is not None
            await start_like_worker(job)

        async def both_stuck() -> bool:
            return all(job is not None and job.stuck for job in await queue.jobs(["retryable", "final"]))

        await eventually(both_stuck, "the heartbeats to expire", timeout=5)
        swept = await queue.sweep(abort=0.1)

        assert set(swept) == {queue.job_id("retryable"), queue.job_id("final")}
        retried = await stored(queue, "retryable")
        assert (retried.status, retried.error) == (Status.QUEUED, "swept")
        given_up = await stored(queue, "final")
        assert (given_up.status, given_up.error) == (Status.ABORTED, "swept")

        again = await dequeue_due(queue)
        assert again is not None and again.key == "retryable" and again.attempts == 1
        assert await dequeue_due(queue) is None

    async def test_counts_info_and_job_listing(self, queue: saq.Queue) -> None:
        for key in ("a", "b"):
            await queue.enqueue("echo", key=key)
        await queue.enqueue("echo", key="c", scheduled=int(time.time()) + 60)

        assert [await queue.count(kind) for kind in ("queued", "active", "incomplete")] == [2, 0, 3]

        running = await dequeue_due(queue)
        assert running is not None and running.key in {"a", "b"}
        await start_like_worker(running)
        waiting = ({"a", "b"} - {running.key}).pop()

        assert [await queue.count(kind) for kind in ("queued", "active", "incomplete")] == [1, 1, 3]
        info = await queue.info(jobs=True)
        assert (info["name"], info["queued"], info["active"], info["scheduled"]) == ("contract", 1, 1, 1)
        assert {job["key"] for job in info["jobs"]} == {"a", "b", "c"}

        listed = await queue.jobs([running.key, "missing", waiting])
        assert [job.key if job else None for job in listed] == [running.key, None, waiting]
        assert listed[0].status == Status.ACTIVE and listed[2].status == Status.QUEUED
        assert {job.key async for job in queue.iter_jobs(statuses=[Status.QUEUED])} == {waiting, "c"}
        assert {job.key async for job in queue.iter_jobs()} == {"a", "b", "c"}

    async def test_worker_runs_jobs_and_reports_itself_in_info(self, queue: saq.Queue) -> None:
        async def add(ctx: dict, *, a: int, b: int) -> int:
            return a + b

        async with running_worker(queue, [("add", add)], metadata={"profile": "test"}) as worker:
            await queue.enqueue("add", key="sum", a=1, b=2)
            done = await eventually(
                lambda: status_is(queue, "sum", Status.COMPLETE), "the job to complete", state=lambda: queue.job("sum")
            )

            async def listed() -> dict | None:
                return (await queue.info())["workers"].get(worker.id)

            info = await eventually(listed, "the worker in queue.info()")

        assert done.result == 3 and done.attempts == 1
        assert info["queue_key"] == "contract" and info["metadata"] == {"profile": "test"}
        assert set(info["stats"]) >= {"complete", "failed", "retried", "aborted", "uptime"}


# -- SQLite only: the file is the queue --------------------------------------------------


CONSUMER = textwrap.dedent(
    """
    import asyncio, json, sys
    from engine.queue import SQLiteQueue

    async def main(path):
        queue = SQLiteQueue(path, name="contract", poll_interval=0.02)
        await queue.connect()
        print("ready", flush=True)
        keys = []
        while (job := await queue.dequeue(timeout=1.5)) is not None:
            keys.append(job.key)
        await queue.disconnect()
        print(json.dumps(keys), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def drain(queue: SQLiteQueue, idle: float = 0.5) -> list[str]:
    keys = []
    while (job := await queue.dequeue(timeout=idle)) is not None:
        keys.append(job.key)
    return keys


@asynccontextmanager
async def sqlite_queue(path: Path, **kwargs: object) -> AsyncIterator[SQLiteQueue]:
    queue = SQLiteQueue(path, name="contract", **kwargs)  # type: ignore[arg-type]
    await queue.connect()
    try:
        yield queue
    finally:
        await queue.disconnect()


class TestSQLiteQueueFile:
    async def test_jobs_survive_disconnect_and_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "queue.db"
        async with sqlite_queue(path) as first:
            await first.enqueue("durable", key="d", x=1)

        async with sqlite_queue(path) as second:
            job = await second.dequeue(timeout=1)
            assert job is not None and (job.key, job.kwargs) == ("d", {"x": 1})
            await job.finish(Status.COMPLETE, result="ok")

        async with sqlite_queue(path) as third:
            assert (await stored(third, "d")).result == "ok"

    async def test_two_queues_on_one_file_never_dequeue_the_same_job(self, tmp_path: Path) -> None:
        path = tmp_path / "queue.db"
        async with sqlite_queue(path) as one, sqlite_queue(path) as two:
            for i in range(50):
                await one.enqueue("echo", key=f"job-{i:02}")
            got_one, got_two = await asyncio.gather(drain(one), drain(two))

        assert not set(got_one) & set(got_two)
        assert len(got_one) + len(got_two) == 50
        assert set(got_one) | set(got_two) == {f"job-{i:02}" for i in range(50)}

    async def test_another_process_shares_the_queue_without_duplicates(self, tmp_path: Path) -> None:
        path = tmp_path / "queue.db"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        async with sqlite_queue(path) as queue:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CONSUMER, str(path), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
            )
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), 20) == b"ready\n"
            keys = {f"job-{i:03}" for i in range(100)}
            for key in sorted(keys):
                await queue.enqueue("echo", key=key)
            mine = await drain(queue)
            out, _ = await asyncio.wait_for(child.communicate(), 20)

        theirs = json.loads(out)
        assert child.returncode == 0
        assert not set(mine) & set(theirs)
        assert sorted(mine + theirs) == sorted(keys)

    async def test_cancelled_dequeue_does_not_lose_a_job(self, tmp_path: Path) -> None:
        async with sqlite_queue(tmp_path / "queue.db") as queue:
            waiting = asyncio.create_task(queue.dequeue())
            await asyncio.sleep(0.05)  # let it wait
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await queue.enqueue("echo", key="kept")
            job = await queue.dequeue(timeout=1)
            assert job is not None and job.key == "kept"

    async def test_dequeue_cancelled_mid_claim_puts_the_job_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with sqlite_queue(tmp_path / "queue.db") as queue:
            await queue.enqueue("echo", key="claimed")
            claim = queue._claim_due_job
            loop = asyncio.get_running_loop()

            def claim_then_get_cancelled(conn: sqlite3.Connection) -> Job | None:
                job = claim(conn)
                loop.call_soon_threadsafe(claiming.cancel)  # e.g. the worker stops while the claim commits
                return job

            monkeypatch.setattr(queue, "_claim_due_job", claim_then_get_cancelled)
            # Another connection holds the write lock, so the claim cannot commit inline on the loop:
            # it goes to the queue's thread and waits there, where a cancellation can reach its caller.
            other = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            claiming = asyncio.create_task(queue.dequeue())
            while not queue._lock.locked():
                await asyncio.sleep(0.001)
            other.execute("COMMIT")
            other.close()
            with pytest.raises(asyncio.CancelledError):
                await claiming
            monkeypatch.undo()

            assert (await stored(queue, "claimed")).status == Status.QUEUED
            job = await queue.dequeue(timeout=1)
            assert job is not None and job.key == "claimed"

    async def test_a_write_waits_for_another_connections_lock(self, tmp_path: Path) -> None:
        async with sqlite_queue(tmp_path / "queue.db") as queue:
            other = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            enqueuing = asyncio.create_task(queue.enqueue("echo", key="later"))
            while not queue._lock.locked():  # refused inline, now waiting in the queue's thread
                await asyncio.sleep(0.001)
            assert not enqueuing.done()
            other.execute("COMMIT")
            other.close()
            assert (await enqueuing) is not None
            assert (await stored(queue, "later")).status == Status.QUEUED


# -- queue_from_url ----------------------------------------------------------------------


class TestQueueFromUrl:
    def test_sqlite_urls_follow_sqlalchemy(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        relative = queue_from_url("sqlite:///data/queue.db")
        absolute = queue_from_url(f"sqlite:///{tmp_path / 'abs.db'}", name="other")
        assert isinstance(relative, SQLiteQueue) and relative.path == str(tmp_path / "data" / "queue.db")
        assert relative.name == "patchwire"
        assert isinstance(absolute, SQLiteQueue) and absolute.path == str(tmp_path / "abs.db")
        assert absolute.name == "other"
        assert SQLiteQueue.from_url("sqlite+aiosqlite:///q.db").path == str(tmp_path / "q.db")

    async def test_service_urls(self) -> None:
        redis_queue = queue_from_url("rediss://example.invalid:6380/0")
        assert isinstance(redis_queue, RedisQueue) and redis_queue.name == "patchwire"
        await redis_queue.redis.aclose()  # never connected: disconnect() would try to
        for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+asyncpg://u@h/db"):
            pg_queue = queue_from_url(url)
            assert isinstance(pg_queue, PostgresQueue)
            assert pg_queue.pool.conninfo == "postgresql://u@h/db"

    @pytest.mark.parametrize("url", ["ftp://x/y", "queue.db", "sqlite://host/q.db", "sqlite:///"])
    def test_bad_urls_raise_value_error(self, url: str) -> None:
        with pytest.raises(ValueError):
            queue_from_url(url)
