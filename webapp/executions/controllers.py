"""Execution pages and the live-status WebSocket."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, Request, Response, WebSocket, get, post, websocket
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, WebSocketDisconnect
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.template import TemplateEngineProtocol

from engine.events import Event, channel_for
from engine.graph import Graph
from engine.models import TERMINAL_STATUSES, Execution, NodeRun
from nodes import registry
from webapp.errors import Invalid
from webapp.executions.filters import STATUSES, TRIGGERS, params_of, parse
from webapp.executions.final import final_badges
from webapp.executions.services import ExecutionService
from webapp.executions.views import NodePanel, canvas_nodes, connections, node_panel, timeline
from webapp.forms import is_htmx, multidict
from webapp.runtime import Runtime
from webapp.transport import same_origin

WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
MAX_STREAM_SECONDS = 6 * 3600


class ExecutionController(Controller):
    path = "/executions"

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService]) -> Template:
        """The executions table: filters, search and keyset pages; the first page updates live
        (webapp/executions/live.py). htmx requests (the filter form, the pager) get the table alone."""
        filters, cursor = parse(params_of(request.query_params))
        page = await executions.page(filters, cursor)
        context = {"page": page, "rows": page.rows, "filters": filters, "cursor": cursor, "user": request.user,
                   "statuses": STATUSES, "triggers": TRIGGERS}
        if is_htmx(request):
            return Template("executions/_table.html", context=context)
        context["workflows"] = await executions.workflow_choices()
        return Template("executions/list.html", context=context)

    @get("/failed")
    async def failed_page(self, request: Request[Any, Any, Any],
                          executions: NamedDependency[ExecutionService]) -> Template:
        return Template("executions/failed.html", context={"rows": await executions.failed(), "user": request.user})

    @post("/retry")
    async def retry(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService],
                    runtime: NamedDependency[Runtime]) -> Template | Redirect:
        form = multidict(await request.form())
        ids = [int(i) for i in form.get("ids", []) if i.isascii() and i.isdigit() and len(i) < 12]
        mode = (form.get("mode") or [""])[-1]
        if not ids or mode not in ("failed_node", "start"):
            raise Invalid("Choose at least one execution and how to retry it.")
        retries = await executions.retry(runtime.queue, ids, from_failed_node=mode == "failed_node",
                                         timeout=runtime.settings.execution_timeout, announce=runtime.announce)
        if len(retries) == 1 and not is_htmx(request):
            return Redirect(f"/executions/{retries[0].id}", status_code=303)
        return Template("executions/_retried.html", context={"retries": retries})

    @get("/{execution_id:int}")
    async def detail(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService],
                     execution_id: FromPath[int], node: FromQuery[str | None] = None) -> Template:
        """The execution page: the pinned version's canvas, the timeline, a node's details, every attempt."""
        page = await _page(executions, execution_id)
        selected = node or (page.execution.error or {}).get("node_id")
        panel = await _panel(executions, page, selected, None) if selected else None
        if node and panel is None:
            raise NotFoundException("This execution has no such node.")
        return Template("executions/detail.html", context={**page.context(), "panel": panel, "user": request.user})

    @get("/{execution_id:int}/live")
    async def live_parts(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService],
                         execution_id: FromPath[int], node: FromQuery[str | None] = None) -> Template | Redirect:
        """The parts an event changes (summary, timeline, attempts), as out-of-band fragments for htmx."""
        if not is_htmx(request):
            return Redirect(f"/executions/{execution_id}", status_code=303)
        page = await _page(executions, execution_id)
        return Template("executions/_live.html", context=page.context())

    @get("/{execution_id:int}/nodes/{node_id:str}")
    async def node_detail(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService],
                          execution_id: FromPath[int], node_id: FromPath[str],
                          attempt: FromQuery[int | None] = None) -> Template:
        """One node's attempts, error, logs, input and output: the panel for htmx, else the whole page."""
        page = await _page(executions, execution_id)
        panel = await _panel(executions, page, node_id, attempt)
        if panel is None:
            raise NotFoundException("This execution has no such node or attempt.")
        if is_htmx(request):
            return Template("executions/_node_panel.html", context={**page.context(), "panel": panel})
        return Template("executions/detail.html", context={**page.context(), "panel": panel, "user": request.user})

    @get("/{execution_id:int}/nodes/{node_id:str}/attempts/{attempt:int}/{part:str}")
    async def node_data(self, executions: NamedDependency[ExecutionService], execution_id: FromPath[int],
                        node_id: FromPath[str], attempt: FromPath[int], part: FromPath[str]) -> Response[bytes]:
        """The whole input / output / error / logs of one attempt, as a JSON file."""
        if part not in NODE_RUN_PARTS:
            raise NotFoundException(f"Choose one of: {', '.join(NODE_RUN_PARTS)}.")
        run = await executions.node_run(execution_id, node_id, attempt)
        return _download(getattr(run, part), f"execution-{execution_id}-{_slug(run.node_name)}-attempt-{attempt}-{part}")

    @get("/{execution_id:int}/data/{part:str}")
    async def execution_data(self, executions: NamedDependency[ExecutionService], execution_id: FromPath[int],
                             part: FromPath[str]) -> Response[bytes]:
        """The execution's whole trigger input or final output, as a JSON file."""
        if part not in ("input", "output"):
            raise NotFoundException("Choose input or output.")
        execution = await executions.get(execution_id)
        return _download(getattr(execution, part), f"execution-{execution_id}-{part}")


