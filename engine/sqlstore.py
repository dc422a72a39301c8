"""The run store on SQL: node runs, events and the execution's state, committed before any event
is published.

The hot path bypasses the ORM. Each worker process has one *writer* per database: a task that
takes every transition submitted while its previous commit was in flight and commits them all in
one transaction (group commit), then wakes each submitter; every submitter therefore still returns
only after its own transition is durable. The statements are sent through the bare driver:

* SQLite: a dedicated ``sqlite3`` connection (``BEGIN IMMEDIATE`` … ``executemany`` …
  ``COMMIT``), with the same pragmas as ``engine/database.py`` (WAL, ``synchronous=NORMAL``,
  foreign keys). When no commit is in flight and no other connection holds the write lock, the
  transaction runs inline on the event loop's thread (``busy_timeout`` 0; no writer task, no
  thread hop); otherwise the writer runs it in a worker thread, which waits for the lock in short
  steps (``_retry_busy``).
* PostgreSQL: one statement per transaction on an asyncpg connection of the SQLAlchemy pool,
  which the writer keeps between groups —
  ``unnest`` arrays into ``node_runs`` (upsert), ``execution_events`` and ``executions``, and,
  when the live channels are this database, ``pg_notify`` for each event. A single statement is
  its own transaction, and PostgreSQL delivers the notifications when it commits: one round trip.

If a group's transaction fails, its members are retried one by one, so a bad transition fails
only its own execution.

The execution's lease goes the same way (``claim``, ``renew_lease``, ``release_lease``): one
statement each, outside the group commit — on SQLite through the same connection (inline when the
write lock is free), on PostgreSQL through a second kept connection, so a claim never waits for a
group's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from engine import metrics
from engine.database import BUSY_TIMEOUT_MS, connect_sqlite
from engine.events import Event, EventSink, Message, publish_all
from engine.models import TERMINAL_STATUSES
from engine.store import ExecutionState, NodeRunRecord, Transition

T = TypeVar("T")
log = logging.getLogger("patchwire.events")
Write = Callable[[list[tuple[int, Transition]]], Awaitable[None]]
RUN_COLUMNS = ("execution_id", "node_id", "attempt", "node_name", "node_type", "status", "input", "output", "error",
               "started_at", "finished_at", "resume_at", "logs")
_UPDATED = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[3:])
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite (naive UTC)
OUTBOX_LIMIT = 100_000
"""Events committed but not yet published, at most; past it the oldest node events are dropped (logged)."""
OUTBOX_CHUNK = 1000
"""Events per publish call: a backlog goes out in pieces, never as one huge Redis script or NOTIFY."""
OUTBOX_CLOSE_WAIT = 5.0
"""Seconds ``close`` waits for the outbox; a stalled channel must not hang a worker's shutdown."""


@dataclass
class Claim:
    """What a job needs of the execution it has just claimed (``SQLRunStore.claim``)."""

    workflow_id: int
    version_id: int
    owner_id: int
    trigger: str
    input: dict[str, Any]
    interruptions: int
    settings: dict[str, Any] | None
    """The workflow's settings."""
    has_history: bool
    """Node runs or events of the execution are stored (a resumed run, a continuation, a retry from the
    failed node): the run must read them. Without any, a fresh run starts from nothing."""
    scope: list[str] | None = None
    """A test run from the editor: the nodes it may run (``Execution.scope``)."""
    started_at: float | None = None
    """When the execution first started (epoch seconds)."""
    created_at: float | None = None
    workflow_name: str | None = None
    """For the execution's first change of this job: the fixed part of its row (engine/changes.py)."""
    trigger_node: str | None = None
    """The trigger node that fired (a webhook, schedule or poll): only it starts (``Execution.trigger_node``)."""


@dataclass
class _Pending:
    execution_id: int
    transition: Transition
    done: asyncio.Future[None]


