"""The SQL run store's fast paths, on real databases: a SQLite commit made on the event loop's
thread when the write lock is free (and on the thread path when another connection holds it), and
the PostgreSQL writer's kept connection, replaced when the server dropped it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.events import Event
from engine.migrate import upgrade_async
from engine.models import Execution, ExecutionEvent, NodeRun, Workflow
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
        pid = await store._backend._pg.fetchval("SELECT pg_backend_pid()")  # type: ignore[union-attr]
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(store._backend.PING_AFTER + 0.1)  # type: ignore[union-attr]
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
