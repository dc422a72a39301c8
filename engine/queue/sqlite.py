"""A durable SQLite-backed SAQ queue for the embedded deployment profile."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import time
import typing as t
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import unquote, urlsplit

from saq.job import TERMINAL_STATUSES, Job, Status
from saq.queue.base import Queue, logger
from saq.utils import now, now_seconds

from engine.files import private_sqlite_file

if t.TYPE_CHECKING:
    from saq.types import CountKind, DumpType, LoadType, QueueInfo, WorkerInfo

T = t.TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]

SCHEMA_VERSION = 1
URL_SCHEMES = ("sqlite", "sqlite+aiosqlite")
TERMINAL = tuple(status.value for status in TERMINAL_STATUSES)
RUNNING = (Status.ACTIVE.value, Status.ABORTING.value)
INCOMPLETE = (Status.NEW.value, Status.QUEUED.value, Status.ACTIVE.value)
KEEP = object()
"""Sentinel for ``_update``: leave ``expire_at`` as it is."""
MAX_SQL_VARIABLES = 500
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS saq_jobs (
        queue TEXT NOT NULL,
        key TEXT NOT NULL,
        job BLOB NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        group_key TEXT,
        scheduled REAL NOT NULL,
        expire_at REAL,
        worker_id TEXT,
        PRIMARY KEY (queue, key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS saq_jobs_dequeue_idx ON saq_jobs (queue, status, priority, scheduled)",
    "CREATE INDEX IF NOT EXISTS saq_jobs_group_idx ON saq_jobs (queue, status, group_key)",
    """
    CREATE TABLE IF NOT EXISTS saq_stats (
        worker_id TEXT PRIMARY KEY,
        queue_key TEXT,
        stats TEXT,
        metadata TEXT,
        expire_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS saq_stats_queue_idx ON saq_stats (queue_key, expire_at)",
    """
    CREATE TABLE IF NOT EXISTS saq_leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expire_at REAL NOT NULL
    )
    """,
    "CREATE TABLE IF NOT EXISTS saq_schema (version INTEGER NOT NULL)",
)

SELECT_DUE_JOB = """
    SELECT key, job FROM saq_jobs
    WHERE queue = :queue
      AND status = 'queued'
      AND scheduled <= :now
      AND priority BETWEEN :plow AND :phigh
      AND (group_key IS NULL OR group_key NOT IN (
            SELECT group_key FROM saq_jobs
            WHERE queue = :queue AND status IN ('active', 'aborting') AND group_key IS NOT NULL))
    ORDER BY priority, scheduled, rowid
    LIMIT 1
"""

INSERT_JOB = """
    INSERT INTO saq_jobs (queue, key, job, status, priority, group_key, scheduled)
    VALUES (:queue, :key, :job, :status, :priority, :group_key, :scheduled)
    ON CONFLICT (queue, key) DO UPDATE SET
        job = excluded.job,
        status = excluded.status,
        priority = excluded.priority,
        group_key = excluded.group_key,
        scheduled = excluded.scheduled,
        expire_at = NULL,
        worker_id = NULL
    WHERE saq_jobs.status IN ('aborted', 'complete', 'failed')
      AND excluded.scheduled > saq_jobs.scheduled
    RETURNING 1
"""

UPDATE_JOB = """
    UPDATE saq_jobs
    SET job = :job, status = :status, scheduled = :scheduled, priority = :priority,
        worker_id = :worker_id {set_expire_at}
    WHERE queue = :queue AND key = :key
"""

UPSERT_WORKER = """
    INSERT INTO saq_stats (worker_id, queue_key, stats, metadata, expire_at)
    VALUES (:worker_id, :queue_key, :stats, :metadata, :expire_at)
    ON CONFLICT (worker_id) DO UPDATE SET
        queue_key = excluded.queue_key,
        stats = excluded.stats,
        metadata = excluded.metadata,
        expire_at = excluded.expire_at
"""

ACQUIRE_LEASE = """
    INSERT INTO saq_leases (name, owner, expire_at) VALUES (:name, :owner, :expire_at)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expire_at = excluded.expire_at
    WHERE saq_leases.owner = excluded.owner OR saq_leases.expire_at <= :now
    RETURNING owner
"""


