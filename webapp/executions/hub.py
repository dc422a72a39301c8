"""The web process's execution-change hub: one subscription to ``pw_executions``, fanned out per owner.

The hub subscribes once (lazily, at the first listener) and, for every ``ExecutionChange``, updates
its bounded cache of rows and *offers* the execution id to each listener of that change's owner —
and only that owner. Offering never waits: a listener keeps an ordered set of pending ids (a second
change of the same execution before the listener has caught up coalesces into one), and when more
than ``max_pending`` pile up (a slow or gone browser) they are dropped and the listener is told to
start over from a snapshot. So a slow client never slows the publisher (the worker), the hub, or the
other clients.

Reuse (the home dashboard, a workflow overview): ``async with hub.listen(owner_id) as listener`` then
``ids, overflowed = await listener.next_batch()`` in a loop; ``hub.row(id)`` is the latest state of
an execution (``await hub.complete(owner_id, ids)`` fills in rows whose fixed part is not known yet
from the database). See docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
from litestar.channels import ChannelsPlugin, Subscriber
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.changes import EXECUTIONS_CHANNEL, ExecutionChange
from webapp.executions.listing import read_rows
from webapp.executions.rows import ExecutionRow

log = logging.getLogger("patchwire.hub")
CACHE_SIZE = 20_000
MAX_PENDING = 500
RESUBSCRIBE_AFTER = 1.0
SUBSCRIBE_TIMEOUT = 5.0


class DirectSubscriber(Subscriber):
    """A channels subscriber that can hand each message to a callback in the channels plugin's own task.

    The plugin's ``subscriber_class`` (webapp/runtime.py): every subscriber is one, and behaves as
    Litestar's own until ``deliver_to`` is called. The hub calls it: a change then reaches the hub
    the moment the plugin reads it from the backend — no queue in between, no wait for the hub's task
    to be scheduled (one hop of the event loop less per change, and no backlog that could drop some).
    The end of the subscription (the plugin stopping) still travels through the queue."""

    _receive: Callable[[bytes], None] | None = None

    def deliver_to(self, receive: Callable[[bytes], None]) -> None:
        """From now on ``receive`` gets each message at once; what was queued so far first, in order."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:  # the end: leave it for ``iter_events``
                self._queue.put_nowait(item)
                break
            self._queue.task_done()
            receive(item)
        self._receive = receive

    def put_nowait(self, item: bytes | None) -> bool:
        receive = self._receive
        if receive is None or item is None:
            return super().put_nowait(item)
        try:  # in the plugin's task, which must live on: a bad message is logged, never raised there
            receive(item)
        except Exception:
            log.exception("the execution hub failed on a message")
        return True


class Listener:
    """One consumer of an owner's changes: pending execution ids, coalesced, bounded."""

    def __init__(self, owner_id: int, max_pending: int = MAX_PENDING) -> None:
        self.owner_id = owner_id
        self.max_pending = max_pending
        self._pending: dict[int, None] = {}
        self._overflowed = False
        self._wake = asyncio.Event()

    def offer(self, execution_id: int) -> None:
        """Never blocks: past ``max_pending`` the pending ids are dropped and a snapshot is due."""
        if not self._overflowed:
            self._pending[execution_id] = None
            if len(self._pending) > self.max_pending:
                self.overflow()
        self._wake.set()

    def overflow(self) -> None:
        """Drop what is pending: the consumer must read the current state from the database."""
        self._pending.clear()
        self._overflowed = True
        self._wake.set()

    async def next_batch(self) -> tuple[list[int], bool]:
        """Wait for changes; the ids changed since the last batch (oldest offer first) and whether some
        were dropped (then start over from the database)."""
        await self._wake.wait()
        self._wake.clear()
        ids, overflowed = list(self._pending), self._overflowed
        self._pending, self._overflowed = {}, False
        return ids, overflowed


