"""Writing the answers of logged webhook requests after they were sent, many per transaction.

Each answered request used to write its answer to its log row in its own transaction (a session, a ``BEGIN``,
an ``UPDATE``, a ``COMMIT``: at 20 concurrent requests one in three of the web process's transactions, and
on PostgreSQL an fsync each). Now the route's after-response task hands its answer here and waits until it is
written; answers that arrive while a write is in flight go together in the next one (group commit, as the
worker's run store does). The task still ends only once its own answer is committed, so a client (or test)
that reads the log after the response's background work sees it, as before. The log trimming of a webhook
(``prune``) rides along in the same transaction. A failed write is logged, never raised: the answer was sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import WebhookRequest
from webapp.webhooks.auth import prune_events
from webapp.webhooks.services import prune_log

log = logging.getLogger("patchwire.webhooks")
_ANSWER = (update(WebhookRequest.__table__).where(WebhookRequest.__table__.c.id == bindparam("log_id"))
           .values(status=bindparam("status"), response=bindparam("response")))


class AnswerLog:
    """One per web process (the route's ``Upkeep``)."""

    def __init__(self) -> None:
        self._answers: dict[int, tuple[int, dict[str, Any] | None]] = {}
        self._prune: set[int] = set()
        self._written: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def write(self, sessions: async_sessionmaker[AsyncSession], *, log_id: int | None = None,
                    status: int = 0, response: dict[str, Any] | None = None, prune: int | None = None) -> None:
        """Record ``status`` / ``response`` on log row ``log_id`` and/or trim webhook ``prune``'s log; returns
        once that is committed (or failed and was logged)."""
        if log_id is not None:
            self._answers[log_id] = (status, response)
        if prune is not None:
            self._prune.add(prune)
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        if self._task is None:
            self._task = asyncio.create_task(self._drain(sessions), name="webhook-answer-log")
        await asyncio.shield(written)

    async def _drain(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        try:
            while self._written is not None:
                answers, prune, written = self._answers, self._prune, self._written
                self._answers, self._prune, self._written = {}, set(), None
                try:
                    await _write(sessions, answers, prune)
                except Exception:  # the answers were sent: a failed bookkeeping write is logged, never raised
                    log.warning("could not record the answers of webhook requests %s", sorted(answers), exc_info=True)
                finally:
                    if not written.done():
                        written.set_result(None)
        finally:
            self._task = None


async def _write(sessions: async_sessionmaker[AsyncSession], answers: dict[int, tuple[int, dict[str, Any] | None]],
                 prune: set[int]) -> None:
    async with sessions() as db:
        if answers:
            await (await db.connection()).execute(_ANSWER, [  # one statement, many rows
                {"log_id": log_id, "status": status, "response": response}
                for log_id, (status, response) in answers.items()])
        for webhook_id in sorted(prune):
            await prune_log(db, webhook_id)
            await prune_events(db, webhook_id)
        await db.commit()
