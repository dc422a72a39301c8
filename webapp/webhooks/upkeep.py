"""The route's per-app state (one web process): rate-limit windows, the waiters on the execution hub, and the
bookkeeping written after the answers were sent — batched, so a burst of requests costs one extra transaction
every ``FLUSH_DELAY`` seconds rather than one per request."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import WebhookRequest
from webapp.executions.hub import ExecutionHub
from webapp.webhooks.auth import prune_events
from webapp.webhooks.lane import Lane
from webapp.webhooks.limits import RateLimiter
from webapp.webhooks.services import LogPruner, prune_log
from webapp.webhooks.waiting import Waiters

log = logging.getLogger("patchwire.webhooks")
FLUSH_DELAY = 0.05
"""Seconds the answers of logged requests wait to be written together (lost if the process stops meanwhile:
the log then shows the request without its answer)."""


class AnswerLog:
    """Writes the answers of logged requests and trims logs, in batches, off the request path."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], pruner: LogPruner,
                 lane: Lane | None = None) -> None:
        self._sessions = sessions
        self._lane = lane
        self._pruner = pruner
        self._answers: list[dict[str, Any]] = []
        self._prune: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def record(self, webhook_id: int, log_id: int | None, status: int | None, response: dict[str, Any] | None) -> None:
        """Queue the answer of a logged request (``log_id``; ``None``: it was written with the request)."""
        if log_id is not None and status is not None:
            self._answers.append({"id": log_id, "status": status, "response": response})
        if self._pruner.due(webhook_id):
            self._prune.add(webhook_id)
        if (self._answers or self._prune) and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._flush(), name="webhook-answer-log")

    async def _flush(self) -> None:
        await asyncio.sleep(FLUSH_DELAY)
        while self._answers or self._prune:
            answers, self._answers = self._answers, []
            prune, self._prune = self._prune, set()
            try:
                if self._lane is not None:
                    await self._lane.record(answers, prune)
                    continue
                async with self._sessions() as db:
                    if answers:
                        await db.execute(update(WebhookRequest), answers)
                    for webhook_id in prune:
                        await prune_log(db, webhook_id)
                        await prune_events(db, webhook_id)
                    await db.commit()
            except Exception:  # the answers were sent: a failed bookkeeping write is logged, never raised
                log.warning("could not record the answers of %d webhook requests", len(answers), exc_info=True)


@dataclass
class Upkeep:
    sessions: async_sessionmaker[AsyncSession]
    hub: ExecutionHub
    lane: Lane | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    pruner: LogPruner = field(default_factory=LogPruner)
    waiters: Waiters = field(init=False)
    answers: AnswerLog = field(init=False)

    def __post_init__(self) -> None:
        self.waiters = Waiters(self.hub)
        self.answers = AnswerLog(self.sessions, self.pruner, self.lane)