NODE_RUN_PARTS = ("input", "output", "error", "logs")


@dataclass
class _Page:
    """The rows the execution page is drawn from, loaded once per request (owner-scoped)."""

    execution: Execution
    version_number: int
    graph: Graph
    runs: list[NodeRun]

    def context(self) -> dict[str, Any]:
        return {"execution": self.execution, "runs": self.runs, "version_number": self.version_number,
                "canvas": canvas_nodes(self.graph, self.runs, registry), "connections": connections(self.graph),
                "timeline": timeline(self.execution, self.graph, self.runs),
                "live": self.execution.status not in TERMINAL_STATUSES}


async def _page(executions: ExecutionService, execution_id: int) -> _Page:
    execution = await executions.get(execution_id)
    number, graph = await executions.pinned_version(execution)
    return _Page(execution, number, graph, await executions.run_summaries(execution_id))


async def _panel(executions: ExecutionService, page: _Page, node_id: str, attempt: int | None) -> NodePanel | None:
    """The node's panel (its attempts read with their data), or None for a node the execution does not have."""
    if len(node_id) > 64:
        return None
    attempts = await executions.node_attempts(page.execution.id, node_id)
    return node_panel(page.graph, attempts, node_id, attempt, registry)


def _slug(name: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in name).strip("-")[:60] or "node"


