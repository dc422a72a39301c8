"""Retention: finished executions are pruned, with their node runs and events, in bounded batches.

Two limits, either or both (``RetentionPolicy``): an age (``days`` after the execution *finished*) and a
number per workflow (the newest ``per_workflow`` finished executions of each workflow are kept). Only
executions in a terminal state (``succeeded``, ``failed``, ``crashed``, ``cancelled``) are ever pruned —
queued, running and waiting ones stay, whatever their age, and do not count towards ``per_workflow``.

Each batch (``batch`` executions) is one short transaction: its ``execution_events``, its ``node_runs``,
the ``retry_of_id`` of retries that point at it (set to NULL, as the foreign key would), then the
executions themselves, re-checked to be terminal. Nothing else references an execution: a sub-workflow's
execution is linked from its caller's node run only by the id in its output or error (a link to a pruned
one is a 404, like any other missing execution), and the workflow versions they pinned are kept.

On SQLite the newest execution row is never pruned: SQLite gives a new row the largest rowid plus one, and
an execution id that came back would collide with its old job key in the queue. After a prune,
``PRAGMA incremental_vacuum`` returns the freed pages to the file system in chunks (the database uses
``auto_vacuum=INCREMENTAL``, engine/database.py and engine/migrate.py), so the file stops growing.

The same upkeep pass deletes expired web sessions (``delete_expired_sessions``), whatever the policy: a
session nobody uses again would otherwise stay for ever.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import metrics
from engine.binary.store import prune_binary
from engine.database import BUSY_TIMEOUT_MS, connect_sqlite
from engine.models import TERMINAL_STATUSES, Execution, ExecutionEvent, NodeRun, SessionRow

log = logging.getLogger("patchwire.retention")
VACUUM_CHUNK = 2000
"""Pages freed per ``incremental_vacuum`` statement (8 MiB at 4 KiB pages): each is one short write lock."""
PAUSE = 0.02
"""Seconds between batches, so other writers waiting for SQLite's lock get their turn."""
SESSION_BATCH = 1000
"""Expired sessions deleted per transaction."""


@dataclass(frozen=True)
class RetentionPolicy:
    days: float = 30.0
    """Prune finished executions this many days after they ended; 0: no age limit."""
    per_workflow: int = 0
    """Keep at most this many finished executions per workflow; 0: no limit."""
    batch: int = 200
    binary_dir: Path | None = None
    """Where binary data files are kept (engine/binary/): data no execution holds any more is pruned too."""

    @property
    def active(self) -> bool:
        return self.days > 0 or self.per_workflow > 0


@dataclass
class PruneReport:
    executions: int = 0
    node_runs: int = 0
    events: int = 0
    vacuumed_pages: int = 0
    binary: int = 0
    """Binary data deleted (its execution was pruned, or never made: engine/binary/)."""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


async def prune(sessions: async_sessionmaker[AsyncSession], policy: RetentionPolicy, *,
                now: datetime | None = None) -> PruneReport:
    """One pass: prune everything the policy allows, then (SQLite) give the space back."""
    report = PruneReport()
    if policy.days > 0:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=policy.days)
        await _prune_all(sessions, policy, report, _older_than(cutoff))
    if policy.per_workflow > 0:
        for workflow_id in await _crowded_workflows(sessions, policy.per_workflow):
            beyond = await _beyond_newest(sessions, workflow_id, policy.per_workflow)
            if beyond is not None:
                await _prune_all(sessions, policy, report, beyond)
    report.binary = await prune_binary(sessions, policy.binary_dir, now=now)
    if report.executions and _sqlite_path(sessions) is not None:
        report.vacuumed_pages = await vacuum(sessions)
    metrics.EXECUTIONS_PRUNED.inc(report.executions)
    if report.executions:
        log.info("pruned %d executions (%d node runs, %d events)", report.executions, report.node_runs,
                 report.events)
    return report


def _finished() -> Select[tuple[int]]:
    return select(Execution.id).where(Execution.status.in_(TERMINAL_STATUSES))


def _older_than(cutoff: datetime) -> Select[tuple[int]]:
    return _finished().where(Execution.finished_at < cutoff).order_by(Execution.finished_at)


async def _crowded_workflows(sessions: async_sessionmaker[AsyncSession], keep: int) -> list[int]:
    """Workflows with more than ``keep`` executions of any status (an index-only count; exact below)."""
    async with sessions() as session:
        rows = await session.scalars(select(Execution.workflow_id).group_by(Execution.workflow_id)
                                     .having(func.count() > keep))
        return list(rows)


