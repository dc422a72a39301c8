"""The public webhook route: ``/webhook/<token or custom path>``, every method, outside login and CSRF.

One request: one read (``find_target``), then — in **one transaction** — the execution and the request's log
row, committed (on SQLite in one call on the connection's thread: webapp/webhooks/sqlite_write.py); then the job is enqueued and the new row announced. ``immediately`` answers 202 at once;
``last_node`` and ``respond_node`` wait through the execution hub (webapp/webhooks/waiting.py) up to the
node's time limit, then answer 202 with the execution id. The answer is written to the log after it is sent
(batched: webapp/webhooks/upkeep.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engine.binary import BinaryStore, attach
from engine.changes import ExecutionChange
from engine.config import parse_config
from engine.errors import ConfigError, GraphError, WorkflowPaused
from engine.executions import create_execution, enqueue_execution
from engine.models import Execution, Workflow, utcnow
from engine.runner import Outcome
from engine.sqlstore import Claim
from engine.worker import HEARTBEAT, job_timeout_for
from nodes import registry
from nodes.webhook_trigger import HTTP_METHODS, WebhookConfig, parse_methods
from webapp.runtime import Runtime
from webapp.webhooks.answers import (
    Answer,
    accepted,
    json_answer,
    no_response,
    node_response,
    output_answer,
    problem,
    respond_answer,
)
from webapp.webhooks.auth import AuthFailure, Misconfigured, authenticate, remember_event
from webapp.webhooks.bodies import holds_nul, masked_headers, parse_body, query_dict, scrub
from webapp.webhooks.inline import Result
from webapp.webhooks.lane import PostgresLane
from webapp.webhooks.limits import RateLimiter, retry_after
from webapp.webhooks.services import Target, find_target, log_request
from webapp.webhooks.sqlite_write import insert_started, started_write
from webapp.webhooks.upkeep import Upkeep
from webapp.webhooks.waiting import Watch, execution_status, wait_for

log = logging.getLogger("patchwire.webhooks")


def _upkeep(request: Request[Any, Any, Any]) -> Upkeep:
    """The route's state in this app (made at its first request)."""
    state = request.app.state
    upkeep = getattr(state, "webhook_upkeep", None)
    if upkeep is None:
        runtime: Runtime = state.runtime
        upkeep = state.webhook_upkeep = Upkeep(runtime.sessions, runtime.hub, runtime.lane)
    return upkeep


_EXECUTIONS = Execution.__table__
_INSERT_EXECUTION = insert(_EXECUTIONS).returning(_EXECUTIONS.c.id, _EXECUTIONS.c.created_at)
NOT_ACTIVE = ("The workflow of this webhook is not active: activate it in the editor (or listen in the editor "
              "to capture requests while you build it).")


async def _no_body_check(request: Request[Any, Any, Any]) -> None:
    """Replaces the app's ``check_body`` (webapp/requests.py) on this route: a webhook takes any body, read here."""


@dataclass
class Started:
    answer: Answer | None
    """``None``: the workflow answers (``last_node``, ``respond_node``)."""
    log_id: int
    config: WebhookConfig
    execution_id: int
    created_at: datetime
    committed: bool = False
    """The execution and its log row are committed (SQLite's one-call write); the caller only enqueues."""
    claimed: tuple[Claim, str] | None = None
    """Inserted claimed, for a run in this process (``runtime.inline``, room reserved): its claim and lease."""


class Refused(Exception):
    """A request answered without starting anything (logged as ``refused`` / ``rejected``)."""

    def __init__(self, answer: Answer, outcome: str = "refused") -> None:
        self.answer = answer
        self.outcome = outcome


def webhook_route(max_body: int) -> Any:
    """The route handler, with the instance's body limit (``PATCHWIRE_WEBHOOK_MAX_BODY``): past it, 413 before the
    body is read whole (Content-Length, then the streamed count)."""

    @route("/webhook/{key:path}", http_method=list(HTTP_METHODS), exclude_from_auth=True, exclude_from_csrf=True,
           before_request=_no_body_check, request_max_body_size=max_body, include_in_schema=False,
           name="webhook")
    async def receive_webhook(request: Request[Any, Any, Any], key: FromPath[str]) -> Response[bytes]:
        return (await receive(request, key.strip("/"), max_body)).response()

    return receive_webhook