def _placeholders(values: t.Sized) -> str:
    return ", ".join("?" * len(values))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def path_from_url(url: str) -> str:
    """The database path of a ``sqlite:///`` URL (SQLAlchemy convention).

    ``sqlite:///queue.db`` is relative to the working directory, ``sqlite:////abs/queue.db``
    (``"sqlite:///" + "/abs/queue.db"``) is absolute.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ValueError(f"Not a SQLite queue URL (expected sqlite:///path): {url!r}")
    if parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"SQLite queue URL must be sqlite:///<path>, without host or query: {url!r}")
    path = unquote(parts.path[1:])
    if not path:
        raise ValueError(f"SQLite queue URL has no database path: {url!r}")
    return path


class _Busy:
    pass


_BUSY = _Busy()
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
CHECKPOINT_EVERY = 200
"""Every 200th write transaction runs in the queue's thread and checkpoints the WAL afterwards."""


def _all(conn: sqlite3.Connection, sql: str, params: t.Any = ()) -> list[t.Any]:
    return conn.execute(sql, params).fetchall()


def _transaction(operation: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = operation(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _then_checkpoint(transaction: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    result = transaction(conn)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    return result


async def _run_to_completion(
    task: asyncio.Future[T], on_abandoned: Callable[[T], Awaitable[t.Any]] | None = None
) -> T:
    """Await ``task``; if the caller is cancelled, let it finish first (commit or roll back).

    ``on_abandoned`` gets the result the cancelled caller will never see.
    """
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is None and on_abandoned is not None:
            await on_abandoned(task.result())
        raise


async def _wait(waiter: asyncio.Future[None], timeout: float) -> None:
    await asyncio.wait([waiter], timeout=None if math.isinf(timeout) else timeout)


class SQLiteQueue(Queue):
    """A durable SAQ queue in one SQLite file (the "embedded" deployment profile).

    Design:

    * **Storage.** Table ``saq_jobs`` holds one row per job: the job serialized with the
      queue's ``dump`` (as SAQ's Postgres queue does) plus the columns queries need — ``queue``,
      ``key`` (primary key together), ``status``, ``priority``, ``group_key``, ``scheduled``
      (epoch seconds), ``expire_at`` (when a finished job may be deleted) and ``worker_id``.
      The ``status`` column is authoritative and overrides the status inside the blob.
      ``saq_stats`` holds worker info with an expiry, ``saq_leases`` the sweep lease.
      The file is in WAL mode (readers never block the writer) with ``synchronous=FULL``
      (configurable) and a ``busy_timeout``, so a second process waits for the lock instead of failing.
    * **One connection per queue.** All statements go through one ``sqlite3`` connection. A
      read, or a whole write transaction (``BEGIN IMMEDIATE ... COMMIT``), is one synchronous
      call: inline on the event loop's thread when the connection is free and SQLite answers
      at once (``busy_timeout`` 0 there; a WAL write into the OS cache takes tens of µs), else
      in the queue's own thread under an ``asyncio.Lock``, where it may wait ``busy_timeout_ms``
      for another process's lock, as a shielded task: a cancelled caller cannot leave a
      transaction half done. Checkpoints (the fsyncs of ``NORMAL``) run in that thread: every
      200th write goes there and checkpoints after it.
    * **Exclusive dequeue.** A claim selects the next due job and marks it ``active`` inside
      one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock up front, so two
      queues — in this process or another one — can never claim the same job. If the caller
      is cancelled after the claim committed, the job is put back to ``queued``.
    * **Waiting without spinning.** Idle ``dequeue`` calls of this instance sleep on
      futures; a local enqueue or retry wakes one of them. One waiter at a time (the poller)
      also looks at the database every ``poll_interval`` seconds — a plain read that takes
      no write lock — which covers jobs enqueued by other processes and scheduled jobs that
      become due; when it leaves it wakes another waiter to take over.
    * **Semantics mirror ``saq.queue.postgres``.** Dedup: an enqueue whose key exists
      returns ``None`` unless the stored job is finished and the new ``scheduled`` is later.
      Abort: a queued (or unknown) job is finished as ``aborted``; a running one is set to
      ``aborting`` and the worker's abort poll (``queue.jobs``) cancels it and calls
      ``finish_abort``. Unlike Postgres, aborting an already finished job changes nothing.
      Sweep: deletes expired finished jobs and worker stats, then aborts every ``active`` /
      ``aborting`` job that is ``stuck`` (past its ``timeout`` since start or its
      ``heartbeat`` since last update) and retries it if retryable, else finishes it
      ``aborted``. As in SAQ, a dead worker's job with neither timeout nor heartbeat is never
      swept. A lease row (``lock`` seconds, renewed by its holder) keeps sweeps of several
      processes from racing.
    * **Not shared across machines.** SQLite locking needs a local filesystem.

    Args:
        path: database file (``":memory:"`` works for a single queue instance).
        name: queue name; several queues can share one file.
        dump / load: job serializer, as for SAQ's other queues (default JSON).
        swept_error_message: error stored on swept jobs.
        priorities: the (low, high) range of ``Job.priority`` this queue dequeues.
        poll_interval: seconds between database checks of an idle dequeue.
        busy_timeout_ms: how long to wait for another process's write lock.
        synchronous: SQLite ``synchronous`` pragma. ``FULL`` (default) fsyncs every commit, so
            a committed job survives a power cut; ``NORMAL`` is faster and survives
            a crash of the process, not of the machine.
    """

    @classmethod
    def from_url(cls: type[SQLiteQueue], url: str, **kwargs: t.Any) -> SQLiteQueue:
        """Create a queue from ``sqlite:///relative.db`` or ``sqlite:////absolute/queue.db``."""
        return cls(path_from_url(url), **kwargs)

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str = "default",
        *,
        dump: DumpType | None = None,
        load: LoadType | None = None,
        swept_error_message: str | None = None,
        priorities: tuple[int, int] = (0, 32767),
        poll_interval: float = 0.2,
        busy_timeout_ms: int = 10_000,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__(name=name, dump=dump, load=load, swept_error_message=swept_error_message)
        path = os.fspath(path)
        self.path = path if path == ":memory:" else os.path.abspath(path)
        self.priorities = priorities
        self.poll_interval = poll_interval
        self.busy_timeout_ms = busy_timeout_ms
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._instance_id = uuid.uuid4().hex
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inline_mode = False
        self._writes = 0
        self._lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._waiters: dict[asyncio.Future[None], None] = {}
        self._poller_present = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}<path={self.path!r}, name={self.name!r}>"

    @property
    def _connected(self) -> bool:
        return self._conn is not None

    # -- connection and transactions ---------------------------------------------------

    async def connect(self) -> None:
        async with self._connect_lock:
            if self._conn is not None:
                return
            executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-queue")
            loop = asyncio.get_running_loop()
            conn = await loop.run_in_executor(executor, self._open)
            try:
                self._conn, self._executor = conn, executor
                await self._write(self._migrate)
            except BaseException:
                self._conn = self._executor = None
                await loop.run_in_executor(executor, conn.close)
                executor.shutdown(wait=False)
                raise
            await super().connect()

    def _open(self) -> sqlite3.Connection:
        private_sqlite_file(self.path)  # 0600, as every database file of ours (engine/files.py)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        _all(conn, f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        mode = _all(conn, "PRAGMA journal_mode = WAL")[0][0]
        if mode != "wal" and self.path != ":memory:":
            logger.warning("SQLite queue %s runs in journal mode %s, not WAL", self.path, mode)
        _all(conn, f"PRAGMA synchronous = {self.synchronous}")
        # checkpoints (which fsync) run in the queue's thread, never inline on the event loop
        _all(conn, "PRAGMA wal_autocheckpoint = 0")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        for statement in SCHEMA:
            _all(conn, statement)
        rows = _all(conn, "SELECT version FROM saq_schema")
        version = rows[0][0] if rows else 0
        if version > SCHEMA_VERSION:
            raise ValueError(f"{self.path} has queue schema {version}, newer than this code ({SCHEMA_VERSION})")
        if not rows:
            _all(conn, "INSERT INTO saq_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    async def disconnect(self) -> None:
        async with self._connect_lock:
            if self._conn is None:
                return
            await self._write(self._release_sweep_lease)
            async with self._lock:
                conn, executor, self._conn, self._executor = self._conn, self._executor, None, None
                self._wake_all()
                assert executor is not None
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
                executor.shutdown(wait=False)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self!r} is not connected: await queue.connect() first")
        return self._conn

    # Every statement runs on the queue's one connection: inline on the event loop's thread when
    # nothing else uses the connection and SQLite answers at once (a WAL read; a write whose lock is
    # free — ``busy_timeout`` 0 while inline), otherwise as a whole in the queue's thread, which
    # waits up to ``busy_timeout_ms`` for another process's lock. A transaction is one call either
    # way (no thread hop per statement), and cannot be interrupted half done.

    def _inline(self, call: Callable[[sqlite3.Connection], T]) -> T | _Busy:
        conn = self._connection()
        if not self._inline_mode:
            _all(conn, "PRAGMA busy_timeout = 0")
            self._inline_mode = True
        try:
            return call(conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _BUSY_CODES and not conn.in_transaction:
                return _BUSY  # nothing was done: do it in the thread, where it may wait
            raise

    async def _in_thread(self, call: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()

        def threaded() -> T:
            if self._inline_mode:
                _all(conn, f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                self._inline_mode = False
            return call(conn)

        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, threaded)

    async def _read(self, operation: Operation[T]) -> T:
        """Run a read-only operation (autocommit, serialized on the connection)."""
        if not self._lock.locked():
            result = self._inline(operation)
            if result is not _BUSY:
                return t.cast(T, result)
        async with self._lock:
            return await self._in_thread(operation)

    async def _write(
        self,
        operation: Operation[T],
        on_abandoned: Callable[[T], Awaitable[t.Any]] | None = None,
    ) -> T:
        """Run ``operation`` in its own write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``)."""
        transaction = partial(_transaction, operation)
        self._writes += 1
        if not self._lock.locked() and self._writes % CHECKPOINT_EVERY:
            result = self._inline(transaction)
            if result is not _BUSY:
                return t.cast(T, result)
        task = asyncio.ensure_future(self._in_transaction(transaction))
        return await _run_to_completion(task, on_abandoned)

    async def _in_transaction(self, transaction: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            checkpoint = self._writes % CHECKPOINT_EVERY == 0
            return await self._in_thread(partial(_then_checkpoint, transaction) if checkpoint else transaction)

    # -- row helpers --------------------------------------------------------------------

    def _fetch_one(self, conn: sqlite3.Connection, sql: str, params: t.Any = ()) -> t.Any:
        rows = list(_all(conn, sql, params))
        return rows[0] if rows else None

    def _stored_status(self, conn: sqlite3.Connection, key: str) -> Status | None:
        row = self._fetch_one(
            conn, "SELECT status FROM saq_jobs WHERE queue = ? AND key = ?", (self.name, key)
        )
        return Status(row[0]) if row else None

    def _store_job(
        self, job: Job, status: Status | None, expire_at: t.Any, conn: sqlite3.Connection
    ) -> None:
        if status is None:
            status = self._stored_status(conn, job.key)
        job.status = status or job.status
        set_expire_at = "" if expire_at is KEEP else ", expire_at = :expire_at"
        params = {
            "job": self.serialize(job),
            "status": Status(job.status).value,
            "scheduled": job.scheduled,
            "priority": job.priority,
            "worker_id": job.worker_id,
            "queue": self.name,
            "key": job.key,
        }
        if expire_at is not KEEP:
            params["expire_at"] = expire_at
        _all(conn, UPDATE_JOB.format(set_expire_at=set_expire_at), params)

    def _job_from_row(self, payload: bytes | str, status: str) -> Job:
        job = self.deserialize(payload, status)
        assert job is not None
        return job

    # -- enqueue and dequeue ------------------------------------------------------------

    async def _enqueue(self, job: Job) -> Job | None:
        params = {
            "queue": self.name,
            "key": job.key,
            "job": self.serialize(job),
            "status": Status(job.status).value,
            "priority": job.priority,
            "group_key": job.group_key,
            "scheduled": job.scheduled or int(now_seconds()),
        }

        def insert(conn: sqlite3.Connection) -> bool:
            return self._fetch_one(conn, INSERT_JOB, params) is not None

        if not await self._write(insert):
            return None
        self._wake_one()
        logger.info("Enqueuing %s", job.info(logger.isEnabledFor(logging.DEBUG)))
        return job

    def _add_waiter(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[waiter] = None
        return waiter

    def _wake_one(self) -> None:
        """Wake the longest-waiting local dequeue (one new job needs one consumer)."""
        while self._waiters:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            self._wake_one()

    def _become_poller(self) -> bool:
        if self._poller_present:
            return False
        self._poller_present = True
        return True

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:
        """Claim the next due job; wait up to ``timeout`` seconds (0: forever) for one."""
        self._connection()  # fail loudly when used before connect()
        interval = poll_interval if poll_interval > 0 else self.poll_interval
        clock = asyncio.get_running_loop().time
        deadline = clock() + timeout if timeout > 0 else math.inf
        polling = self._become_poller()
        try:
            while self._connected:
                waiter = self._add_waiter()  # before the claim, so no wake-up is missed
                try:
                    job = await self._claim()
                    if job is not None:
                        return job
                    remaining = deadline - clock()
                    if remaining <= 0:
                        return None
                    polling = polling or self._become_poller()
                    await _wait(waiter, min(remaining, interval) if polling else remaining)
                finally:
                    self._waiters.pop(waiter, None)
            return None
        finally:
            if polling:
                self._poller_present = False
            if not self._poller_present:
                self._wake_one()  # hand over polling to a waiter

    async def _claim(self) -> Job | None:
        """Claim a due job; look first without the write lock, which idle polls never take."""
        if await self._read(self._due_job) is None:
            return None
        return await self._write(self._claim_due_job, on_abandoned=self._unclaim)

    def _due_job(self, conn: sqlite3.Connection) -> t.Any:
        params = {
            "queue": self.name,
            "now": now_seconds(),
            "plow": self.priorities[0],
            "phigh": self.priorities[1],
        }
        return self._fetch_one(conn, SELECT_DUE_JOB, params)

    def _claim_due_job(self, conn: sqlite3.Connection) -> Job | None:
        row = self._due_job(conn)
        if row is None:
            return None
        job = self._job_from_row(row[1], Status.ACTIVE)
        job.started = job.touched = now()
        self._store_job(job, Status.ACTIVE, KEEP, conn)
        return job

    async def _unclaim(self, job: Job | None) -> None:
        """Put back a job claimed for a dequeue that was cancelled before returning it."""
        if job is None:
            return
        job.started = 0
        await self._write(partial(self._store_job, job, Status.QUEUED, KEEP))
        self._wake_one()

    # -- updates, retries, finishing, aborting ------------------------------------------

    async def _update(self, job: Job, status: Status | None = None, **kwargs: t.Any) -> None:
        expire_at = kwargs.pop("expire_at", KEEP)
        await self._write(partial(self._store_job, job, status, expire_at))

    async def _retry(self, job: Job, error: str | None) -> None:
        delay = job.next_retry_delay()
        scheduled = time.time() + delay if delay else job.scheduled or now_seconds()
        await self.update(job, status=Status.QUEUED, scheduled=int(scheduled), expire_at=None)
        self._wake_one()

    async def _finish(
        self,
        job: Job,
        status: Status,
        *,
        result: t.Any = None,
        error: str | None = None,
    ) -> None:
        if job.ttl >= 0:
            await self.update(job, status=status, expire_at=self._finished_expiry(job))
        else:
            await self._write(partial(self._delete_job, job.key))

    @staticmethod
    def _finished_expiry(job: Job) -> float | None:
        return now_seconds() + job.ttl if job.ttl > 0 else None

    def _delete_job(self, key: str, conn: sqlite3.Connection) -> None:
        _all(conn, "DELETE FROM saq_jobs WHERE queue = ? AND key = ?", (self.name, key))

    async def abort(self, job: Job, error: str, ttl: float = 5) -> None:
        """A queued (or unknown) job is finished ``aborted``; a running one becomes ``aborting``;
        a finished one is left alone — decided and written in one transaction."""
        stamp = now()
        aborted = self.copy(job)
        aborted.status, aborted.result, aborted.error = Status.ABORTED, None, error
        aborted.completed = aborted.touched = stamp
        aborting = self.copy(job)
        aborting.status, aborting.error, aborting.touched = Status.ABORTING, error, stamp
        outcome = await self._write(partial(self._abort_job, aborted, aborting))
        if outcome is None:
            return
        # what SAQ's ``finish`` / ``update`` do to the caller's job object
        job.status, job.error, job.touched = outcome, error, stamp
        if outcome == Status.ABORTED:
            job.result, job.completed = None, stamp
            logger.info("Finished %s", job.info(logger.isEnabledFor(logging.DEBUG)))
            self.aborted += 1

    def _abort_job(self, aborted: Job, aborting: Job, conn: sqlite3.Connection) -> Status | None:
        status = self._stored_status(conn, aborted.key)
        if status in TERMINAL_STATUSES:
            return None
        if status in (None, Status.QUEUED):
            if aborted.ttl >= 0:
                self._store_job(aborted, Status.ABORTED, self._finished_expiry(aborted), conn)
            else:
                self._delete_job(aborted.key, conn)
            return Status.ABORTED
        self._store_job(aborting, Status.ABORTING, KEEP, conn)
        return Status.ABORTING

    # -- reading jobs -------------------------------------------------------------------

    async def job(self, job_key: str) -> Job | None:
        def fetch(conn: sqlite3.Connection) -> t.Any:
            sql = "SELECT job, status FROM saq_jobs WHERE queue = ? AND key = ?"
            return self._fetch_one(conn, sql, (self.name, job_key))

        row = await self._read(fetch)
        return self._job_from_row(*row) if row else None

    async def jobs(self, job_keys: t.Iterable[str]) -> list[Job | None]:
        keys = list(job_keys)
        found: dict[str, Job] = {}
        for chunk in _chunks(keys, MAX_SQL_VARIABLES):
            rows = await self._read(partial(self._fetch_jobs, chunk))
            found.update({key: self._job_from_row(payload, status) for key, payload, status in rows})
        return [found.get(key) for key in keys]

    def _fetch_jobs(self, keys: list[str], conn: sqlite3.Connection) -> Iterable[t.Any]:
        sql = f"SELECT key, job, status FROM saq_jobs WHERE queue = ? AND key IN ({_placeholders(keys)})"
        return _all(conn, sql, (self.name, *keys))

    async def iter_jobs(
        self,
        statuses: list[Status] | None = None,
        batch_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Jobs of this queue with one of ``statuses`` (default: all), in key order."""
        values = [Status(status).value for status in (list(Status) if statuses is None else statuses)]
        last_key = ""
        while rows := list(await self._read(partial(self._fetch_batch, values, last_key, batch_size))):
            for key, payload, status in rows:
                last_key = key
                yield self._job_from_row(payload, status)

    def _fetch_batch(
        self, statuses: list[str], after_key: str, limit: int, conn: sqlite3.Connection
    ) -> Iterable[t.Any]:
        sql = (
            "SELECT key, job, status FROM saq_jobs"
            f" WHERE queue = ? AND status IN ({_placeholders(statuses)}) AND key > ?"
            " ORDER BY key LIMIT ?"
        )
        return _all(conn, sql, (self.name, *statuses, after_key, limit))

    # -- counts and info ----------------------------------------------------------------

    async def count(self, kind: CountKind) -> int:
        if kind == "queued":
            sql = "SELECT count(*) FROM saq_jobs WHERE queue = ? AND status = 'queued' AND scheduled <= ?"
            params: tuple[t.Any, ...] = (self.name, now_seconds())
        elif kind == "active":
            sql, params = "SELECT count(*) FROM saq_jobs WHERE queue = ? AND status = 'active'", (self.name,)
        elif kind == "incomplete":
            sql = f"SELECT count(*) FROM saq_jobs WHERE queue = ? AND status IN ({_placeholders(INCOMPLETE)})"
            params = (self.name, *INCOMPLETE)
        else:
            raise ValueError(f"Can't count unknown type {kind}")

        def fetch(conn: sqlite3.Connection) -> int:
            return (self._fetch_one(conn, sql, params))[0]

        return await self._read(fetch)

    async def info(self, jobs: bool = False, offset: int = 0, limit: int = 10) -> QueueInfo:
        workers = await self._read(self._live_workers)
        queued = await self.count("queued")
        active = await self.count("active")
        incomplete = await self.count("incomplete")
        job_rows = await self._read(partial(self._incomplete_jobs, offset, limit)) if jobs else []
        return {
            "workers": workers,
            "name": self.name,
            "queued": queued,
            "active": active,
            "scheduled": incomplete - queued - active,
            "jobs": [self._job_from_row(payload, status).to_dict() for payload, status in job_rows],
        }

    def _live_workers(self, conn: sqlite3.Connection) -> dict[str, WorkerInfo]:
        sql = "SELECT worker_id, stats, queue_key, metadata FROM saq_stats WHERE queue_key = ? AND expire_at >= ?"
        rows = _all(conn, sql, (self.name, now_seconds()))
        return {
            worker_id: {"stats": json.loads(stats), "queue_key": queue_key, "metadata": json.loads(metadata)}
            for worker_id, stats, queue_key, metadata in rows
        }

    def _incomplete_jobs(self, offset: int, limit: int, conn: sqlite3.Connection) -> Iterable[t.Any]:
        sql = (
            f"SELECT job, status FROM saq_jobs WHERE queue = ? AND status IN ({_placeholders(INCOMPLETE)})"
            " ORDER BY priority, scheduled, rowid LIMIT ? OFFSET ?"
        )
        return _all(conn, sql, (self.name, *INCOMPLETE, limit, offset))

    async def write_worker_info(self, worker_id: str, info: WorkerInfo, ttl: int) -> None:
        params = {
            "worker_id": worker_id,
            "queue_key": info["queue_key"],
            "stats": json.dumps(info["stats"]),
            "metadata": json.dumps(info["metadata"]),
            "expire_at": now_seconds() + ttl,
        }

        def upsert(conn: sqlite3.Connection) -> None:
            _all(conn, UPSERT_WORKER, params)

        await self._write(upsert)

    # -- sweeping -----------------------------------------------------------------------

    async def sweep(self, lock: int = 60, abort: float = 0.5) -> list[str]:
        """Delete expired jobs and worker stats, then abort (and retry) stuck jobs.

        ``abort``: how long to wait for a stuck job's worker to acknowledge the abort (SAQ's default is
        5 s); a worker that missed its heartbeat is dead or wedged, and if it is alive after all, the
        execution lease keeps the retried job from running the execution a second time."""
        if not await self._write(partial(self._acquire_sweep_lease, lock)):
            return []
        await self._write(self._delete_expired)
        stuck = [job for job in await self._read(self._running_jobs) if job.stuck]
        # Concurrently: each waits up to ``abort`` s for its (usually dead) worker to acknowledge.
        await asyncio.gather(*(self._sweep_job(job, abort) for job in stuck))
        return [job.key for job in stuck]

    @property
    def _sweep_lease_name(self) -> str:
        return f"sweep:{self.name}"

    def _acquire_sweep_lease(self, lock: float, conn: sqlite3.Connection) -> bool:
        current = now_seconds()
        params = {"name": self._sweep_lease_name, "owner": self._instance_id, "expire_at": current + lock, "now": current}
        return self._fetch_one(conn, ACQUIRE_LEASE, params) is not None

    def _release_sweep_lease(self, conn: sqlite3.Connection) -> None:
        sql = "DELETE FROM saq_leases WHERE name = ? AND owner = ?"
        _all(conn, sql, (self._sweep_lease_name, self._instance_id))

    def _delete_expired(self, conn: sqlite3.Connection) -> None:
        current = now_seconds()
        sql = f"DELETE FROM saq_jobs WHERE queue = ? AND status IN ({_placeholders(TERMINAL)}) AND expire_at <= ?"
        _all(conn, sql, (self.name, *TERMINAL, current))
        _all(conn, "DELETE FROM saq_stats WHERE expire_at < ?", (current,))

    def _running_jobs(self, conn: sqlite3.Connection) -> list[Job]:
        sql = f"SELECT job, status FROM saq_jobs WHERE queue = ? AND status IN ({_placeholders(RUNNING)})"
        rows = _all(conn, sql, (self.name, *RUNNING))
        return [self._job_from_row(payload, status) for payload, status in rows]

    async def _sweep_job(self, job: Job, abort: float) -> None:
        logger.info("Sweeping %s", job.info(logger.isEnabledFor(logging.DEBUG)))
        await self.abort(job, error=self.swept_error_message)
        try:
            await job.refresh(abort)
        except TimeoutError:
            logger.info("Could not abort job %s", job.key)
        if job.retryable:
            await self.retry(job, error=self.swept_error_message)
        else:
            await self.finish(job, Status.ABORTED, error=self.swept_error_message)
