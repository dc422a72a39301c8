"""``/ws/executions``: the executions table, live (htmx out-of-band swaps of its rows).

On connect (and every reconnect) the first page of the table is sent fresh from the database, so a
client never depends on changes it missed. Then, for each batch of changes of the user's executions
(the hub coalesces them per execution): a shown row is replaced (or removed when it stops matching
the filters), a new matching row is inserted in its place by id — almost always on top — (the oldest
falls off the page), and what the hub cannot decide alone — a search on the trigger input — is
answered with a fresh snapshot, at most every ``MIN_REFRESH`` seconds. Only the first page is live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import NotFoundException, WebSocketDisconnect

from webapp.executions.controllers import WS_FORBIDDEN, WS_NOT_FOUND, render
from webapp.executions.filters import BadFilter, Cursor, ExecutionFilter, params_of, parse
from webapp.executions.hub import ExecutionHub, Listener
from webapp.executions.listing import PAGE_SIZE, Page
from webapp.executions.rows import ExecutionRow
from webapp.executions.services import ExecutionService
from webapp.transport import same_origin

WS_BAD_REQUEST = 4400
MIN_REFRESH = 0.5
MIN_SIGNAL = 0.5
"""Seconds between two signals of ``/ws/executions/changed``: changes meanwhile collapse into the next."""
MAX_STREAM_SECONDS = 6 * 3600
SEND_TIMEOUT = 10.0
"""A browser that takes longer than this to take one message is dropped (it reconnects and gets a snapshot)."""


@websocket("/ws/executions")
async def executions_table_stream(socket: WebSocket[Any, Any, Any]) -> None:
    """The live executions table of the logged-in user, with the page's filters (``?status=…&q=…``)."""
    if not same_origin(socket):
        await socket.close(code=WS_FORBIDDEN, reason="cross-origin WebSocket refused")
        return
    try:
        # a cursor is ignored (only the first page is live); ``after`` is also what app.js adds on reconnects
        filters, _ = parse(params_of(socket.query_params))
    except BadFilter as exc:
        await socket.close(code=WS_BAD_REQUEST, reason=str(exc.detail)[:120])
        return
    if not await _may_filter(socket, filters):
        await socket.close(code=WS_NOT_FOUND, reason="not found")
        return
    hub: ExecutionHub = socket.app.state.runtime.hub
    await socket.accept()
    async with hub.listen(socket.user.id) as listener:
        table = LiveTable(socket, hub, filters)
        try:
            await table.send_snapshot()
            await _until_first(table.follow(listener), _until_disconnect(socket))
        except (WebSocketDisconnect, TimeoutError):
            return
    await socket.close()


@websocket("/ws/executions/changed")
async def executions_changed_stream(socket: WebSocket[Any, Any, Any]) -> None:
    """A signal (``{"changed": [ids…]}``, at most 100 ids; ``"all"`` after an overflow) whenever executions
    of the logged-in user changed, at most one
    per ``MIN_SIGNAL`` s: the home dashboard re-fetches its partials on it instead of waiting for its
    next poll. Same hub, same owner scoping, same Origin rule as the table."""
    if not same_origin(socket):
        await socket.close(code=WS_FORBIDDEN, reason="cross-origin WebSocket refused")
        return
    hub: ExecutionHub = socket.app.state.runtime.hub
    await socket.accept()
    async with hub.listen(socket.user.id) as listener:
        try:
            await _until_first(_signal_changes(socket, listener), _until_disconnect(socket))
        except (WebSocketDisconnect, TimeoutError):
            return
    await socket.close()


async def _signal_changes(socket: WebSocket[Any, Any, Any], listener: Listener) -> None:
    while True:
        ids, overflowed = await listener.next_batch()
        async with asyncio.timeout(SEND_TIMEOUT):
            await socket.send_json({"changed": "all" if overflowed else ids[:100]})
        await asyncio.sleep(MIN_SIGNAL)  # a burst of changes becomes one refresh


async def _may_filter(socket: WebSocket[Any, Any, Any], filters: ExecutionFilter) -> bool:
    if filters.workflow_id is None:
        return True
    async with socket.app.state.runtime.sessions() as db:
        try:
            await ExecutionService(db, socket.user.id).check_workflow(filters.workflow_id)
        except NotFoundException:
            return False
    return True