class SQLRunStore:
    """One per worker process (``WorkerServices.store``), shared by every execution it runs.

    ``notify``: the live channels are PostgreSQL ``NOTIFY`` on this same database, so events are
    delivered by the commit itself. Otherwise, with a ``sink``, the events of each committed group go
    to an *outbox* that one task publishes in commit order (one call, one Redis command, for all
    that accumulated), so a commit's caller never waits for the channel; past ``outbox_limit``
    unpublished events the oldest are dropped (clients read the stored ones). Either way ``commit``
    returns True and the run does not publish them again."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, notify: bool = False,
                 sink: EventSink | None = None, outbox_limit: int = OUTBOX_LIMIT,
                 outbox_close_wait: float = OUTBOX_CLOSE_WAIT) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._outbox_limit, self._outbox_close_wait = outbox_limit, outbox_close_wait
        self.notify = notify and self._engine.dialect.name == "postgresql"
        self._sink = None if self.notify else sink
        self._immediate = bool(getattr(self._sink, "immediate", False))
        self._backend: _SQLiteBackend | _PostgresBackend = (
            _PostgresBackend(self._engine, self.notify) if self._engine.dialect.name == "postgresql"
            else _SQLiteBackend(_sqlite_path(self._engine)))
        self._queue: list[_Pending] = []
        self._writer: asyncio.Future[None] | None = None
        self._outbox: list[Message] = []
        self._publisher: asyncio.Future[None] | None = None
        self._overflowing = False

    async def resume_state(self, execution_id: int) -> tuple[dict[str, NodeRunRecord], int]:
        return await self._backend.read(execution_id)

    @property
    def on_sqlite(self) -> bool:
        return isinstance(self._backend, _SQLiteBackend)

    async def sqlite_call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on this store's own SQLite connection: inline on the loop's thread when the connection and the
        write lock are free, else in its thread (the webhook route's reads and writes, webapp/webhooks/lane.py).
        ``fn`` may run twice — inline until the lock turns out taken, then in the thread — so it must be one
        read or one whole transaction (``BEGIN IMMEDIATE`` … ``COMMIT``). SQLite only."""
        assert isinstance(self._backend, _SQLiteBackend)
        return await self._backend._run(fn)

    async def claim(self, execution_id: int, token: str, *, lease: float) -> Claim | None:
        """Take the execution's lease for ``lease`` seconds and mark it ``running``, in one statement,
        unless it has ended or another job holds an unexpired lease on it (then ``None``). A lease its
        holder never released counts an interruption: that job died (or lost its database) mid-run."""
        now = time.time()
        row = await self._backend.claim(execution_id, token, now, now + lease)
        if row is None:
            return None
        workflow_id, version_id, owner_id, trigger, input_, interruptions, settings, has_history, scope, *times = row
        return Claim(workflow_id, version_id, owner_id, trigger, input_, interruptions, settings, bool(has_history),
                     scope, _epoch(times[0]), _epoch(times[1]), times[2], times[3])

    async def renew_lease(self, execution_id: int, children: set[int], token: str, *, lease: float) -> bool:
        """Extend the lease of the execution and of the ``children`` (sub-workflow executions sharing its
        token) by ``lease`` seconds; ``False`` (nothing renewed) when the execution's lease is not ``token``'s."""
        return await self._backend.renew(execution_id, sorted(children), token, time.time() + lease)

    async def release_lease(self, execution_ids: list[int], token: str) -> None:
        """Hand back the lease of these executions, where ``token`` still holds it."""
        await self._backend.release(execution_ids, token)

    async def commit(self, execution_id: int, transition: Transition) -> bool:
        if self._writer is None and not self._queue:  # nothing in flight: try to commit right here
            group = [(execution_id, transition)]
            if self._backend.write_now(group):  # committed on this thread (SQLite, write lock free)
                metrics.observe(transition)
                self._post(_messages([transition]))
                return self.notify or self._sink is not None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(execution_id, transition, done))
        if self._writer is None:  # no writer at work: start one; it drains the queue, then ends
            # in a context of its own: it commits for many executions, its log records name none of them
            self._writer = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        # a transaction the writer has begun is finished even if this caller is cancelled meanwhile
        await asyncio.shield(done)
        metrics.observe(transition)  # committed: counted once, as durable
        return self.notify or self._sink is not None

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._publisher is not None:
            await self._close_outbox(self._publisher)
        await self._backend.close()

    async def _close_outbox(self, publisher: asyncio.Future[None]) -> None:
        done, _ = await asyncio.wait({publisher}, timeout=self._outbox_close_wait)
        if not done:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            log.warning("the live channel did not take the last events within %.0f s; %d not published "
                        "(clients read the stored ones)", self._outbox_close_wait, len(self._outbox))
            self._outbox = []

    async def _drain(self) -> None:
        """Whatever arrived while a transaction was in flight goes into the next one."""
        try:
            while self._queue:  # more may arrive while the connection is being returned
                async with self._backend.connection() as write:
                    while self._queue:
                        group, self._queue = self._queue, []
                        await self._write_group(write, group)
        except BaseException as exc:  # the connection failed, or the writer was cancelled
            for pending in self._queue:
                _settle(pending.done, exc)
            self._queue = []
            raise
        finally:
            self._writer = None

    async def _write_group(self, write: Write, group: list[_Pending]) -> None:
        try:
            await write([(p.execution_id, p.transition) for p in group])
        except asyncio.CancelledError:
            for pending in group:
                pending.done.cancel()
            raise
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0].done, exc)
                return
            for pending in group:  # one bad transition must not fail its neighbours
                try:
                    await write([(pending.execution_id, pending.transition)])
                except Exception as single:
                    _settle(pending.done, single)
                else:
                    self._post(_messages([pending.transition]))
                    _settle(pending.done, None)
        else:
            self._post(_messages([p.transition for p in group]))
            for pending in group:
                _settle(pending.done, None)

    def _post(self, events: list[Message]) -> None:
        """After the commit: hand the messages (events, then the change) to the outbox, which publishes
        them in commit order without holding up the commit's caller (a slow channel never slows a run).
        An *immediate* sink (``LocalSink``: the embedded profile's hub in this same process) takes them
        here and now instead: nothing to wait for, and no task hop between the commit and the hub."""
        if self._sink is None or not events:
            return
        if self._immediate:
            self._sink.publish_now(events)  # type: ignore[attr-defined]
            return
        self._outbox.extend(events)
        if len(self._outbox) > self._outbox_limit:
            self._trim_outbox()
        if self._publisher is None:
            # in a context of its own, like the writer: it publishes for many executions
            self._publisher = asyncio.get_running_loop().create_task(self._drain_outbox(), context=contextvars.Context())

    def _trim_outbox(self) -> None:
        """The channel cannot keep up: drop the oldest node events and running changes (clients read the
        stored ones). An execution's own events (``workflow.*``) and its final change are kept: a stream
        waiting for ``workflow.finished`` must still get it, and a table row must still end."""
        overflow = len(self._outbox) - self._outbox_limit
        head, tail = self._outbox[:overflow], self._outbox[overflow:]
        kept = [m for m in head if _must_publish(m)]
        self._outbox = kept + tail
        if not self._overflowing:  # once per episode, not on every commit
            self._overflowing = True
            log.warning("dropping live events: the channel is not keeping up (clients read the stored ones)")

    async def _drain_outbox(self) -> None:
        """Publish whatever the commits left, in order and in chunks, until the outbox is empty."""
        assert self._sink is not None
        try:
            while self._outbox:
                events, self._outbox = self._outbox[:OUTBOX_CHUNK], self._outbox[OUTBOX_CHUNK:]
                try:
                    await publish_all(self._sink, events)
                except Exception:  # events are best effort: the rows are committed, and a client reads them
                    log.warning("could not publish %d events", len(events), exc_info=True)
            self._overflowing = False
        finally:
            self._publisher = None