class Sessions:
    """The request's ORM session, opened at its first use: on SQLite most requests need none
    (webapp/webhooks/lane.py)."""

    def __init__(self, runtime: Runtime, stack: AsyncExitStack) -> None:
        self._runtime, self._stack = runtime, stack
        self.db: AsyncSession | None = None

    async def get(self) -> AsyncSession:
        if self.db is None:
            self.db = await self._stack.enter_async_context(self._runtime.sessions())
        return self.db


async def _target(runtime: Runtime, sessions: Sessions, key: str) -> Target | None:
    if not key or len(key) > 200 or "\x00" in key:
        return None
    if runtime.lane is not None:
        return await runtime.lane.find_target(key)
    return await find_target(await sessions.get(), key)


async def receive(request: Request[Any, Any, Any], key: str, max_body: int) -> Answer:
    """The request's answer (webapp/webhooks/front.py sends it; the route above, through Litestar)."""
    runtime: Runtime = request.app.state.runtime
    method = request.method.upper()
    async with AsyncExitStack() as stack:
        async with AsyncExitStack() as session_scope:
            sessions = Sessions(runtime, session_scope)
            target = await _target(runtime, sessions, key)
            if target is None:
                return problem(404, "There is no webhook at this address.")
            item: dict[str, Any] = {"method": method, "path": request.url.path,
                                    "headers": masked_headers(request.scope["headers"]),
                                    "query": query_dict(request.query_params.multi_items()), "body": None}
            try:
                started = await _accept(request, runtime, sessions, target, item, method, max_body)
            except Refused as refused:
                db = await sessions.get()
                await db.rollback()
                await log_request(db, target.webhook_id, method=method, input=scrub(item) if holds_nul(item) else item,
                                  status=refused.answer.status,
                                  outcome=refused.outcome, message=_message(refused.answer),
                                  response=refused.answer.logged)
                await db.commit()
                _upkeep(request).answers.record(target.webhook_id, None, None, None)
                return refused.answer
            if started.answer is not None:
                _upkeep(request).answers.record(target.webhook_id, None, None, None)
                return started.answer
            # the workflow answers: listen to its changes before it runs (on SQLite it is committed already,
            # by the one-call write; nothing runs it before it is started here), so none is missed. The
            # last node's output needs no listening when the run goes on here: its outcome is the answer.
            inline = runtime.inline if started.claimed is not None or (
                runtime.inline is not None and runtime.inline.reserve()) else None
            try:
                watch = None
                if started.config.response_mode == "respond_node" or inline is None:
                    watch = await stack.enter_async_context(_upkeep(request).waiters.watch(target.owner_id,
                                                                                          started.execution_id))
                if not started.committed:
                    await (await sessions.get()).commit()
            except BaseException:
                if inline is not None:
                    inline.unreserve()
                raise
        # the session (if one was opened) is back in the pool before the run: it waits for nothing of it
        if inline is not None:  # the run's first change carries the row's fixed part to the live tables
            run = inline.start(started.execution_id, started.claimed)
        else:
            await _enqueue(runtime, target, started.execution_id, started.created_at, "webhook")
        if watch is None:
            answer = await _inline_answer(runtime, run, started)
        else:
            answer = await _await_answer(runtime, watch, started)
    _upkeep(request).answers.record(target.webhook_id, started.log_id, answer.status, answer.logged)
    return answer


def _message(answer: Answer) -> str | None:
    return (answer.logged or {}).get("problem")