def _download(value: Any, stem: str) -> Response[bytes]:
    return Response(msgspec.json.format(msgspec.json.encode(value), indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{stem}.json"'})


def render(socket: WebSocket[Any, Any, Any], name: str, **context: Any) -> str:
    engine: TemplateEngineProtocol = socket.app.template_engine  # type: ignore[assignment]
    return engine.get_template(name).render(**context)


@websocket("/ws/executions/{execution_id:int}")
async def execution_stream(socket: WebSocket[Any, Any, Any], channels: NamedDependency[ChannelsPlugin],
                           execution_id: FromPath[int], after: FromQuery[int | None] = None) -> None:
    """Streams node status badges as htmx out-of-band fragments until the execution ends.

    First connection: a snapshot of the state persisted so far, then live events. Reconnection
    with ``?after=N`` (the last ``seq`` the client applied): the events after N from the database,
    then live ones — no gaps and no duplicates, because the subscription starts before the read
    and live events at or below the last sent ``seq`` are dropped.
    """
    if not same_origin(socket):
        await socket.close(code=WS_FORBIDDEN, reason="cross-origin WebSocket refused")
        return
    async with socket.app.state.runtime.sessions() as db:
        try:
            await ExecutionService(db, socket.user.id).get(execution_id)
        except NotFoundException:
            await socket.close(code=WS_NOT_FOUND, reason="not found")
            return
    await socket.accept()
    async with channels.start_subscription([channel_for(execution_id)]) as subscriber:
        try:
            last_seq, finished = await (_send_snapshot(socket, execution_id) if after is None
                                        else _send_missed(socket, execution_id, after))
            if not finished:
                await _stream_until_done(socket, subscriber, execution_id, last_seq)
        except WebSocketDisconnect:
            return
    await socket.close()


async def _stream_until_done(socket: WebSocket[Any, Any, Any], subscriber: Any, execution_id: int,
                             last_seq: int) -> None:
    """Forward events until ``workflow.finished``, the browser goes away, or the time limit."""
    forward = asyncio.create_task(_forward(socket, subscriber, execution_id, last_seq))
    gone = asyncio.create_task(_until_disconnect(socket))
    done, pending = await asyncio.wait({forward, gone}, timeout=MAX_STREAM_SECONDS,
                                       return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()


async def _forward(socket: WebSocket[Any, Any, Any], subscriber: Any, execution_id: int, last_seq: int) -> None:
    """Live events in ``seq`` order. A live event past the next one means some were not delivered
    (a slow client's full backlog drops the oldest, a channel lost them): the gap is read from the
    database first, so the client still sees every event once, in order."""
    async for message in subscriber.iter_events():
        event = Event.from_json(message)
        if event.seq > last_seq + 1:
            last_seq, finished = await _fill_gap(socket, execution_id, last_seq, event.seq)
            if finished:
                return
        if event.seq <= last_seq:
            continue  # already sent from the database
        await _send_event(socket, event)
        last_seq = event.seq
        if event.type == "workflow.finished":
            return


async def _send_event(socket: WebSocket[Any, Any, Any], event: Event) -> None:
    html = render(socket, "executions/_event.html", event=event)
    if event.type == "workflow.finished":  # with every node's final badge: none stays "queued"
        async with socket.app.state.runtime.sessions() as db:
            service = ExecutionService(db, socket.user.id)
            execution = await service.get(event.execution_id)
            html += await _final_badges(socket, service, execution, await service.node_runs(event.execution_id))
    await socket.send_text(html)


async def _final_badges(socket: WebSocket[Any, Any, Any], service: ExecutionService, execution: Execution,
                        runs: list[NodeRun]) -> str:
    """An ended execution's final badge of every node (webapp/executions/final.py); "" while it runs."""
    if execution.status not in TERMINAL_STATUSES:
        return ""
    _, graph = await service.pinned_version(execution)
    return render(socket, "executions/_final_badges.html", badges=final_badges(execution, graph, runs))


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    """The browser sends nothing; reading is how a closed tab is noticed at once."""
    while True:
        await socket.receive_data(mode="text")


async def _send_snapshot(socket: WebSocket[Any, Any, Any], execution_id: int) -> tuple[int, bool]:
    """The state persisted so far; returns (the last event seq it covers, whether the run ended)."""
    async with socket.app.state.runtime.sessions() as db:
        service = ExecutionService(db, socket.user.id)
        last_seq = await service.last_seq(execution_id)
        execution = await service.get(execution_id)
        runs = await service.node_runs(execution_id)
        final = await _final_badges(socket, service, execution, runs)
    latest = {run.node_id: run for run in runs}
    html = render(socket, "executions/_snapshot.html", execution=execution, runs=list(latest.values()),
                  seq=last_seq) + final
    await socket.send_text(html)
    return last_seq, execution.status in TERMINAL_STATUSES


async def _fill_gap(socket: WebSocket[Any, Any, Any], execution_id: int, last_seq: int,
                    live_seq: int) -> tuple[int, bool]:
    """Send the stored events after ``last_seq`` up to (at least) the one before ``live_seq``, in reads
    of bounded size; returns (last seq sent, whether the run ended)."""
    finished = False
    while last_seq < live_seq - 1 and not finished:
        sent, finished = await _send_missed(socket, execution_id, last_seq)
        if sent == last_seq:
            break  # nothing more is stored (yet): the live event goes next
        last_seq = sent
    return last_seq, finished


async def _send_missed(socket: WebSocket[Any, Any, Any], execution_id: int, after: int) -> tuple[int, bool]:
    """Replay the persisted events after ``after``; returns (last seq sent, whether the run ended)."""
    async with socket.app.state.runtime.sessions() as db:
        service = ExecutionService(db, socket.user.id)
        events = await service.events_after(execution_id, after)
        ended = (await service.get(execution_id)).status in TERMINAL_STATUSES
    last_seq, finished = after, ended and not events
    for data in events:
        event = msgspec.convert(data, Event)
        await _send_event(socket, event)
        last_seq, finished = event.seq, event.type == "workflow.finished"
    return last_seq, finished
