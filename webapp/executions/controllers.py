"""Execution pages and the live-status WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, Request, WebSocket, get, websocket
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, WebSocketDisconnect
from litestar.params import FromPath
from litestar.response import Template
from litestar.template import TemplateEngineProtocol

from engine.events import Event, channel_for
from engine.models import TERMINAL_STATUSES
from webapp.executions.services import ExecutionService

WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
MAX_STREAM_SECONDS = 6 * 3600


class ExecutionController(Controller):
    path = "/executions"

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService]) -> Template:
        return Template("executions/list.html", context={"rows": await executions.recent(), "user": request.user})

    @get("/{execution_id:int}")
    async def detail(self, request: Request[Any, Any, Any], executions: NamedDependency[ExecutionService],
                     execution_id: FromPath[int]) -> Template:
        execution = await executions.get(execution_id)
        runs = await executions.node_runs(execution_id)
        return Template("executions/detail.html", context={"execution": execution, "runs": runs,
                                                            "user": request.user})


def same_origin(socket: WebSocket[Any, Any, Any]) -> bool:
    """Browsers always send Origin on WebSockets; it must name this very host."""
    origin = socket.headers.get("origin")
    host = socket.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


def render(socket: WebSocket[Any, Any, Any], name: str, **context: Any) -> str:
    engine: TemplateEngineProtocol = socket.app.template_engine  # type: ignore[assignment]
    return engine.get_template(name).render(**context)


@websocket("/ws/executions/{execution_id:int}")
async def execution_stream(socket: WebSocket[Any, Any, Any], channels: NamedDependency[ChannelsPlugin],
                           execution_id: FromPath[int]) -> None:
    """Streams node status badges as htmx out-of-band fragments until the execution ends."""
    if not same_origin(socket):
        await socket.close(code=WS_FORBIDDEN, reason="cross-origin WebSocket refused")
        return
    async with socket.app.state.runtime.sessions() as db:
        service = ExecutionService(db, socket.user.id)
        try:
            await service.get(execution_id)
        except NotFoundException:
            await socket.close(code=WS_NOT_FOUND, reason="not found")
            return
    await socket.accept()
    async with channels.start_subscription([channel_for(execution_id)]) as subscriber:
        try:
            if not await _send_snapshot(socket, execution_id):
                await _stream_until_done(socket, subscriber)
        except WebSocketDisconnect:
            return
    await socket.close()


async def _stream_until_done(socket: WebSocket[Any, Any, Any], subscriber: Any) -> None:
    """Forward events until ``workflow.finished``, the browser goes away, or the time limit."""
    forward = asyncio.create_task(_forward(socket, subscriber))
    gone = asyncio.create_task(_until_disconnect(socket))
    done, pending = await asyncio.wait({forward, gone}, timeout=MAX_STREAM_SECONDS,
                                       return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()


async def _forward(socket: WebSocket[Any, Any, Any], subscriber: Any) -> None:
    async for message in subscriber.iter_events():
        event = Event.from_json(message)
        await socket.send_text(render(socket, "executions/_event.html", event=event))
        if event.type == "workflow.finished":
            return


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    """The browser sends nothing; reading is how a closed tab is noticed at once."""
    while True:
        await socket.receive_data(mode="text")


async def _send_snapshot(socket: WebSocket[Any, Any, Any], execution_id: int) -> bool:
    """Send the state persisted so far (events published earlier are not replayed by pub/sub).

    Returns True when the execution has already ended. Subscribing first and then reading the
    database means no event falls between the two; a duplicate badge update is harmless.
    """
    async with socket.app.state.runtime.sessions() as db:
        service = ExecutionService(db, socket.user.id)
        execution = await service.get(execution_id)
        runs = await service.node_runs(execution_id)
    latest = {run.node_id: run for run in runs}
    html = render(socket, "executions/_snapshot.html", execution=execution, runs=list(latest.values()))
    await socket.send_text(html)
    return execution.status in TERMINAL_STATUSES