def _must_publish(message: Message) -> bool:
    if isinstance(message, Event):
        return message.type.startswith("workflow.")
    return getattr(message, "finished_at", None) is not None


def _messages(transitions: list[Transition]) -> list[Message]:
    """What the commit of these transitions publishes: each one's events in order, then its change."""
    return [m for t in transitions for m in (*t.events, *t.changes)]


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        done.cancel()
    elif exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


def _sqlite_path(engine: AsyncEngine) -> str:
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ValueError(f"the SQL run store needs a SQLite database file, not {engine.url!r}")
    return path


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _loads(value: str | None) -> Any:
    """A JSON column's text as SQLAlchemy reads it (``json.loads``)."""
    return None if value is None else json.loads(value)


def _from_json(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value  # asyncpg's codec has already decoded it
    return msgspec.json.decode(value)


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _sqlite_time(epoch: float | None) -> str | None:
    """``_SQLITE_TIME`` (isoformat is several times faster than strftime; the offset is cut off)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(" ", "microseconds")[:26] if epoch is not None else None


def _epoch(value: datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _latest(rows: list[Any]) -> dict[str, NodeRunRecord]:
    """Rows ordered by attempt: later attempts overwrite earlier ones."""
    return {row[0]: NodeRunRecord(
        node_id=row[0], node_name=row[1], node_type=row[2], attempt=row[3], status=row[4],
        input=_from_json(row[5]), output=_from_json(row[6]), error=_from_json(row[7]),
        started_at=_epoch(row[8]), finished_at=_epoch(row[9]), resume_at=_epoch(row[10]), logs=_from_json(row[11]),
    ) for row in rows}


def _runs(group: list[tuple[int, Transition]]) -> list[tuple[int, NodeRunRecord]]:
    """Each (execution, node, attempt) once, its last state winning (an upsert may not touch a row twice)."""
    latest: dict[tuple[int, str, int], tuple[int, NodeRunRecord]] = {}
    for execution_id, transition in group:
        for record in transition.runs:
            latest[(execution_id, record.node_id, record.attempt)] = (execution_id, record)
    return list(latest.values())


SELECT_RUNS = """SELECT node_id, node_name, node_type, attempt, status, input, output, error, started_at, finished_at,
    resume_at, logs FROM node_runs WHERE execution_id = {p} ORDER BY attempt, id"""
SELECT_LAST_SEQ = "SELECT max(seq) FROM execution_events WHERE execution_id = {p}"
_TERMINAL = ", ".join(f"'{status}'" for status in TERMINAL_STATUSES)
CLAIM = f"""UPDATE executions SET lease_token = {{p}}2, lease_until = {{p}}4, status = 'running',
        started_at = coalesce(started_at, {{p}}5),
        interruptions = interruptions + CASE WHEN lease_token IS NULL THEN 0 ELSE 1 END
    WHERE id = {{p}}1 AND status NOT IN ({_TERMINAL}) AND (lease_token IS NULL OR lease_until < {{p}}3)
    RETURNING workflow_id, version_id, owner_id, "trigger", input, interruptions,
        (SELECT settings FROM workflows WHERE workflows.id = executions.workflow_id),
        EXISTS (SELECT 1 FROM node_runs WHERE node_runs.execution_id = executions.id)
        OR EXISTS (SELECT 1 FROM execution_events WHERE execution_events.execution_id = executions.id),
        scope, started_at, created_at, (SELECT name FROM workflows WHERE workflows.id = executions.workflow_id),
        trigger_node"""
"""Parameters: execution id, token, now, lease until, started at. SET expressions see the row as it was
(``lease_token IS NULL``: the previous job released its lease); RETURNING sees it as it is now."""


# -- SQLite --------------------------------------------------------------------------------------

SQLITE_UPSERT_RUN = (f"INSERT INTO node_runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
                     f"ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET {_UPDATED}")
SQLITE_INSERT_EVENT = "INSERT INTO execution_events (execution_id, seq, data, created_at) VALUES (?, ?, ?, ?)"
SQLITE_FINISHED = ("UPDATE executions SET status = ?, output = ?, error = ?, finished_at = ?, resume_at = NULL "
                   "WHERE id = ?")
SQLITE_WAITING = "UPDATE executions SET status = 'waiting', resume_at = ? WHERE id = ?"


class _SQLiteBackend:
    """One ``sqlite3`` connection, used by one thread at a time.

    A transaction runs *inline* on the event loop's thread when nothing else uses the connection:
    with ``busy_timeout`` 0, so it either takes the write lock at once or fails with
    ``SQLITE_BUSY`` before it has written anything (another connection — the web app, the queue,
    another worker — holds the lock). Then, and for the first use, it goes to a worker thread,
    which waits for the lock in short steps of its own (``_retry_busy``, up to ``BUSY_TIMEOUT_MS``;
    one thread hop; the lock serialises that path). With WAL and
    ``synchronous=NORMAL`` a commit is a write into the WAL file without an fsync, so the inline
    path does not wait on the disk. Checkpoints (which fsync) stay off that path: the connection's
    ``wal_autocheckpoint`` is 0 while inline, and after every ``CHECKPOINT_EVERY`` inline transactions a
    *passive* checkpoint runs in a thread on a connection of its own — it takes no lock that writers need,
    so the inline path goes on meanwhile (once, every such transaction went to the thread with the
    autocheckpoint on, and held the connection there through the fsync: every other commit in that time took
    the thread path behind it). Other connections to the file checkpoint as before."""

    INLINE_MAX_BYTES = 256 * 1024
    """A transaction larger than this (the JSON of outputs, mostly) is written in the thread."""
    CHECKPOINT_EVERY = 200

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._inline_since_thread = 0
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None

    def _checkpoint_soon(self) -> None:
        """A passive checkpoint in a thread, unless one runs already."""
        self._inline_since_thread = 0
        if self._checkpointing is None or self._checkpointing.done():
            self._checkpointing = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._checkpointer is None:
                self._checkpointer = connect_sqlite(self._path, isolation_level=None, check_same_thread=False,
                                                    timeout=BUSY_TIMEOUT_MS / 1000)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # the next one tries again; other connections checkpoint too
            log.warning("a passive WAL checkpoint failed", exc_info=True)

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in a worker thread. The lock is held until the thread is done with the connection — also
        when the caller is cancelled meanwhile (a lease renewal at shutdown): released at once, it would let
        the inline path or another thread use the connection while this one still waits for the write lock
        or runs its transaction (and one side's ROLLBACK could end the other's)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self._inline_since_thread = 0
            job = asyncio.get_running_loop().run_in_executor(None, self._call, fn)
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                while not job.done():  # bounded: the thread gives up after BUSY_TIMEOUT_MS
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait({job})
                if not job.cancelled():
                    job.exception()  # the caller is gone: its outcome is not reported twice
                raise

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = connect_sqlite(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            # then busy_timeout 0 for good: the inline path fails at once when locked, and the thread path
            # waits for the lock in short steps of its own (``_retry_busy``)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=0"):
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        conn = self._conn
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT}")
        try:
            return _retry_busy(conn, fn, BUSY_TIMEOUT_MS / 1000)
        finally:  # back to what the inline path needs: fail at once when locked, never checkpoint
            conn.execute("PRAGMA wal_autocheckpoint=0")

    def _inline(self, fn: Callable[[sqlite3.Connection], T], size: int = 0) -> tuple[bool, T | None]:
        """Run ``fn`` on this thread if the connection is free and the database not locked:
        (True, its result), or (False, None) when the caller must take the thread path."""
        conn = self._conn
        if conn is None or (self._lock is not None and self._lock.locked()) or size > self.INLINE_MAX_BYTES:
            return False, None
        if self._inline_since_thread >= self.CHECKPOINT_EVERY:
            self._checkpoint_soon()
        try:
            result = fn(conn)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False, None  # nothing was written: the thread path waits for the lock
            raise
        self._inline_since_thread += 1
        return True, result

    async def read(self, execution_id: int) -> tuple[dict[str, NodeRunRecord], int]:
        def read(conn: sqlite3.Connection) -> tuple[dict[str, NodeRunRecord], int]:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                rows = conn.execute(SELECT_RUNS.format(p="?"), (execution_id,)).fetchall()
                last = conn.execute(SELECT_LAST_SEQ.format(p="?"), (execution_id,)).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            return _latest(rows), last or 0
        done, result = self._inline(read)
        if done:
            assert result is not None
            return result
        return await self._in_thread(read)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` inline if possible, else in the thread."""
        done, result = self._inline(fn)
        if done:
            return result  # type: ignore[return-value]
        return await self._in_thread(fn)

    async def claim(self, execution_id: int, token: str, now: float, until: float) -> tuple[Any, ...] | None:
        rows = await self._run(partial(_sqlite_transaction, CLAIM.format(p="?"),
                                       (execution_id, token, now, until, _sqlite_time(now))))
        if not rows:
            return None
        row = rows[0]  # JSON columns are text here: decoded the way the ORM does (asyncpg's codec does it there)
        return (*row[:4], _loads(row[4]), row[5], _loads(row[6]), row[7], _loads(row[8]), *row[9:])

    async def renew(self, execution_id: int, children: list[int], token: str, until: float) -> bool:
        ids = [execution_id, *children]
        sql = (f"UPDATE executions SET lease_until = ? WHERE lease_token = ? AND id IN ({', '.join('?' * len(ids))})"
               " AND EXISTS (SELECT 1 FROM executions AS e WHERE e.id = ? AND e.lease_token = ?) RETURNING id")
        rows = await self._run(partial(_sqlite_transaction, sql, (until, token, *ids, execution_id, token)))
        return any(row[0] == execution_id for row in rows)

    async def release(self, execution_ids: list[int], token: str) -> None:
        sql = ("UPDATE executions SET lease_token = NULL, lease_until = NULL WHERE lease_token = ? "
               f"AND id IN ({', '.join('?' * len(execution_ids))})")
        await self._run(partial(_sqlite_transaction, sql, (token, *execution_ids)))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Write]:
        yield self.write

    def write_now(self, group: list[tuple[int, Transition]]) -> bool:
        """Commit ``group`` inline if that is possible without waiting; False: nothing was written."""
        if self._conn is None:
            return False
        statements, size = _sqlite_statements(group)
        done, _ = self._inline(partial(_sqlite_write, statements), size)
        return done

    async def write(self, group: list[tuple[int, Transition]]) -> None:
        statements, size = _sqlite_statements(group)
        done, _ = self._inline(partial(_sqlite_write, statements), size)
        if not done:
            await self._in_thread(partial(_sqlite_write, statements))

    async def close(self) -> None:
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