async def _until_first(*work: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in work]
    done, pending = await asyncio.wait(tasks, timeout=MAX_STREAM_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    while True:
        await socket.receive_data(mode="text")


_PAGERS: dict[tuple[str, int | None], str] = {}


def _partial(target: str, swap: str, html: str = "") -> str:
    """An htmx 4 partial: ``html`` swapped into ``target`` (its own template, so table rows parse as rows)."""
    return f'<hx-partial hx-target="{target}" hx-swap="{swap}">{html}</hx-partial>'


class LiveTable:
    """What one browser's first page shows, and how each batch of changes alters it."""

    def __init__(self, socket: WebSocket[Any, Any, Any], hub: ExecutionHub, filters: ExecutionFilter) -> None:
        self.socket, self.hub, self.filters = socket, hub, filters
        self.owner_id: int = socket.user.id
        self.shown: list[int] = []
        """Ids on the page, newest first."""
        self.last_refresh = 0.0

    async def follow(self, listener: Listener) -> None:
        while True:
            ids, overflowed = await listener.next_batch()
            if overflowed:
                await self.send_snapshot()
            else:
                await self.apply(ids)

    async def send_snapshot(self) -> None:
        wait = self.last_refresh + MIN_REFRESH - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # changes meanwhile are covered by the snapshot
        self.last_refresh = time.monotonic()
        async with self.socket.app.state.runtime.sessions() as db:
            page = await ExecutionService(db, self.owner_id).page(self.filters, Cursor())
        rows = [self.hub.seed(row) if row.ended else row for row in page.rows]
        self.shown = [row.id for row in rows]
        await self._send(render(self.socket, "executions/_live_snapshot.html", rows=rows, page=page,
                                filters=self.filters))

    async def apply(self, ids: list[int]) -> None:
        await self.hub.complete(self.owner_id, ids)
        fragments: list[str] = []
        new: list[ExecutionRow] = []
        for execution_id in ids:
            row = self.hub.row(execution_id)
            if row is None or row.owner_id != self.owner_id:
                continue
            action = self._action(row)
            if action == "refresh":
                await self.send_snapshot()
                return
            if action == "replace":
                fragments.append(_partial(f"#exec-{row.id}", "outerHTML", self._html(row)))
            elif action == "remove":
                self.shown.remove(row.id)
                fragments.append(_partial(f"#exec-{row.id}", "delete"))
            elif action == "insert":
                new.append(row)
        fragments += self._insert(new)
        if fragments:
            await self._send("".join(fragments))

    def _action(self, row: ExecutionRow) -> str | None:
        verdict = self.filters.matches(status=row.status, workflow_id=row.workflow_id, trigger=row.trigger,
                                       created_at=row.created_at)
        if row.id in self.shown:
            return "remove" if verdict is False else "replace"
        if verdict is False or not row.complete:
            return None
        if verdict is None:
            return "refresh"  # a search: only the database can tell
        if len(self.shown) >= PAGE_SIZE and row.id < self.shown[-1]:
            return None  # older than the page
        return "insert"

    def _insert(self, rows: list[ExecutionRow]) -> list[str]:
        """New rows in their place by id (newest first): most go on top; one that started later than a
        newer one, or has just become a match, goes after the next newer row shown."""
        if not rows:
            return []
        fragments = [_partial("#exec-empty", "delete")] if not self.shown else []
        for row in sorted(rows, key=lambda r: r.id):
            place = next((i for i, shown in enumerate(self.shown) if shown < row.id), len(self.shown))
            target, swap = ("#exec-rows", "afterbegin") if place == 0 else (f"#exec-{self.shown[place - 1]}", "afterend")
            fragments.append(_partial(target, swap, self._html(row)))
            self.shown.insert(place, row.id)
        while len(self.shown) > PAGE_SIZE:
            fragments.append(_partial(f"#exec-{self.shown.pop()}", "delete"))
        fragments.append(_partial("#exec-pager", "outerHTML", self._pager()))
        return fragments

    def _pager(self) -> str:
        """The first page's pager (its *Older* cursor moves as rows fall off): rendered once per cursor and
        filters, for every browser."""
        key = (self.filters.query(), self._older())
        html = _PAGERS.get(key)
        if html is None:
            html = render(self.socket, "executions/_pager.html", page=Page([], older=key[1]), filters=self.filters)
            _PAGERS[key] = html
            if len(_PAGERS) > 1000:
                _PAGERS.pop(next(iter(_PAGERS)))
        return html

    def _older(self) -> int | None:
        return self.shown[-1] if len(self.shown) >= PAGE_SIZE else None

    def _html(self, row: ExecutionRow) -> str:
        if row.html is None:
            row.html = render(self.socket, "executions/_row.html", row=row)
        return row.html

    async def _send(self, text: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT):  # no extra task per message (wait_for makes one)
            await self.socket.send_text(text)