async def _accept(request: Request[Any, Any, Any], runtime: Runtime, sessions: Sessions, target: Target,
                  item: dict[str, Any], method: str, max_body: int) -> Started:
    """Check the request, start the execution and log it. With an answer: committed and enqueued; without
    (the workflow answers), the caller commits and enqueues once it listens."""
    if holds_nul(item["query"]):
        raise Refused(problem(400, "The query holds a NUL character (%00), which cannot be stored: remove it."),
                      "rejected")
    listening = not target.live and target.listening(time.time())
    if not target.live and not listening:
        raise Refused(problem(404, NOT_ACTIVE))
    config = _checked_config(target, method, _upkeep(request).limiter)
    await _read(request, runtime, sessions, target, config, max_body, item)
    if listening:
        return await _start_draft(runtime, await sessions.get(), target, item, method, config)
    immediate = config.response_mode == "immediately"
    if (isinstance(runtime.lane, PostgresLane) and sessions.db is None and not item.get("binary") and not immediate
            and (started := await _start_on_postgres(runtime, runtime.lane, target, item, method, config))):
        return started
    if runtime.engine.dialect.name == "sqlite" and not item.get("binary"):
        return await _start_on_sqlite(runtime, sessions, target, item, method, config, immediate)
    db = await sessions.get()
    execution_id, created_at = await _insert_execution(db, target, item)
    if item.get("binary"):
        await attach(db, list(item["binary"].values()), execution_id)
    answer = accepted(execution_id) if immediate else None
    log_id = await log_request(db, target.webhook_id, method=method, input=item, status=answer.status if answer else 0,
                               outcome="ran", response=answer.logged if answer else None, execution_id=execution_id)
    if immediate:
        await _commit_and_enqueue(runtime, db, target, execution_id, created_at, "webhook")
    return Started(answer, log_id, config, execution_id, created_at)


_PARSED: dict[bytes, tuple[WebhookConfig, tuple[str, ...]]] = {}
"""Configs parsed already, by their JSON (a config is parsed once per process, not once per request; never
changed once parsed)."""
_PARSED_MAX = 1024


def _parsed(raw: dict[str, Any]) -> tuple[WebhookConfig, tuple[str, ...]]:
    """The node's config and the methods it takes (a ``Refused`` 409 when it is invalid)."""
    key = msgspec.json.encode(raw)
    if (found := _PARSED.get(key)) is not None:
        return found
    try:
        config = parse_config(WebhookConfig, raw)
    except ConfigError as exc:
        problems = "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items())
        raise Refused(problem(409, f"The webhook node's configuration is invalid ({problems})."), "error") from None
    assert isinstance(config, WebhookConfig)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    found = _PARSED[key] = (config, tuple(parse_methods(config.methods)))
    return found


def _checked_config(target: Target, method: str, limiter: RateLimiter) -> WebhookConfig:
    """The node's config (the active trigger's, or the draft's while listening), once the method, the circuit
    breaker and the rate limit let the request in."""
    config, allowed = _parsed((target.trigger_config if target.live else target.draft_config) or {})
    if method not in allowed:
        raise Refused(problem(405, f"This webhook accepts {', '.join(allowed)}, not {method}.",
                              headers={"Allow": ", ".join(allowed)}))
    now = datetime.now(UTC)
    if target.live and target.paused(now):
        assert target.paused_until is not None
        until = target.paused_until.replace(tzinfo=target.paused_until.tzinfo or UTC)
        raise Refused(problem(503, f"The workflow is paused by its circuit breaker until {until:%Y-%m-%d %H:%M:%S} UTC.",
                              headers={"Retry-After": retry_after((until - now).total_seconds())}))
    if (wait := limiter.hit(target.webhook_id, config.rate_limit)) is not None:
        raise Refused(problem(429, f"This webhook takes at most {config.rate_limit} requests a minute.",
                              headers={"Retry-After": retry_after(wait)}))
    return config


async def _read(request: Request[Any, Any, Any], runtime: Runtime, sessions: Sessions, target: Target,
                config: WebhookConfig, max_body: int, item: dict[str, Any]) -> None:
    """The body, authenticated (a signature covers the raw bytes), then parsed into the item's ``body`` and
    ``binary`` (files and raw bytes, stored by reference in the request's transaction)."""
    try:
        raw = await request.body()  # StrictRequest: 413 past the route's limit, before it is read whole
    except HTTPException as exc:
        raise Refused(problem(exc.status_code, str(exc.detail)), "rejected") from None
    try:
        if config.authentication != "none":
            db = await sessions.get()
            verified = await authenticate(db, runtime.keyring, target.owner_id, config, request.headers, raw)
            await remember_event(db, target.webhook_id, verified.event_id)
    except AuthFailure as exc:
        headers = {"WWW-Authenticate": exc.challenge} if exc.challenge else None
        raise Refused(problem(exc.status, exc.message, headers=headers), "rejected") from None
    except Misconfigured as exc:
        raise Refused(problem(409, f"The webhook's authentication is misconfigured: {exc}."), "error") from None
    settings = runtime.settings
    store = BinaryStore(runtime.sessions, settings.data_dir, settings.binary_storage)

    async def put(data: bytes, file_name: str | None, mime_type: str) -> dict[str, Any]:
        return await store.put(target.owner_id, data, file_name=file_name, mime_type=mime_type,
                               session=await sessions.get())

    try:
        body, binary = await parse_body(request, raw, raw_body=config.raw_body, max_body=max_body, put=put)
    except HTTPException as exc:
        raise Refused(problem(exc.status_code, str(exc.detail)), "rejected") from None
    item["body"] = body
    if binary:
        item["binary"] = binary