_WAL_AUTOCHECKPOINT = 1000  # SQLite's default, in pages
BUSY_FIRST_WAIT = 0.0002
BUSY_MAX_WAIT = 0.002


def _retry_busy(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], timeout: float) -> T:
    """``fn(conn)``; while the database is locked, rolled back and tried again after 0.2 ms, doubling up
    to 2 ms, for at most ``timeout`` s (then ``SQLITE_BUSY`` is raised).

    Instead of SQLite's own busy handler, whose sleeps grow 1, 2, 5, 10, 15, 20, 25 … 100 ms: a lock
    held for 3 ms by another connection (the web app's insert of a new execution, a producer in another
    process) kept a step commit waiting 8 ms, and a longer one up to 100 ms more than needed — which
    was the tail of the live status latency (docs/benchmarks.md). ``fn`` is one transaction of this
    connection and nothing else, so running it again from the start is safe."""
    deadline = time.monotonic() + timeout
    wait = BUSY_FIRST_WAIT
    while True:
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(wait * 2, BUSY_MAX_WAIT)


def _sqlite_statements(group: list[tuple[int, Transition]]) -> tuple[list[tuple[str, list[tuple[Any, ...]]]], int]:
    """The statements of one transaction (with their rows), and roughly how many bytes of JSON they carry."""
    now = _sqlite_time(datetime.now(UTC).timestamp())
    runs = [(execution_id, r.node_id, r.attempt, r.node_name, r.node_type, r.status, _json(r.input),
             _json(r.output), _json(r.error), _sqlite_time(r.started_at), _sqlite_time(r.finished_at),
             _sqlite_time(r.resume_at), _json(r.logs)) for execution_id, r in _runs(group)]
    events = [(execution_id, e.seq, e.to_json().decode(), now) for execution_id, t in group for e in t.events]
    finished = [(s.status, _json(s.output), _json(s.error), _sqlite_time(s.finished_at), execution_id)
                for execution_id, s in _states(group) if s.status != "waiting"]
    waiting = [(_sqlite_time(s.resume_at), execution_id) for execution_id, s in _states(group)
               if s.status == "waiting"]
    size = sum(len(v) for row in runs for v in (*row[6:9], row[12]) if v) + sum(len(row[2]) for row in events) + sum(
        len(v) for row in finished for v in row[1:3] if v)
    statements = [(sql, rows) for sql, rows in ((SQLITE_UPSERT_RUN, runs), (SQLITE_INSERT_EVENT, events),
                                                (SQLITE_FINISHED, finished), (SQLITE_WAITING, waiting)) if rows]
    return statements, size


