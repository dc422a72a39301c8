"""Waiting for a webhook's execution without polling the database.

The web process's execution hub (webapp/executions/hub.py) sees every change of every execution in all
profiles. ``Waiters`` (one per app) keeps **one** hub listener per owner that has requests waiting, and wakes
only the requests whose execution changed — 20 waiting requests of one owner cost one wake-up per change, not
twenty. A request registers (``watch``) *before* it commits its execution, so no change can be missed.

The answer itself is read once, when it is due: the execution's output (``last_node``), or the Respond to
Webhook node's result (``respond_node``), checked at each change of the execution (one small query per change,
a handful per run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import TERMINAL_STATUSES, Execution
from webapp.executions.hub import ExecutionHub

log = logging.getLogger("patchwire.webhooks")
IDLE_SECONDS = 10.0
"""An owner's listener outlives its last waiting request by this long (the next burst reuses it)."""


class Watch:
    """One waiting request: woken when its execution changed, or when changes may have been dropped."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.overflowed = False

    def wake(self, overflowed: bool = False) -> None:
        self.overflowed = self.overflowed or overflowed
        self.changed.set()


class _Route:
    def __init__(self) -> None:
        self.watches: dict[int, set[Watch]] = {}
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.idle: asyncio.TimerHandle | None = None


class Waiters:
    def __init__(self, hub: ExecutionHub) -> None:
        self._hub = hub
        self._routes: dict[int, _Route] = {}

    @contextlib.asynccontextmanager
    async def watch(self, owner_id: int, execution_id: int) -> AsyncIterator[Watch]:
        route = self._routes.get(owner_id)
        if route is None or route.task is None or route.task.done():
            route = self._routes[owner_id] = _Route()
            route.task = asyncio.create_task(self._follow(owner_id, route), name=f"webhook-waiters-{owner_id}")
        if route.idle is not None:
            route.idle.cancel()
            route.idle = None
        watch = Watch()
        route.watches.setdefault(execution_id, set()).add(watch)
        try:
            await route.ready.wait()
            yield watch
        finally:
            watches = route.watches.get(execution_id, set())
            watches.discard(watch)
            if not watches:
                route.watches.pop(execution_id, None)
            if not route.watches and route.idle is None:
                route.idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._retire, owner_id, route)

    def _retire(self, owner_id: int, route: _Route) -> None:
        route.idle = None
        if not route.watches and route.task is not None:
            route.task.cancel()
            if self._routes.get(owner_id) is route:
                del self._routes[owner_id]

    async def _follow(self, owner_id: int, route: _Route) -> None:
        try:
            async with self._hub.listen(owner_id) as listener:
                route.ready.set()
                while True:
                    ids, overflowed = await listener.next_batch()
                    if overflowed:
                        _wake_all(route)
                    for execution_id in ids:
                        for watch in route.watches.get(execution_id, ()):
                            watch.wake()
        except asyncio.CancelledError:
            raise
        except Exception:  # never leave a request waiting on a dead listener: they fall back to the database
            log.exception("the webhook waiters of owner %s stopped", owner_id)
            route.ready.set()
            _wake_all(route)


def _wake_all(route: _Route) -> None:
    """Changes may have been dropped: every waiting request asks the database."""
    for watches in route.watches.values():
        for watch in watches:
            watch.wake(overflowed=True)


async def wait_for(hub: ExecutionHub, watch: Watch, sessions: async_sessionmaker[AsyncSession], execution_id: int,
                   timeout: float, check: Callable[[str], Awaitable[Any]] | None = None) -> tuple[str | None, Any]:
    """Wait until the execution ends (its status) or ``check(status)`` — called at each change of it — returns
    something other than ``None`` (then ``(status, that)``); ``(None, None)`` when ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if watch.overflowed:  # changes were dropped (or the hub resubscribed): the database knows
            watch.overflowed = False
            status = await execution_status(sessions, execution_id)
        else:
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
                await watch.changed.wait()
        except TimeoutError:
            return await _final_look(sessions, execution_id, check)
        watch.changed.clear()


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
