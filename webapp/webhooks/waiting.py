"""Waiting for a webhook's execution without polling the database: the web process's execution hub
(webapp/executions/hub.py) sees every change of every execution in all profiles; the route registers a listener
for the owner *before* it commits the execution, so no change can be missed, and wakes when one of its
execution arrives.

The answer itself is read once, when it is due: the execution's output (``last_node``), or the Respond to
Webhook node's result (``respond_node``), checked at each change of the execution (one small query per change,
a handful per run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import TERMINAL_STATUSES, Execution
from webapp.executions.hub import ExecutionHub, Listener


async def wait_for(hub: ExecutionHub, listener: Listener, sessions: async_sessionmaker[AsyncSession],
                   execution_id: int, timeout: float,
                   check: Callable[[str], Awaitable[Any]] | None = None) -> tuple[str | None, Any]:
    """Wait until the execution ends (its status) or ``check(status)`` — called at each change of it — returns
    something other than ``None`` (then ``(status, that)``); ``(None, None)`` when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = True  # look once before waiting: the run may have changed before the listener was asked
    while True:
        if seen:
            row = hub.row(execution_id)
            status = row.status if row is not None else None
            if status is not None and check is not None and (found := await check(status)) is not None:
                return status, found
            if status in TERMINAL_STATUSES:
                return status, None
        remaining = deadline - loop.time()
        if remaining <= 0:
            return await _final_look(sessions, execution_id, check)
        try:
            async with asyncio.timeout(remaining):
                ids, overflowed = await listener.next_batch()
        except TimeoutError:
            return await _final_look(sessions, execution_id, check)
        if overflowed:  # changes were dropped (or the hub resubscribed): the database knows
            status = await execution_status(sessions, execution_id)
            if status is not None and check is not None and (found := await check(status)) is not None:
                return status, found
            if status in TERMINAL_STATUSES:
                return status, None
        seen = execution_id in ids


async def _final_look(sessions: async_sessionmaker[AsyncSession], execution_id: int,
                      check: Callable[[str], Awaitable[Any]] | None) -> tuple[str | None, Any]:
    """At the time limit: the database's word, in case a change was lost on the way."""
    status = await execution_status(sessions, execution_id)
    if status is not None and check is not None and (found := await check(status)) is not None:
        return status, found
    return (status, None) if status in TERMINAL_STATUSES else (None, None)


async def execution_status(sessions: async_sessionmaker[AsyncSession], execution_id: int) -> str | None:
    async with sessions() as db:
        return await db.scalar(select(Execution.status).where(Execution.id == execution_id))