async def _insert_execution(db: AsyncSession, target: Target, item: dict[str, Any]) -> tuple[int, datetime]:
    """A queued execution of the version the trigger was started from (the published one)."""
    row = (await db.execute(_INSERT_EXECUTION, {
        "workflow_id": target.workflow_id, "owner_id": target.owner_id, "version_id": target.version_id,
        "status": "queued", "trigger": "webhook", "input": item, "created_at": utcnow(),
        "trigger_node": target.node_id})).one()
    return row[0], row[1]


async def _start_on_sqlite(runtime: Runtime, sessions: Sessions, target: Target, item: dict[str, Any], method: str,
                           config: WebhookConfig, immediate: bool) -> Started:
    """The execution and its log row written and committed in one call (webapp/webhooks/sqlite_write.py): on the
    run store's connection (webapp/webhooks/lane.py), or on the session's when the request opened one (its
    transaction holds a remembered event id)."""
    created_at = utcnow()
    lane = runtime.lane if sessions.db is None else None
    # a run that starts here at once: inserted claimed (one statement fewer); the room for it is taken now
    inline = runtime.inline if (lane is not None and not immediate and runtime.inline is not None
                                and runtime.inline.reserve()) else None
    lease = (secrets.token_hex(16), created_at.timestamp() + inline.lease) if inline is not None else None
    write = started_write(
        workflow_id=target.workflow_id, owner_id=target.owner_id, version_id=target.version_id,
        node_id=target.node_id, webhook_id=target.webhook_id, method=method, item=item, trigger="webhook",
        created_at=created_at, answer=lambda new_id: (202, accepted(new_id).logged) if immediate else (0, None),
        lease=lease)
    try:
        if lane is not None:
            execution_id, log_id, settings = await lane.write(write)
        else:
            execution_id, log_id, settings = await insert_started(await sessions.get(), write)
    except BaseException:
        if inline is not None:
            inline.unreserve()
        raise
    answer = accepted(execution_id) if immediate else None
    if immediate:
        await _enqueue(runtime, target, execution_id, created_at, "webhook")
    claimed = None
    if lease is not None:
        claimed = (_claim(target, item, created_at, msgspec.json.decode(settings) if settings else None), lease[0])
    return Started(answer, log_id, config, execution_id, created_at, committed=True, claimed=claimed)


def _claim(target: Target, item: dict[str, Any], created_at: datetime, settings: Any) -> Claim:
    """What ``SQLRunStore.claim`` would have read of an execution inserted claimed."""
    at = created_at.timestamp()
    assert target.version_id is not None
    return Claim(target.workflow_id, target.version_id, target.owner_id, "webhook", item, 0, settings, False,
                 started_at=at, created_at=at, workflow_name=target.workflow_name, trigger_node=target.node_id)


async def _start_on_postgres(runtime: Runtime, lane: PostgresLane, target: Target, item: dict[str, Any], method: str,
                             config: WebhookConfig) -> Started | None:
    """The execution inserted claimed with its log row, in one statement (webapp/webhooks/lane.py), for a run in
    this process; ``None`` when there is no room for one (then it goes to the queue through the session)."""
    inline = runtime.inline
    if inline is None or not inline.reserve():
        return None
    created_at = utcnow()
    lease = (secrets.token_hex(16), created_at.timestamp() + inline.lease)
    try:
        execution_id, log_id, settings = await lane.insert_claimed(
            workflow_id=target.workflow_id, owner_id=target.owner_id, version_id=target.version_id,
            node_id=target.node_id, webhook_id=target.webhook_id, method=method, item=item, created_at=created_at,
            lease=lease)
    except BaseException:
        inline.unreserve()
        raise
    return Started(None, log_id, config, execution_id, created_at, committed=True,
                   claimed=(_claim(target, item, created_at, settings), lease[0]))


