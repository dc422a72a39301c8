"""Retention on real SQLite and PostgreSQL: by age, by number per workflow, unfinished executions kept,
node runs and events gone with their execution, other workflows and owners untouched, retries unlinked;
and on SQLite a file that stops growing over repeated fill / prune cycles."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.migrate import INCREMENTAL, ensure_incremental_vacuum, upgrade_async
from engine.models import Execution, ExecutionEvent, NodeRun, SessionRow, Workflow, WorkflowVersion
from engine.retention import RetentionPolicy, delete_expired_sessions, prune
from tests.factories import owner_workflow_version

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path / 'retention.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def workflow(sessions: Sessions, email: str) -> WorkflowVersion:
    async with sessions.begin() as db:
        return await owner_workflow_version(db, email=email, name=email.split("@")[0])


async def add_execution(sessions: Sessions, version: WorkflowVersion, *, status: str = "succeeded",
                        finished_days_ago: float | None = 40, payload: str = "x", retry_of: int | None = None) -> int:
    """An execution with two node runs and three events, created and finished that many days ago."""
    finished = NOW - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    async with sessions.begin() as db:
        owner_id = (await db.get_one(Workflow, version.workflow_id)).owner_id
        row = Execution(workflow_id=version.workflow_id, owner_id=owner_id, version_id=version.id, status=status,
                        created_at=(finished or NOW) - timedelta(minutes=1), finished_at=finished, retry_of_id=retry_of,
                        input={"payload": payload})
        db.add(row)
        await db.flush()
        for node in ("a", "b"):
            db.add(NodeRun(execution_id=row.id, node_id=node, node_name=node, node_type="set", status="succeeded",
                           output={"main": [{"payload": payload}]}))
        for seq in (1, 2, 3):
            db.add(ExecutionEvent(execution_id=row.id, seq=seq, data={"type": "node.completed", "payload": payload}))
        return row.id


async def remaining(sessions: Sessions) -> set[int]:
    async with sessions() as db:
        return set(await db.scalars(select(Execution.id)))


async def rows_of(sessions: Sessions, ids: set[int]) -> tuple[int, int]:
    async with sessions() as db:
        runs = await db.scalar(select(func.count()).select_from(NodeRun).where(NodeRun.execution_id.in_(ids)))
        events = await db.scalar(select(func.count()).select_from(ExecutionEvent)
                                 .where(ExecutionEvent.execution_id.in_(ids)))
        return int(runs or 0), int(events or 0)


async def test_by_age_prunes_finished_executions_and_keeps_unfinished_ones(sessions: Sessions) -> None:
    alice, bob = await workflow(sessions, "alice@example.com"), await workflow(sessions, "bob@example.com")
    old = [await add_execution(sessions, alice, status=s) for s in ("succeeded", "failed", "crashed", "cancelled")]
    old.append(await add_execution(sessions, bob, status="failed", finished_days_ago=31))
    recent = [await add_execution(sessions, alice, finished_days_ago=29), await add_execution(sessions, bob,
                                                                                              finished_days_ago=1)]
    unfinished = [await add_execution(sessions, alice, status=s, finished_days_ago=None)
                  for s in ("queued", "running", "waiting")]

    report = await prune(sessions, RetentionPolicy(days=30, batch=2), now=NOW)  # three batches

    assert await remaining(sessions) == set(recent) | set(unfinished)
    assert (report.executions, report.node_runs, report.events) == (5, 10, 15)
    assert await rows_of(sessions, set(old)) == (0, 0)
    assert await rows_of(sessions, set(recent) | set(unfinished)) == (10, 15)
    assert (await prune(sessions, RetentionPolicy(days=30), now=NOW)).executions == 0  # nothing left to do


async def test_by_count_keeps_the_newest_finished_executions_of_each_workflow(sessions: Sessions) -> None:
    busy, quiet = await workflow(sessions, "busy@example.com"), await workflow(sessions, "quiet@example.com")
    busy_runs = [await add_execution(sessions, busy, finished_days_ago=10 - i) for i in range(6)]
    running = await add_execution(sessions, busy, status="running", finished_days_ago=None)
    quiet_runs = [await add_execution(sessions, quiet, finished_days_ago=20 - i) for i in range(2)]

    report = await prune(sessions, RetentionPolicy(days=0, per_workflow=2, batch=3), now=NOW)

    # the two newest finished of the busy workflow, its running one (not counted), all of the quiet one
    assert await remaining(sessions) == {*busy_runs[-2:], running, *quiet_runs}
    assert report.executions == 4 and await rows_of(sessions, set(busy_runs[:4])) == (0, 0)


async def test_both_limits_together(sessions: Sessions) -> None:
    version = await workflow(sessions, "both@example.com")
    ids = [await add_execution(sessions, version, finished_days_ago=days) for days in (50, 5, 4, 3)]
    await prune(sessions, RetentionPolicy(days=30, per_workflow=2), now=NOW)
    assert await remaining(sessions) == set(ids[-2:])


async def test_a_retry_of_a_pruned_execution_is_kept_and_unlinked(sessions: Sessions) -> None:
    version = await workflow(sessions, "retry@example.com")
    original = await add_execution(sessions, version, status="failed", finished_days_ago=40)
    retry = await add_execution(sessions, version, finished_days_ago=2, retry_of=original)
    await add_execution(sessions, version, finished_days_ago=1)
    await prune(sessions, RetentionPolicy(days=30), now=NOW)
    async with sessions() as db:
        kept = await db.get_one(Execution, retry)
        assert kept.retry_of_id is None and await db.get(Execution, original) is None


async def test_an_inactive_policy_prunes_nothing(sessions: Sessions) -> None:
    version = await workflow(sessions, "keep@example.com")
    ids = {await add_execution(sessions, version, finished_days_ago=400) for _ in range(2)}
    assert not RetentionPolicy(days=0, per_workflow=0).active
    assert (await prune(sessions, RetentionPolicy(days=0, per_workflow=0), now=NOW)).executions == 0
    assert await remaining(sessions) >= ids


# -- SQLite: the file stops growing ------------------------------------------------------------------

def file_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_sqlite_file_stays_bounded_over_fill_and_prune_cycles(tmp_path: Path) -> None:
    path = tmp_path / "cycles.db"
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        version = await workflow(sessions, "cycles@example.com")
        keeper = await add_execution(sessions, version, finished_days_ago=0)  # the newest row is never pruned
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL
        empty = file_size(path)
        sizes = []
        for _cycle in range(4):
            for _ in range(60):  # ~6 MiB of node output and events per cycle
                await add_execution(sessions, version, finished_days_ago=60, payload="p" * 20_000)
            await add_execution(sessions, version, finished_days_ago=0)
            full = file_size(path)
            report = await prune(sessions, RetentionPolicy(days=30), now=NOW)
            assert report.executions == 60 and report.vacuumed_pages > 0
            sizes.append(file_size(path))
            assert full > empty + 4_000_000, "the fill did not grow the file: the test would prove nothing"
        # after each prune the file is back near its empty size, not at the size of the data it once held
        assert max(sizes) < empty + 1_000_000, (empty, sizes)
        assert sizes[-1] <= sizes[0] + 200_000, sizes
        assert keeper in await remaining(sessions)
    finally:
        await engine.dispose()


async def test_sqlite_database_made_without_incremental_vacuum_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as a database made before Patchwire set auto_vacuum
        conn.execute("CREATE TABLE legacy (x TEXT)")
        conn.executemany("INSERT INTO legacy VALUES (?)", [("y" * 1000,)] * 200)
    assert sqlite3.connect(path).execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    assert ensure_incremental_vacuum(f"sqlite:///{path}") is True
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL
        assert conn.execute("SELECT count(*) FROM legacy").fetchone()[0] == 200
    assert ensure_incremental_vacuum(f"sqlite:///{path}") is False  # once
    assert os.path.exists(path)


async def test_sqlite_keeps_the_newest_execution_row(sessions: Sessions) -> None:
    version = await workflow(sessions, "newest@example.com")
    older, newest = await add_execution(sessions, version), await add_execution(sessions, version)
    await prune(sessions, RetentionPolicy(days=30), now=NOW)
    sqlite = sessions.kw["bind"].dialect.name == "sqlite"
    # SQLite would give the next execution the id of a deleted newest row (and its old queue job key)
    assert await remaining(sessions) == ({newest} if sqlite else set()), older


async def test_expired_sessions_are_deleted_in_batches_and_live_ones_kept(sessions: Sessions) -> None:
    expired = {f"expired-{n}": NOW - timedelta(minutes=n + 1) for n in range(5)}
    live = {"live": NOW + timedelta(days=1), "at-no-expiry": None}
    async with sessions.begin() as db:
        db.add_all(SessionRow(key=key, data=b"{}", expires_at=at) for key, at in {**expired, **live}.items())
    assert await delete_expired_sessions(sessions, now=NOW, batch=2) == 5  # three batches
    async with sessions() as db:
        assert set(await db.scalars(select(SessionRow.key))) == set(live)
    assert await delete_expired_sessions(sessions, now=NOW) == 0
