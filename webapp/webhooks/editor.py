"""The Webhook node in the editor: its panel (URL, state, request log), *Listen* and *Replay* — owner-scoped,
CSRF as usual, HTML partials for htmx (templates/webhooks/, static/js/editor-webhooks.js).

- ``GET  /workflows/{wid}/nodes/{node}/webhook`` — the panel.
- ``POST …/webhook/listen`` — captures the webhook's requests (``webhooks.listening_until``) and answers when the
  next one is logged (long-poll, at most ``LISTEN_SECONDS``), with that request; listening then stops.
- ``POST …/webhook/requests/{rid}/replay`` — a draft run (``trigger="replay"``) with the logged request as the
  webhook's item; answers the run panel, as the editor's Run does, so the canvas follows it.

Another owner's workflow, node or request is a 404 (``WorkflowService`` first, then rows of that webhook only).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.changes import announce_created
from engine.errors import ConfigError, GraphError
from engine.executions import create_execution, enqueue_execution
from engine.models import Node, Trigger, Webhook, WebhookRequest, Workflow
from engine.worker import HEARTBEAT, job_timeout_for
from nodes import registry
from nodes.webhook_trigger import WebhookTrigger, parse_methods
from webapp.errors import Invalid, error_response, wants_json
from webapp.runtime import Runtime
from webapp.webhooks.services import LOG_SIZE, ensure_webhook, new_token, start_listening, token_url, webhook_url
from webapp.workflows.controllers import _problems_by_node
from webapp.workflows.services import WorkflowService

LISTEN_SECONDS = 120
"""How long one press of *Listen* captures requests (and the long-poll lasts) at most."""
RECHECK_SECONDS = 1.0
"""Between two looks at the log while listening. A request that started an execution wakes the listener at once
(through the execution hub); a refused one (no execution: 401, 405…) is seen at the next look."""


@dataclass
class WebhookView:
    """What the panel shows."""

    node: Node
    webhook: Webhook
    url: str
    token_url: str
    methods: list[str]
    active: bool
    published: bool
    """The workflow is active and this node is one of its running triggers."""
    paused_until: Any
    listening: bool
    requests: list[WebhookRequest]

    def as_json(self) -> dict[str, Any]:
        state = ("paused" if self.published and self.paused_until else "active" if self.published
                 else "unpublished" if self.active else "inactive")
        return {"url": self.url, "token_url": self.token_url, "methods": self.methods, "state": state,
                "listening": self.listening, "requests": [request_json(r) for r in self.requests]}


def request_json(logged: WebhookRequest) -> dict[str, Any]:
    """A logged request for API clients (its item as logged: headers masked)."""
    return {"id": logged.id, "received_at": logged.received_at.isoformat(), "method": logged.method,
            "status": logged.status, "outcome": logged.outcome, "message": logged.message,
            "execution_id": logged.execution_id, "input": logged.input}


class WebhookEditorController(Controller):
    path = "/workflows/{workflow_id:int}/nodes/{node_id:str}/webhook"

    @get("/")
    async def panel(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                    runtime: NamedDependency[Runtime], workflow_id: FromPath[int],
                    node_id: FromPath[str]) -> Template | Response[Any]:
        view = await _view(workflows, _base_url(request, runtime), workflow_id, node_id)
        if wants_json(request):
            return Response(view.as_json())
        return Template("webhooks/_panel.html", context={**view.__dict__, "keep": LOG_SIZE})

    @post("/listen")
    async def listen(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                     runtime: NamedDependency[Runtime], workflow_id: FromPath[int], node_id: FromPath[str],
                     seconds: FromQuery[int] = LISTEN_SECONDS) -> Template | Response[Any]:
        """``?seconds=`` (1 to ``LISTEN_SECONDS``) shortens the wait (scripts, tests)."""
        if not 1 <= seconds <= LISTEN_SECONDS:
            raise Invalid(f"Listen for 1 to {LISTEN_SECONDS} seconds.")
        node, webhook = await _node_and_webhook(workflows, workflow_id, node_id)
        db = workflows.db
        last = await db.scalar(select(func.max(WebhookRequest.id)).where(WebhookRequest.webhook_id == webhook.id))
        until = await start_listening(db, webhook.id, seconds)
        webhook_id = webhook.id
        await db.commit()
        heard, stopped = await _next_request(runtime, workflows.owner_id, webhook_id, last or 0, until)
        await db.execute(update(Webhook).where(Webhook.id == webhook_id, Webhook.listening_until == until)
                         .values(listening_until=None))  # one press, one request (unless another tab listens longer)
        await db.commit()
        if wants_json(request):
            return Response({"request": request_json(heard) if heard else None, "stopped": stopped})
        requests = await _log(db, webhook_id)
        return Template("webhooks/_listened.html", context={"node": node, "req": heard, "requests": requests,
                                                             "seconds": seconds, "stopped": stopped})

    @post("/listen/stop", status_code=204)
    async def stop_listening(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                             node_id: FromPath[str]) -> None:
        """Stop listening now: requests are refused again (404 while inactive); a waiting Listen answers within
        ``RECHECK_SECONDS``."""
        _, webhook = await _node_and_webhook(workflows, workflow_id, node_id)
        await workflows.db.execute(update(Webhook).where(Webhook.id == webhook.id).values(listening_until=None))
        await workflows.db.commit()

    @post("/requests/{request_id:int}/replay")
    async def replay(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                     runtime: NamedDependency[Runtime], workflow_id: FromPath[int], node_id: FromPath[str],
                     request_id: FromPath[int]) -> Template | Response[Any]:
        node, webhook = await _node_and_webhook(workflows, workflow_id, node_id)
        db = workflows.db
        logged = await db.scalar(select(WebhookRequest).where(WebhookRequest.id == request_id,
                                                              WebhookRequest.webhook_id == webhook.id))
        if logged is None:
            raise NotFoundException()
        workflow = await workflows.get(workflow_id)
        name = workflow.name
        try:
            execution = await create_execution(db, workflow, registry, input=dict(logged.input or {}),
                                               trigger="replay", author_id=request.user.id, trigger_node=node.id)
        except GraphError as exc:
            if wants_json(request):
                return error_response(request, 422, "Invalid input", "The draft cannot run.",
                                      problems=[p.message for p in exc.problems])
            graph = await workflows.graph(workflow_id)
            return Template("executions/_run_refused.html", status_code=422, context={
                "problems": exc.problems, "graph": graph, "node_problems": _problems_by_node(exc.problems)})
        await db.commit()
        await enqueue_execution(runtime.queue, execution.id, timeout=job_timeout_for(runtime.settings.execution_timeout),
                                heartbeat=HEARTBEAT)
        await announce_created(runtime.announce, [(execution, name)])
        if wants_json(request):
            return Response({"execution_id": execution.id, "status": execution.status}, status_code=201)
        nodes = await workflows.nodes(workflow_id)
        return Template("executions/_run_started.html", context={
            "execution": execution, "nodes": nodes, "plan": None,
            "test_label": f"Replay of request #{request_id} (runs the draft)"})


def _base_url(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    return runtime.settings.public_url or str(request.base_url).rstrip("/")


async def _node_and_webhook(workflows: WorkflowService, workflow_id: int, node_id: str) -> tuple[Node, Webhook]:
    """The owner's webhook node and its row (made now if it is missing, e.g. a node older than webhooks)."""
    node = await workflows.node(workflow_id, node_id)
    if node.type_name != WebhookTrigger.type_name:
        raise NotFoundException("This node is not a webhook.")
    db = workflows.db
    webhook = await db.scalar(select(Webhook).where(Webhook.node_id == node.id, Webhook.workflow_id == workflow_id))
    if webhook is None:
        workflow = await workflows.get(workflow_id)
        try:
            webhook = await ensure_webhook(db, workflow, node)
        except ConfigError:  # its custom path is taken: the form says so; the token URL works meanwhile
            webhook = Webhook(workflow_id=workflow_id, owner_id=workflow.owner_id, node_id=node.id,
                              token=new_token())
            db.add(webhook)
            await db.flush()
        await db.commit()
    return node, webhook