async def _beyond_newest(sessions: async_sessionmaker[AsyncSession], workflow_id: int,
                         keep: int) -> Select[tuple[int]] | None:
    """The finished executions of the workflow older than its ``keep`` newest finished ones (ids grow)."""
    of_workflow = _finished().where(Execution.workflow_id == workflow_id)
    async with sessions() as session:
        first_pruned = await session.scalar(of_workflow.order_by(Execution.id.desc()).offset(keep).limit(1))
    if first_pruned is None:
        return None
    return of_workflow.where(Execution.id <= first_pruned).order_by(Execution.id)


async def _prune_all(sessions: async_sessionmaker[AsyncSession], policy: RetentionPolicy, report: PruneReport,
                     candidates: Select[tuple[int]]) -> None:
    sqlite = _sqlite_path(sessions) is not None
    while True:
        async with sessions.begin() as session:
            query = candidates
            if sqlite:
                query = query.where(Execution.id < select(func.max(Execution.id)).scalar_subquery())
            ids = list(await session.scalars(query.limit(policy.batch)))
            if ids:
                await _delete_batch(session, ids, report)
        if len(ids) < policy.batch:
            return
        await asyncio.sleep(PAUSE)


async def _delete_batch(session: AsyncSession, ids: list[int], report: PruneReport) -> None:
    report.events += _count(await session.execute(delete(ExecutionEvent).where(ExecutionEvent.execution_id.in_(ids))))
    report.node_runs += _count(await session.execute(delete(NodeRun).where(NodeRun.execution_id.in_(ids))))
    await session.execute(update(Execution).where(Execution.retry_of_id.in_(ids)).values(retry_of_id=None)
                          .execution_options(synchronize_session=False))
    report.executions += _count(await session.execute(
        delete(Execution).where(Execution.id.in_(ids), Execution.status.in_(TERMINAL_STATUSES))
        .execution_options(synchronize_session=False)))


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _sqlite_path(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    url = sessions.kw["bind"].url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(url.database)


async def vacuum(sessions: async_sessionmaker[AsyncSession]) -> int:
    """SQLite: free the database's empty pages (chunk by chunk), then checkpoint the WAL so the file shrinks."""
    path = _sqlite_path(sessions)
    return 0 if path is None else await asyncio.to_thread(incremental_vacuum, path)


def incremental_vacuum(path: str) -> int:
    conn = connect_sqlite(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        freed = 0
        while (free := conn.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
            # executescript steps the pragma to its end (execute() would free one page per step)
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_CHUNK})")
            left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if left >= free:  # auto_vacuum is not INCREMENTAL here (not converted yet): nothing to free
                break
            freed += free - left
        _truncate_wal(conn)
        return freed
    finally:
        conn.close()


CHECKPOINT_WAIT_MS = 100
"""A ``TRUNCATE`` checkpoint keeps new writers out while it waits for readers: never longer than this."""


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the (now smaller) database file and empty it. Best effort: with readers still on an
    older snapshot it gives up after ``CHECKPOINT_WAIT_MS``, and the next checkpoint finishes the job."""
    conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as exc:
        log.info("WAL checkpoint after the prune did not complete: %s", exc)


async def delete_expired_sessions(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
                                  batch: int = SESSION_BATCH) -> int:
    """Delete the web sessions whose expiry has passed (in batches, over the ``expires_at`` index); returns
    how many. A session is also deleted when someone presents it after its expiry; this catches the rest."""
    cutoff, deleted = now or datetime.now(UTC), 0
    while True:
        async with sessions.begin() as session:
            expired = select(SessionRow.key).where(SessionRow.expires_at <= cutoff).limit(batch)
            count = _count(await session.execute(delete(SessionRow).where(SessionRow.key.in_(expired.scalar_subquery()))
                                                 .execution_options(synchronize_session=False)))
        deleted += count
        if count < batch:
            return deleted
        await asyncio.sleep(PAUSE)


async def prune_forever(sessions: async_sessionmaker[AsyncSession], policy: RetentionPolicy, every: float) -> None:
    """The worker's upkeep loop: a pass now and then every ``every`` seconds — executions as the policy says
    (none when it is inactive), and expired web sessions always; a failed pass is logged. Passes of several
    workers may overlap: they delete the same rows at most once (harmless)."""
    while True:
        try:
            if policy.active:
                await prune(sessions, policy)
            else:  # binary data of executions deleted by hand, or never made
                await prune_binary(sessions, policy.binary_dir)
            await delete_expired_sessions(sessions)
        except Exception:
            log.warning("prune pass failed; trying again in %s s", every, exc_info=True)
        await asyncio.sleep(every)