class ExecutionHub:
    def __init__(self, channels: ChannelsPlugin, sessions: async_sessionmaker[AsyncSession],
                 cache_size: int = CACHE_SIZE) -> None:
        self._channels = channels
        self._sessions = sessions
        self._cache_size = cache_size
        self._rows: OrderedDict[int, ExecutionRow] = OrderedDict()
        self._listeners: dict[int, set[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.received = 0

    @asynccontextmanager
    async def listen(self, owner_id: int, max_pending: int = MAX_PENDING) -> AsyncIterator[Listener]:
        """Register a listener for ``owner_id``'s changes (subscribed before this yields: no gap after it)."""
        await self.start()
        listener = Listener(owner_id, max_pending)
        self._listeners.setdefault(owner_id, set()).add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(owner_id, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(owner_id, None)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="execution-hub")
        with suppress(TimeoutError):  # a backend that is down: listeners get changes once it is back
            await asyncio.wait_for(asyncio.shield(self._subscribed.wait()), SUBSCRIBE_TIMEOUT)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def row(self, execution_id: int) -> ExecutionRow | None:
        return self._rows.get(execution_id)

    async def complete(self, owner_id: int, execution_ids: list[int]) -> None:
        """Read the fixed part (workflow, trigger, created) of cached rows that lack it; one query."""
        missing = [i for i in execution_ids if (row := self._rows.get(i)) is None or not row.complete]
        if not missing:
            return
        async with self._sessions() as db:
            for fresh in await read_rows(db, owner_id, missing):
                self.seed(fresh)

    def seed(self, fresh: ExecutionRow) -> ExecutionRow:
        """A row read from the database: cached if unknown; a known row keeps its (live) state."""
        row = self._rows.get(fresh.id)
        if row is None:
            self._remember(fresh)
            return fresh
        if not row.complete:
            row.merge_fixed(fresh)
        return row

    def dispatch(self, change: ExecutionChange) -> None:
        """Apply one change and offer it to its owner's listeners (never awaits)."""
        self.received += 1
        row = self._rows.get(change.execution_id)
        if row is None:
            row = ExecutionRow.from_change(change)
            self._remember(row)
        elif not row.apply(change):
            return
        else:
            self._rows.move_to_end(change.execution_id)
        for listener in self._listeners.get(change.owner_id, ()):
            listener.offer(change.execution_id)

    def _remember(self, row: ExecutionRow) -> None:
        self._rows[row.id] = row
        while len(self._rows) > self._cache_size:
            self._rows.popitem(last=False)

    async def _run(self) -> None:
        while True:
            try:
                subscriber = await self._channels.subscribe([EXECUTIONS_CHANNEL])
            except Exception:  # the channels backend is down: try again
                log.warning("execution hub could not subscribe; trying again", exc_info=True)
                await asyncio.sleep(RESUBSCRIBE_AFTER)
                continue
            if await self._follow(subscriber):
                return
            await asyncio.sleep(RESUBSCRIBE_AFTER)

    async def _follow(self, subscriber: Any) -> bool:
        """Dispatch what arrives; True when the channels plugin ended the subscription itself."""
        try:
            if self._subscribed.is_set():
                self._resync()
            self._subscribed.set()
            if isinstance(subscriber, DirectSubscriber):
                subscriber.deliver_to(self._receive)  # then the queue below only carries the end
            async for message in subscriber.iter_events():
                self._receive(message)
            return True
        except asyncio.CancelledError:
            # ``stop`` runs at shutdown, after the channels plugin has closed its backend (Litestar exits
            # the plugin's lifespan first): unsubscribing now would open a new connection to it.
            raise
        except Exception:  # the channels backend went away: subscribe again
            log.warning("execution hub lost its subscription; subscribing again", exc_info=True)
            with suppress(Exception):
                await self._channels.unsubscribe(subscriber, [EXECUTIONS_CHANNEL])
            return False

    def _resync(self) -> None:
        """Subscribed again after a loss: changes may be missing, so every listener starts over."""
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.overflow()

    def _receive(self, message: Any) -> None:
        try:
            change = ExecutionChange.from_json(message)
        except msgspec.DecodeError:
            log.warning("ignored a malformed execution change: %.200r", message)
            return
        self.dispatch(change)