async def _view(workflows: WorkflowService, base: str, workflow_id: int, node_id: str) -> WebhookView:
    node, webhook = await _node_and_webhook(workflows, workflow_id, node_id)
    db = workflows.db
    workflow = await db.get_one(Workflow, workflow_id)
    running = await db.scalar(select(Trigger.id).where(Trigger.workflow_id == workflow_id, Trigger.node_id == node.id,
                                                       Trigger.kind == "webhook"))
    try:
        methods = list(parse_methods(str(node.config.get("methods", "POST"))))
    except ValueError:
        methods = [str(node.config.get("methods", ""))]
    return WebhookView(
        node=node, webhook=webhook, url=webhook_url(base, webhook), token_url=token_url(base, webhook),
        methods=methods, active=bool(workflow.active), published=bool(workflow.active and running is not None),
        paused_until=workflow.paused_until if workflow.active else None,
        listening=bool(webhook.listening_until and webhook.listening_until > time.time()),
        requests=await _log(db, webhook.id))


async def _log(db: AsyncSession, webhook_id: int) -> list[WebhookRequest]:
    return list(await db.scalars(select(WebhookRequest).where(WebhookRequest.webhook_id == webhook_id)
                                 .order_by(WebhookRequest.id.desc()).limit(LOG_SIZE)))


async def _next_request(runtime: Runtime, owner_id: int, webhook_id: int, after: int,
                        until: float) -> tuple[WebhookRequest | None, bool]:
    """The first request logged after ``after``, or ``None`` at ``until`` or once listening was stopped (then
    ``True``). Wakes on the owner's execution changes, and looks again every ``RECHECK_SECONDS`` for requests that
    started nothing (and for a stop)."""
    async with runtime.hub.listen(owner_id) as listener:
        while True:
            async with runtime.sessions() as db:
                heard = await db.scalar(select(WebhookRequest).where(
                    WebhookRequest.webhook_id == webhook_id, WebhookRequest.id > after)
                    .order_by(WebhookRequest.id).limit(1))
                listening_until = await db.scalar(select(Webhook.listening_until).where(Webhook.id == webhook_id))
            if heard is not None:
                return heard, False
            if listening_until is None or listening_until < until:
                return None, True  # stopped (in this tab or another one), or the webhook is gone
            remaining = until - time.time()
            if remaining <= 0:
                return None, False
            try:
                async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                    await listener.next_batch()
            except TimeoutError:
                pass
