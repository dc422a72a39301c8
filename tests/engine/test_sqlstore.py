"""The SQL run store's fast paths, on real databases: a SQLite commit made on the event loop's
thread when the write lock is free (and on the thread path when another connection holds it), the
PostgreSQL writer's kept connection, replaced when the server dropped it, and the execution's lease
(claim, renewal, release) on the store's own connection."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import sqlstore
from engine.database import make_engine, make_sessionmaker
from engine.events import Event
from engine.migrate import upgrade_async
from engine.models import Execution, ExecutionEvent, NodeRun, Workflow
from engine.publisher import LocalSink, SafeSink
from engine.sqlstore import SQLRunStore
from engine.store import ExecutionState, NodeRunRecord, Transition
from tests.factories import owner_workflow_version


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    yield url, make_sessionmaker(engine)
    await engine.dispose()


async def execution(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions.begin() as s:
        version = await owner_workflow_version(s, email=f"store{time.monotonic_ns()}@example.com", name="Store")
        owner_id = (await s.get_one(Workflow, version.workflow_id)).owner_id
        row = Execution(workflow_id=version.workflow_id, owner_id=owner_id, version_id=version.id, status="running")
        s.add(row)
        await s.flush()
        return row.id


def step(execution_id: int, n: int, **state: Any) -> Transition:
    """Node ``n`` succeeds and node ``n + 1`` starts, with their two events."""
    now = time.time()
    done = NodeRunRecord(f"n{n}", f"Node {n}", "set", 1, "succeeded", input=[{"n": n}], output={"main": [{"n": n}]},
                         started_at=now, finished_at=now)
    started = NodeRunRecord(f"n{n + 1}", f"Node {n + 1}", "set", 1, "running", input=[{"n": n}], started_at=now)
    events = [Event(type=t, execution_id=execution_id, workflow_id=1, seq=2 * n + i, at=now, node_id=r.node_id)
              for i, (t, r) in enumerate((("node.completed", done), ("node.started", started)), start=1)]
    return Transition([done, started], events, ExecutionState(**state) if state else None)


async def stored(sessions: async_sessionmaker[AsyncSession], execution_id: int) -> tuple[list[Any], list[int], str]:
    async with sessions() as s:
        runs = (await s.execute(select(NodeRun.node_id, NodeRun.status).where(NodeRun.execution_id == execution_id)
                                .order_by(NodeRun.id))).all()
        seqs = list((await s.scalars(select(ExecutionEvent.seq).where(ExecutionEvent.execution_id == execution_id)
                                     .order_by(ExecutionEvent.seq))).all())
        status = (await s.get_one(Execution, execution_id)).status
    return [tuple(r) for r in runs], seqs, status


async def test_commits_are_durable_when_commit_returns(db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    execution_id = await execution(sessions)
    store = SQLRunStore(sessions)
    try:
        for n in range(5):  # the first one opens the connection (thread path); the rest may go inline
            await store.commit(execution_id, step(execution_id, n))
            runs, seqs, _ = await stored(sessions, execution_id)
            assert seqs == list(range(1, 2 * n + 3)), "gap-free, visible to another connection at once"
            assert runs[-1] == (f"n{n + 1}", "running")
        await store.commit(execution_id, step(execution_id, 5, status="succeeded", finished_at=time.time()))
        runs, seqs, status = await stored(sessions, execution_id)
        assert status == "succeeded" and seqs == list(range(1, 13))
        assert [r[1] for r in runs] == ["succeeded"] * 6 + ["running"]
        assert (await store.resume_state(execution_id))[1] == 12
    finally:
        await store.close()


async def test_sqlite_commit_waits_for_a_write_lock_held_by_another_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    execution_id = await execution(sessions)
    store = SQLRunStore(sessions)
    other = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        await store.commit(execution_id, step(execution_id, 0))
        other.execute("BEGIN IMMEDIATE")  # the web app or the queue is writing
        commit = asyncio.ensure_future(store.commit(execution_id, step(execution_id, 1)))
        await asyncio.sleep(0.3)
        assert not commit.done(), "the inline attempt gave way; the thread path waits for the lock"
        later = asyncio.ensure_future(store.commit(execution_id, step(execution_id, 2)))
        await asyncio.sleep(0.05)
        assert not later.done(), "queued behind the waiting commit, never before it"
        other.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(commit, later), 5)
        _, seqs, _ = await stored(sessions, execution_id)
        assert seqs == list(range(1, 7))
    finally:
        other.close()
        await store.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_writer_replaces_a_connection_the_server_dropped(postgres_url: str) -> None:
    await upgrade_async(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    store = SQLRunStore(sessions)
    try:
        execution_id = await execution(sessions)
        await store.commit(execution_id, step(execution_id, 0))
        pid = await store._backend._writes._pg.fetchval("SELECT pg_backend_pid()")  # type: ignore[union-attr]
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(store._backend._writes.PING_AFTER + 0.1)  # type: ignore[union-attr]
        await store.commit(execution_id, step(execution_id, 1))  # pinged, found dead, replaced
        _, seqs, _ = await stored(sessions, execution_id)
        assert seqs == [1, 2, 3, 4]
    finally:
        await store.close()
        await engine.dispose()


async def test_a_bad_transition_fails_alone_in_its_group(db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    execution_id = await execution(sessions)
    store = SQLRunStore(sessions)
    try:
        await store.commit(execution_id, step(execution_id, 0))  # opens the connection
        missing = execution_id + 10_000  # no such execution: its rows break a foreign key
        results = await asyncio.gather(store.commit(execution_id, step(execution_id, 1)),
                                       store.commit(missing, step(missing, 1)),
                                       store.commit(execution_id, step(execution_id, 2)), return_exceptions=True)
        assert results[0] is False and results[2] is False, results
        assert isinstance(results[1], Exception), results
        await store.commit(execution_id, step(execution_id, 3))  # the store still works
        _, seqs, _ = await stored(sessions, execution_id)
        assert seqs == list(range(1, 9))
    finally:
        await store.close()


# -- the execution's lease, on the store's own connection --------------------------------------

async def queued(sessions: async_sessionmaker[AsyncSession], **fields: Any) -> int:
    """A queued execution of a workflow with settings, with ``fields`` set on the row."""
    async with sessions.begin() as s:
        version = await owner_workflow_version(s, email=f"lease{time.monotonic_ns()}@example.com", name="Lease")
        workflow = await s.get_one(Workflow, version.workflow_id)
        workflow.settings = {"execution_timeout": 42}
        row = Execution(workflow_id=workflow.id, owner_id=workflow.owner_id, version_id=version.id,
                        **{"status": "queued", "trigger": "webhook", "input": {"body": {"n": [1, 2.5, "é"]}}, **fields})
        s.add(row)
        await s.flush()
        return row.id


async def row_of(sessions: async_sessionmaker[AsyncSession], execution_id: int) -> Execution:
    async with sessions() as s:
        return await s.get_one(Execution, execution_id)


async def test_a_claim_takes_the_lease_and_returns_what_the_job_needs(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    execution_id = await queued(sessions)
    store = SQLRunStore(sessions)
    try:
        before = time.time()
        claim = await store.claim(execution_id, "a" * 32, lease=5)
        assert claim is not None
        row = await row_of(sessions, execution_id)
        assert (claim.workflow_id, claim.version_id, claim.owner_id) == (row.workflow_id, row.version_id, row.owner_id)
        assert (claim.trigger, claim.input, claim.interruptions) == ("webhook", {"body": {"n": [1, 2.5, "é"]}}, 0)
        assert claim.settings == {"execution_timeout": 42} and claim.has_history is False
        assert (row.status, row.lease_token, row.interruptions) == ("running", "a" * 32, 0)
        assert row.lease_until is not None and before + 5 <= row.lease_until <= time.time() + 5
        assert row.started_at is not None and row.started_at.tzinfo is not None, "the ORM reads it back, aware"
        assert before - 1 <= row.started_at.timestamp() <= time.time() + 1
    finally:
        await store.close()


async def test_a_claim_is_refused_while_another_live_lease_holds_the_execution(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    execution_id = await queued(sessions)
    store = SQLRunStore(sessions)
    try:
        assert await store.claim(execution_id, "a" * 32, lease=60) is not None
        first = await row_of(sessions, execution_id)
        assert await store.claim(execution_id, "b" * 32, lease=60) is None
        again = await row_of(sessions, execution_id)
        assert (again.lease_token, again.lease_until, again.interruptions) == ("a" * 32, first.lease_until, 0)
        async with sessions.begin() as s:
            (await s.get_one(Execution, execution_id)).status = "succeeded"
        await store.release_lease([execution_id], "a" * 32)
        assert await store.claim(execution_id, "c" * 32, lease=60) is None, "an ended execution is never claimed"
    finally:
        await store.close()


async def test_a_lease_its_holder_never_released_counts_an_interruption(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    started = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    execution_id = await queued(sessions, status="running", started_at=started, interruptions=2,
                                lease_token="dead" * 8, lease_until=time.time() - 1)
    store = SQLRunStore(sessions)
    try:
        claim = await store.claim(execution_id, "a" * 32, lease=0.5)  # the dead holder's lease has run out
        assert claim is not None and claim.interruptions == 3
        row = await row_of(sessions, execution_id)
        assert (row.lease_token, row.interruptions, row.started_at) == ("a" * 32, 3, started), "first start kept"
        await store.release_lease([execution_id], "a" * 32)
        row = await row_of(sessions, execution_id)
        assert (row.lease_token, row.lease_until) == (None, None)
        claim = await store.claim(execution_id, "b" * 32, lease=5)  # released, not died: not counted
        assert claim is not None and claim.interruptions == 3
    finally:
        await store.close()


async def test_a_claim_tells_whether_node_runs_or_events_are_stored(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    store = SQLRunStore(sessions)
    try:
        fresh, stepped, copied, announced = [await queued(sessions) for _ in range(4)]
        await store.commit(stepped, step(stepped, 0))  # what a job that ran wrote
        async with sessions.begin() as s:  # what a retry from the failed node copies: rows, no events
            s.add(NodeRun(execution_id=copied, node_id="n0", node_name="Node 0", node_type="set", status="succeeded"))
        started = Event(type="workflow.started", execution_id=announced, workflow_id=1, seq=1, at=time.time())
        await store.commit(announced, Transition(events=[started]))  # an event, no node run
        claims = {i: await store.claim(i, "a" * 32, lease=5) for i in (fresh, stepped, copied, announced)}
        assert {i: c.has_history if c else None for i, c in claims.items()} == {
            fresh: False, stepped: True, copied: True, announced: True}
    finally:
        await store.close()


async def test_a_lease_is_renewed_with_its_sub_executions_and_released_only_by_its_token(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    store = SQLRunStore(sessions)
    try:
        parent = await queued(sessions)
        assert await store.claim(parent, "a" * 32, lease=1) is not None
        child = await queued(sessions, status="running", trigger="sub_workflow", lease_token="a" * 32,
                             lease_until=time.time() + 1)
        other = await queued(sessions, status="running", lease_token="b" * 32, lease_until=time.time() + 1)
        assert await store.renew_lease(parent, {child, other}, "a" * 32, lease=60)
        until = {i: (await row_of(sessions, i)).lease_until for i in (parent, child, other)}
        assert until[parent] is not None and until[parent] > time.time() + 50
        assert until[child] == until[parent], "the sub-execution shares its caller's lease"
        assert until[other] is not None and until[other] < time.time() + 2, "another token's lease is untouched"
        assert not await store.renew_lease(parent, {child}, "b" * 32, lease=60), "not b's lease"
        assert not await store.renew_lease(other, set(), "a" * 32, lease=60)
        assert (await row_of(sessions, other)).lease_until == until[other]
        await store.release_lease([parent, child, other], "a" * 32)
        tokens = [(await row_of(sessions, i)).lease_token for i in (parent, child, other)]
        assert tokens == [None, None, "b" * 32]
        assert not await store.renew_lease(parent, {child}, "a" * 32, lease=60), "a released lease is gone"
    finally:
        await store.close()


async def test_sqlite_claim_stores_started_at_the_way_sqlalchemy_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    store = SQLRunStore(sessions)
    try:
        by_orm = await queued(sessions, started_at=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
        by_claim = await queued(sessions)
        assert await store.claim(by_claim, "a" * 32, lease=5) is not None
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            (orm_text,), (claim_text,) = raw.execute("SELECT started_at FROM executions WHERE id IN (?, ?) ORDER BY id",
                                                     (by_orm, by_claim)).fetchall()
        finally:
            raw.close()
        assert orm_text == "2024-05-06 07:08:09.000000"
        pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
        assert re.fullmatch(pattern, orm_text) and re.fullmatch(pattern, claim_text), (orm_text, claim_text)
        async with sessions() as s:  # the ORM still filters and orders on it as text
            newest = await s.scalar(select(Execution.id).where(Execution.started_at > datetime(2024, 5, 6, tzinfo=UTC))
                                    .order_by(Execution.started_at.desc()).limit(1))
        assert newest == by_claim
    finally:
        await store.close()
        await engine.dispose()


class GatedSink:
    """A live channel that answers only when the test lets it (a slow or stalled Redis)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.published: list[int] = []
        self.calls: list[int] = []

    async def publish(self, event: Event) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: list[Event]) -> None:
        await self.gate.wait()
        self.calls.append(len(events))
        self.published += [e.seq for e in events]


