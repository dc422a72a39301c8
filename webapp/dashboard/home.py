"""The home dashboard's facts: the owner's executions now (counts, the last finished, recent failures) and
the global queue.

The counts are the owner's; the workers and the queue depth are facts about the whole installation
(one queue serves every user) and are labelled so on the page. Each query is meant to stay cheap at
any table size: the active counts read the few rows the ``status`` index finds, the failure count and
the recent failures a day / a week of the owner's rows through ``(owner_id, created_at)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from saq import Queue
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.executions import FAILED_STATUSES
from engine.models import TERMINAL_STATUSES, Execution, Workflow

ACTIVE_STATUSES = ("running", "queued", "waiting")
FAILED_WINDOW = timedelta(hours=24)
RECENT_FAILURES_WINDOW = timedelta(days=7)
RECENT_FAILURES = 10
RECENT_FINISHED = 5
log = logging.getLogger("patchwire.dashboard")


@dataclass(frozen=True)
class Counts:
    """The owner's executions: running, queued and waiting now; failed or crashed, created in the last 24 h."""

    running: int
    queued: int
    waiting: int
    failed_24h: int


@dataclass(frozen=True)
class RecentFailure:
    execution_id: int
    workflow_id: int
    workflow_name: str
    status: str
    node: str
    message: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class FinishedRun:
    """One of the owner's executions that ended, whatever the outcome."""

    execution_id: int
    workflow_id: int
    workflow_name: str
    status: str
    started_at: datetime | None
    finished_at: datetime

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return max((self.finished_at - self.started_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class WorkerLoad:
    """One live worker as it last reported itself (SAQ writes its info every 10 s)."""

    id: str
    host: str | None
    pid: int | None
    concurrency: int | None
    active: int | None
    complete: int
    failed: int
    uptime_seconds: float

    @property
    def load(self) -> float | None:
        """The share of its slots in use, 0–1; unknown for workers that do not report it."""
        if self.active is None or not self.concurrency:
            return None
        return self.active / self.concurrency


@dataclass(frozen=True)
class QueueFacts:
    """The queue as a whole (every user's jobs): depth, running jobs, workers online."""

    name: str
    queued: int = 0
    active: int = 0
    scheduled: int = 0
    workers: list[WorkerLoad] = field(default_factory=list)
    error: str | None = None
    """Set when the queue did not answer: the page says so instead of failing."""


@dataclass
class HomeService:
    db: AsyncSession
    owner_id: int

    async def counts(self, now: datetime) -> Counts:
        by_status = dict((await self.db.execute(
            select(Execution.status, func.count()).where(Execution.status.in_(ACTIVE_STATUSES),
                                                         Execution.owner_id == self.owner_id)
            .group_by(Execution.status))).all())
        failed = await self.db.scalar(select(func.count()).select_from(Execution).where(
            Execution.owner_id == self.owner_id, Execution.created_at >= now - FAILED_WINDOW,
            Execution.status.in_(FAILED_STATUSES)))
        return Counts(by_status.get("running", 0), by_status.get("queued", 0), by_status.get("waiting", 0),
                      failed or 0)

    async def recent_failures(self, now: datetime, limit: int = RECENT_FAILURES) -> list[RecentFailure]:
        """The owner's newest failed or crashed executions of the last week, newest first."""
        query = (select(Execution, Workflow.name).join(Workflow, Workflow.id == Execution.workflow_id)
                 .where(Execution.owner_id == self.owner_id, Execution.created_at >= now - RECENT_FAILURES_WINDOW,
                        Execution.status.in_(FAILED_STATUSES))
                 .order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit))
        return [_failure(execution, name) for execution, name in (await self.db.execute(query)).all()]

    async def recent_finished(self, limit: int = RECENT_FINISHED) -> list[FinishedRun]:
        """The owner's last executions that ended (succeeded, failed, crashed or cancelled), newest end first."""
        query = (select(Execution, Workflow.name).join(Workflow, Workflow.id == Execution.workflow_id)
                 .where(Execution.owner_id == self.owner_id, Execution.status.in_(TERMINAL_STATUSES),
                        Execution.finished_at.is_not(None))
                 .order_by(Execution.finished_at.desc(), Execution.id.desc()).limit(limit))
        return [FinishedRun(execution.id, execution.workflow_id, name, execution.status, execution.started_at,
                            execution.finished_at) for execution, name in (await self.db.execute(query)).all()]


def _failure(execution: Execution, workflow_name: str) -> RecentFailure:
    error = execution.error or {}
    return RecentFailure(execution.id, execution.workflow_id, workflow_name, execution.status,
                         str(error.get("node_name") or "Workflow"), str(error.get("message") or ""),
                         execution.created_at, execution.finished_at)


async def queue_facts(queue: Queue) -> QueueFacts:
    """What ``queue.info()`` says; a queue that does not answer is reported, not raised."""
    try:
        info = await queue.info()
    except Exception as exc:  # the dashboard must show that the queue is down, not fail with it
        log.warning("queue info failed", exc_info=True)
        return QueueFacts(queue.name, error=f"{type(exc).__name__}: {exc}"[:200])
    workers = sorted((_worker(worker_id, data) for worker_id, data in (info.get("workers") or {}).items()),
                     key=lambda w: (w.host or "", w.pid or 0, w.id))
    return QueueFacts(info.get("name") or queue.name, int(info.get("queued") or 0), int(info.get("active") or 0),
                      int(info.get("scheduled") or 0), workers)


def _worker(worker_id: str, data: dict[str, Any]) -> WorkerLoad:
    meta, stats = data.get("metadata") or {}, data.get("stats") or {}
    return WorkerLoad(str(worker_id), meta.get("host"), _int(meta.get("pid")), _int(meta.get("concurrency")),
                      _int(meta.get("active")), _int(stats.get("complete")) or 0, _int(stats.get("failed")) or 0,
                      (_int(stats.get("uptime")) or 0) / 1000)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