async def _commit_and_enqueue(runtime: Runtime, db: AsyncSession, target: Target, execution_id: int,
                              created_at: datetime, trigger: str) -> None:
    await db.commit()
    await _enqueue(runtime, target, execution_id, created_at, trigger)


async def _enqueue(runtime: Runtime, target: Target, execution_id: int, created_at: datetime, trigger: str) -> None:
    """The committed execution to the queue, and its row to the live tables."""
    await enqueue_execution(runtime.queue, execution_id, timeout=job_timeout_for(runtime.settings.execution_timeout),
                            heartbeat=HEARTBEAT)
    await _announce(runtime, target, execution_id, created_at, trigger)


async def _announce(runtime: Runtime, target: Target, execution_id: int, created_at: datetime, trigger: str) -> None:
    await runtime.announce([ExecutionChange(
        execution_id=execution_id, owner_id=target.owner_id, workflow_id=target.workflow_id, status="queued",
        at=time.time(), created=True, workflow_name=target.workflow_name, trigger=trigger,
        created_at=created_at.replace(tzinfo=created_at.tzinfo or UTC).timestamp())])


async def _start_draft(runtime: Runtime, db: AsyncSession, target: Target, item: dict[str, Any], method: str,
                       config: WebhookConfig) -> Started:
    """Someone listens to an inactive workflow: run its draft (``trigger="listen"``), answer 200 with a note."""
    workflow = await db.get_one(Workflow, target.workflow_id)
    try:
        execution = await create_execution(db, workflow, registry, input=item, trigger="listen",
                                           trigger_node=target.node_id)
        if item.get("binary"):
            await attach(db, list(item["binary"].values()), execution.id)
    except (GraphError, WorkflowPaused) as exc:
        detail = ("The draft cannot run: " + "; ".join(p.message for p in exc.problems)
                  if isinstance(exc, GraphError) else str(exc))
        raise Refused(problem(409, f"Captured, but not run. {detail}"), "captured") from None
    answer = json_answer(200, {"execution_id": execution.id, "message": "The workflow is not active: this request "
                               "was captured for the person listening in the editor and runs the draft."})
    log_id = await log_request(db, target.webhook_id, method=method, input=item, status=200, outcome="captured",
                               response=answer.logged, execution_id=execution.id)
    await _commit_and_enqueue(runtime, db, target, execution.id, execution.created_at, "listen")
    return Started(answer, log_id, config, execution.id, execution.created_at)


async def _inline_answer(runtime: Runtime, run: asyncio.Task[Result], started: Started) -> Answer:
    """``last_node`` of a run going on here: its outcome, or 202 once the node's time limit has passed (the run
    goes on)."""
    config, execution_id = started.config, started.execution_id
    done, _ = await asyncio.wait({run}, timeout=config.response_timeout)
    if not done:
        return accepted(execution_id, status="running",
                        message=f"The workflow did not answer within {config.response_timeout:g} s; it goes on.")
    result = run.result()
    if isinstance(result, Outcome):
        status, output = result.status, result.output
    else:  # it did not run here (another job holds it, or it ended already): the database knows
        status, output = await execution_status(runtime.sessions, execution_id) or result, None
    return await output_answer(runtime.engine, execution_id, status, config, output)


async def _await_answer(runtime: Runtime, watch: Watch, started: Started) -> Answer:
    """The workflow's answer, or 202 with the execution id once the node's time limit has passed."""
    config, execution_id = started.config, started.execution_id
    check = None
    if config.response_mode == "respond_node":
        async def check(status: str) -> dict[str, Any] | None:
            return await node_response(runtime.engine, execution_id)
    status, response = await wait_for(runtime.hub, watch, runtime.sessions, execution_id, config.response_timeout,
                                      check)
    if status is None:
        return accepted(execution_id, status="running",
                        message=f"The workflow did not answer within {config.response_timeout:g} s; it goes on.")
    if config.response_mode == "respond_node":
        return respond_answer(response) if response is not None else no_response(execution_id, status)
    return await output_answer(runtime.engine, execution_id, status, config)