async def test_a_stalled_channel_does_not_hold_up_commits_and_events_go_out_in_commit_order(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    sink = GatedSink()
    store = SQLRunStore(sessions, sink=sink)
    execution_id = await execution(sessions)
    for n in range(5):  # each returns once durable, although nothing could be published yet
        assert await asyncio.wait_for(store.commit(execution_id, step(execution_id, n)), 10) is True
    assert sink.published == []
    assert len((await stored(sessions, execution_id))[1]) == 10
    sink.gate.set()
    await store.close()  # drains the outbox
    assert sink.published == list(range(1, 11))


async def test_the_outbox_drops_the_oldest_events_past_its_limit(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    sink = GatedSink()
    store = SQLRunStore(sessions, sink=sink, outbox_limit=4)
    execution_id = await execution(sessions)
    for n in range(5):
        await store.commit(execution_id, step(execution_id, n))
    sink.gate.set()
    await store.close()
    # the first batch was taken before the limit applied; of the rest, only the newest 4 remain
    assert sink.published[-4:] == [7, 8, 9, 10]
    assert len(sink.published) < 10
    assert len((await stored(sessions, execution_id))[1]) == 10  # the database keeps every event


def finished(execution_id: int, seq: int) -> Transition:
    event = Event(type="workflow.finished", execution_id=execution_id, workflow_id=1, seq=seq, at=time.time())
    return Transition([], [event], ExecutionState("succeeded", {}, None, finished_at=time.time()))


async def test_an_overflowing_outbox_keeps_the_executions_own_events(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    sink = GatedSink()
    store = SQLRunStore(sessions, sink=sink, outbox_limit=2)
    execution_id = await execution(sessions)
    await store.commit(execution_id, step(execution_id, 0))
    await store.commit(execution_id, finished(execution_id, 3))
    for n in range(2, 6):
        await store.commit(execution_id, step(execution_id, n))
    sink.gate.set()
    await store.close()
    assert 3 in sink.published, "workflow.finished is never dropped: a stream waits for it"
    assert sink.published[-2:] == [11, 12]


async def test_a_backlog_goes_out_in_chunks(db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    sink = GatedSink()
    store = SQLRunStore(sessions, sink=sink)
    execution_id = await execution(sessions)
    now = time.time()
    for batch in range(3):
        events = [Event(type="node.completed", execution_id=execution_id, workflow_id=1, seq=batch * 600 + i, at=now)
                  for i in range(1, 601)]
        await store.commit(execution_id, Transition([], events))
    sink.gate.set()
    await store.close()
    assert len(sink.published) == 1800 and sink.published == sorted(sink.published)
    assert max(sink.calls) <= 1000 and len(sink.calls) >= 2


async def test_closing_with_a_stalled_channel_gives_up_after_its_wait(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    sink = GatedSink()  # never opened: a Redis that stopped answering
    store = SQLRunStore(sessions, sink=sink, outbox_close_wait=0.2)
    execution_id = await execution(sessions)
    await store.commit(execution_id, step(execution_id, 0))
    await asyncio.wait_for(store.close(), 10)  # a guard against hanging, not a timing assertion
    assert sink.published == []


# -- waiting for SQLite's write lock (``_retry_busy``) ----------------------------------------------


def _locked_db(tmp_path: Path) -> tuple[str, sqlite3.Connection]:
    path = str(tmp_path / "locks.db")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (v INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    return path, holder


def _insert(conn: sqlite3.Connection) -> str:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("COMMIT")
    return "written"


class _RecordingTime:
    """``time`` for engine/sqlstore.py, recording the sleeps of its lock waits (and really sleeping them)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_a_locked_write_waits_in_short_steps_until_the_lock_is_free(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path, holder = _locked_db(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=0")
    clock = _RecordingTime()
    monkeypatch.setattr(sqlstore, "time", clock)
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        assert sqlstore._retry_busy(conn, _insert, timeout=10) == "written"
    finally:
        release.join()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert not conn.in_transaction
    # 0.2 ms, doubling to 2 ms, then 2 ms steps (SQLite's own handler sleeps up to 100 ms at a time)
    assert clock.sleeps[:4] == [0.0002, 0.0004, 0.0008, 0.0016]
    assert set(clock.sleeps[4:]) <= {0.002} and sum(clock.sleeps) >= 0.04
    conn.close()
    holder.close()


async def test_the_thread_path_waits_for_the_lock_and_keeps_the_connection_when_cancelled(tmp_path: Path) -> None:
    path, holder = _locked_db(tmp_path)
    backend = sqlstore._SQLiteBackend(path)
    try:
        assert await backend._in_thread(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (0,)
        waiting = asyncio.ensure_future(backend._in_thread(_insert))  # the write lock is held by ``holder``
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0.05)
        assert not waiting.done()  # cancelled, but its thread still uses the connection ...
        assert backend._lock is not None and backend._lock.locked()  # ... so nothing else may
        assert backend._inline(lambda c: "inline") == (False, None)
        holder.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not backend._lock.locked()
        assert await backend._in_thread(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (1,)
    finally:
        await backend.close()
        holder.close()


def test_a_lock_that_is_never_released_fails_with_busy_after_the_timeout(tmp_path: Path) -> None:
    path, holder = _locked_db(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=0")
    t0 = time.monotonic()
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlstore._retry_busy(conn, _insert, timeout=0.1)
    assert caught.value.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    assert 0.09 <= time.monotonic() - t0 < 5
    assert not conn.in_transaction
    holder.execute("ROLLBACK")
    conn.close()
    holder.close()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    conn = sqlite3.connect(str(tmp_path / "plain.db"), isolation_level=None)
    calls = []

    def bad(c: sqlite3.Connection) -> None:
        calls.append(1)
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO missing VALUES (1)")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        sqlstore._retry_busy(conn, bad, timeout=10)
    assert calls == [1] and not conn.in_transaction
    conn.close()


async def test_an_immediate_sink_has_each_commits_messages_when_commit_returns(
        db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    """The embedded profile's ``LocalSink``: no outbox task between the commit and the hub in this process."""
    _, sessions = db
    delivered: list[Any] = []
    store = SQLRunStore(sessions, sink=SafeSink(LocalSink(delivered.append)))
    execution_id = await execution(sessions)
    try:
        for n in range(3):
            assert await store.commit(execution_id, step(execution_id, n)) is True
            # checked before this task yields: an outbox task would not have run yet
            assert [e.seq for e in delivered] == list(range(1, 2 * n + 3))
    finally:
        await store.close()


async def test_a_failing_immediate_sink_is_logged_and_the_commit_stands(
        db: tuple[str, async_sessionmaker[AsyncSession]], caplog: pytest.LogCaptureFixture) -> None:
    _, sessions = db

    def broken(message: Any) -> None:
        raise RuntimeError("the hub is broken")

    store = SQLRunStore(sessions, sink=SafeSink(LocalSink(broken)))
    execution_id = await execution(sessions)
    try:
        assert await store.commit(execution_id, step(execution_id, 0)) is True
    finally:
        await store.close()
    assert (await stored(sessions, execution_id))[1] == [1, 2]
    assert "could not deliver 2 messages in process" in caplog.text