def _sqlite_write(statements: list[tuple[str, list[tuple[Any, ...]]]], conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in statements:
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _sqlite_transaction(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> list[Any]:
    """One statement in its own write transaction; the rows it returns."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return rows


def _states(group: list[tuple[int, Transition]]) -> list[tuple[int, ExecutionState]]:
    return [(execution_id, t.execution) for execution_id, t in group if t.execution is not None]


# -- PostgreSQL ----------------------------------------------------------------------------------

# The parts of the one statement a group is written with; {} are its parameters' numbers.
PG_RUNS = f"""runs AS (
    INSERT INTO node_runs ({', '.join(RUN_COLUMNS)})
    SELECT * FROM unnest({{}}::int[], {{}}::text[], {{}}::int[], {{}}::text[], {{}}::text[], {{}}::text[], {{}}::jsonb[],
                         {{}}::jsonb[], {{}}::jsonb[], {{}}::timestamptz[], {{}}::timestamptz[], {{}}::timestamptz[],
                         {{}}::jsonb[])
    ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET {_UPDATED}
    RETURNING 1)"""
PG_EVENTS = """events AS (
    INSERT INTO execution_events (execution_id, seq, data, created_at)
    SELECT e.execution_id, e.seq, e.data, now()
    FROM unnest({}::int[], {}::int[], {}::jsonb[]) AS e(execution_id, seq, data)
    RETURNING 1)"""
PG_FINISHED = """finished AS (
    UPDATE executions AS x SET status = f.status, output = f.output, error = f.error, finished_at = f.finished_at,
                               resume_at = NULL
    FROM unnest({}::int[], {}::text[], {}::jsonb[], {}::jsonb[], {}::timestamptz[])
         AS f(id, status, output, error, finished_at)
    WHERE x.id = f.id
    RETURNING 1)"""
PG_WAITING = """waiting AS (
    UPDATE executions AS x SET status = 'waiting', resume_at = w.resume_at
    FROM unnest({}::int[], {}::timestamptz[]) AS w(id, resume_at)
    WHERE x.id = w.id
    RETURNING 1)"""
PG_NOTIFY = """notified AS (
    SELECT pg_notify(n.channel, n.payload) FROM unnest({}::text[], {}::text[]) AS n(channel, payload))"""


PG_RENEW = """UPDATE executions SET lease_until = $1 WHERE lease_token = $2 AND id = ANY($3::int[])
    AND EXISTS (SELECT 1 FROM executions AS e WHERE e.id = $4 AND e.lease_token = $2) RETURNING id"""
PG_RELEASE = "UPDATE executions SET lease_token = NULL, lease_until = NULL WHERE lease_token = $1 AND id = ANY($2::int[])"


class _KeptConnection:
    """A connection of the SQLAlchemy pool kept between statements, so each is one round trip: no
    checkout, and no pre-ping (another round trip) each time. A connection idle for longer than
    ``PING_AFTER`` is pinged first, the way the pool would, and one whose statement broke is dropped.
    One statement at a time: its user serialises them."""

    PING_AFTER = 1.0

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._held: AsyncConnection | None = None
        self._pg: Any = None
        self._used = 0.0

    async def call(self, statement: Callable[[Any], Awaitable[T]]) -> T:
        """``statement`` on the driver connection (a new one if the last call dropped it)."""
        pg = await self.driver()
        try:
            return await statement(pg)
        except asyncpg.PostgresError:  # the statement failed (and rolled back) on a working connection
            if pg.is_closed():  # … unless the server ended the session (e.g. admin shutdown)
                await self.drop()
            raise
        except BaseException:
            await self.drop()  # it may be broken (or mid-statement, if cancelled): never reuse it
            raise
        finally:
            self._used = time.monotonic()

    async def driver(self) -> Any:
        if self._held is not None and time.monotonic() - self._used > self.PING_AFTER:
            try:
                await self._pg.fetchval("SELECT 1")
            except Exception:  # e.g. the server restarted: a fresh (pre-pinged) connection from the pool
                await self.drop()
        if self._held is None:
            conn = await self._engine.connect()
            try:
                pg = (await conn.get_raw_connection()).driver_connection
                assert pg is not None
            except BaseException:
                await conn.close()
                raise
            self._held, self._pg = conn, pg
        self._used = time.monotonic()
        return self._pg

    async def drop(self) -> None:
        held, self._held, self._pg = self._held, None, None
        if held is not None:
            try:
                await held.invalidate()
            except Exception:
                log.debug("could not close a run store connection", exc_info=True)
            finally:
                await asyncio.shield(held.close())

    async def close(self) -> None:
        held, self._held, self._pg = self._held, None, None
        if held is not None:
            await held.close()


class _PostgresBackend:
    """Bare asyncpg on connections of the SQLAlchemy pool (its JSON codecs take JSON text).

    Two are kept: the writer's, between groups, and the leases' (claims, renewals and releases, one
    statement at a time), so a job's claim does not wait behind a group's commit."""

    def __init__(self, engine: AsyncEngine, notify: bool) -> None:
        self._engine = engine
        self._notify = notify
        self._writes = _KeptConnection(engine)
        self._leases = _KeptConnection(engine)
        self._lease_lock = asyncio.Lock()

    async def read(self, execution_id: int) -> tuple[dict[str, NodeRunRecord], int]:
        async with self._engine.connect() as conn:
            pg = (await conn.get_raw_connection()).driver_connection
            assert pg is not None
            rows = await pg.fetch(SELECT_RUNS.format(p="$1"), execution_id)
            last = await pg.fetchval(SELECT_LAST_SEQ.format(p="$1"), execution_id)
        return _latest([tuple(r) for r in rows]), last or 0

    async def _lease_statement(self, statement: Callable[[Any], Awaitable[T]]) -> T:
        async with self._lease_lock:
            return await self._leases.call(statement)

    async def claim(self, execution_id: int, token: str, now: float, until: float) -> tuple[Any, ...] | None:
        row = await self._lease_statement(
            lambda pg: pg.fetchrow(CLAIM.format(p="$"), execution_id, token, now, until, _dt(now)))
        return tuple(row) if row is not None else None

    async def renew(self, execution_id: int, children: list[int], token: str, until: float) -> bool:
        ids = await self._lease_statement(
            lambda pg: pg.fetch(PG_RENEW, until, token, [execution_id, *children], execution_id))
        return any(row[0] == execution_id for row in ids)

    async def release(self, execution_ids: list[int], token: str) -> None:
        await self._lease_statement(lambda pg: pg.execute(PG_RELEASE, token, execution_ids))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Write]:
        """The writer's connection, kept between groups (only one writer uses it at a time)."""
        await self._writes.driver()

        async def write(group: list[tuple[int, Transition]]) -> None:
            sql, args = self._statement(group)
            await self._writes.call(lambda pg: pg.fetchval(sql, *args))
        yield write

    def write_now(self, group: list[tuple[int, Transition]]) -> bool:
        return False  # every statement is a round trip: the writer task groups them

    async def write(self, group: list[tuple[int, Transition]]) -> None:
        async with self.connection() as write:
            await write(group)

    def _statement(self, group: list[tuple[int, Transition]]) -> tuple[str, list[Any]]:
        """One statement with only the parts this group needs (each part's arrays are its parameters)."""
        runs = _runs(group)
        events = [(execution_id, e) for execution_id, t in group for e in t.events]
        states = _states(group)
        finished = [(i, s) for i, s in states if s.status != "waiting"]
        waiting = [(i, s) for i, s in states if s.status == "waiting"]
        payloads = [e.to_json().decode() for _, e in events]
        changes = [c for _, t in group for c in t.changes] if self._notify else []
        parts: list[str] = []
        args: list[Any] = []

        def part(template: str, *arrays: list[Any]) -> None:
            parts.append(template.format(*(f"${len(args) + n}" for n in range(1, len(arrays) + 1))))
            args.extend(arrays)

        if runs:
            part(PG_RUNS, [i for i, _ in runs], [r.node_id for _, r in runs], [r.attempt for _, r in runs],
                 [r.node_name for _, r in runs], [r.node_type for _, r in runs], [r.status for _, r in runs],
                 [_json(r.input) for _, r in runs], [_json(r.output) for _, r in runs],
                 [_json(r.error) for _, r in runs], [_dt(r.started_at) for _, r in runs],
                 [_dt(r.finished_at) for _, r in runs], [_dt(r.resume_at) for _, r in runs],
                 [_json(r.logs) for _, r in runs])
        if events:
            part(PG_EVENTS, [i for i, _ in events], [e.seq for _, e in events], payloads)
        if finished:
            part(PG_FINISHED, [i for i, _ in finished], [s.status for _, s in finished],
                 [_json(s.output) for _, s in finished], [_json(s.error) for _, s in finished],
                 [_dt(s.finished_at) for _, s in finished])
        if waiting:
            part(PG_WAITING, [i for i, _ in waiting], [_dt(s.resume_at) for _, s in waiting])
        if self._notify and (events or changes):  # delivered when this statement commits, in this order
            part(PG_NOTIFY, [e.channel for _, e in events] + [c.channel for c in changes],
                 payloads + [c.to_json().decode() for c in changes])
            return f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM notified)", args
        return f"WITH {', '.join(parts)} SELECT 1", args

    async def close(self) -> None:
        await self._writes.close()
        await self._leases.close()
