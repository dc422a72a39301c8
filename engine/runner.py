"""The run loop: pure asyncio, talking to the outside only through a run store and an event sink.

Recipe: load the finished node runs (resume) → repeatedly start every node whose
predecessors are all settled → each node persists ``started``, runs, persists its outcome,
and only then publishes its event → successors see the outcome. A node none of whose
incoming connections carried items is *skipped*, and skipping propagates.

Writes are *deferred* into the run's pending transition and committed together at the next
barrier (``Run.flush``): the outcomes of the nodes that just settled, the rows of the nodes that
skip, and the ``running`` rows of the successors about to start are one transaction, committed
before any of their events is published and before any of those successors runs — except that
*pure* successors (``NodeType.pure``: no effect outside their result) begin while it commits; their
own outcomes are committed with it or after it, never before (engine/README.md, "Pipelined commits").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from engine.changes import ExecutionChange, change_for
from engine.config import parse_config
from engine.contract import (
    RESPONSE_OUTPUT,
    CredentialAccess,
    Item,
    NodeContext,
    NodeResult,
    NodeType,
    SubWorkflows,
    passed_on,
)
from engine.credentials.redaction import Redactor, redact_transition
from engine.credentials.vault import for_node
from engine.errors import NodeError, NodeTimeout
from engine.events import Event, EventSink, publish_all, summarize
from engine.expressions import Expressions
from engine.expressions.budget import DEFAULT_BUDGET, Budget
from engine.graph import ConnectionSpec, Graph, NodeSpec, ensure_valid
from engine.logs import execution_id_var, node_id_var
from engine.nodelogs import NodeLogs
from engine.policy import ERROR_PORT, error_data
from engine.registry import Registry
from engine.store import ExecutionState, NodeRunRecord, RunStore, Transition

DEFAULT_NODE_TIMEOUT = 300.0
INLINE_WAIT = 30.0
SETTLED = ("succeeded", "skipped", "failed")
log = logging.getLogger("patchwire.runner")


@dataclass
class Outcome:
    """How an execution ended: ``succeeded`` or ``failed``, with the leaves' outputs or the error."""

    status: str
    output: dict[str, list[Item]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    resume_at: float | None = None


@dataclass
class Run:
    """Per-execution state, passed explicitly; never shared between executions."""

    execution_id: int
    workflow_id: int
    graph: Graph
    registry: Registry
    store: RunStore
    sink: EventSink
    http: httpx.AsyncClient
    trigger_input: Item = field(default_factory=dict)
    node_timeout: float = DEFAULT_NODE_TIMEOUT
    expression_budget: Budget = DEFAULT_BUDGET
    """The limits of every ``{{ }}`` evaluation of this run (engine/expressions/budget.py)."""
    execution_timeout: float | None = None
    start_items: list[Item] | None = None
    """What trigger nodes emit; default: one item, the trigger input. A sub-workflow gets its caller's items,
    a poll the new items it found."""
    trigger_node: str | None = None
    """The trigger node that fired (a webhook, schedule or poll): only it starts; the other trigger nodes,
    and what only they feed, are skipped. ``None``: every trigger node starts (Run, the CLI, a sub-workflow)."""
    sub_workflows: SubWorkflows | None = None
    inline_wait: float = INLINE_WAIT
    """Waits and back-offs up to this long are slept in the job; longer ones suspend the execution."""
    resume: bool = True
    """Read the stored node runs and last event ``seq`` first. ``False`` only for an execution known to
    have none stored yet (a fresh claim, a new sub-workflow execution): it starts from nothing."""
    scope: frozenset[str] | None = None
    """A test run from the editor: only these nodes may run. The others are left alone (no row, no
    event) unless they were settled beforehand (their copied rows are read on resume). ``None``: all."""
    owner_id: int | None = None
    """Set by the worker: each commit then also publishes an ``ExecutionChange`` (engine/changes.py)."""
    started_at: float | None = None
    """When the execution first started (the claim's ``started_at``), for the changes."""
    announce: dict[str, Any] | None = None
    """Fields merged into the first change (a sub-workflow execution announces its creation that way)."""
    credentials: CredentialAccess | None = None
    """``ctx.credentials`` of every node (the worker's vault, scoped to the owner and this run's redactor)."""
    redactor: Redactor = field(default_factory=Redactor)
    """The secret values opened for this run: redacted from all it stores, publishes and logs."""
    waiting: dict[str, NodeRunRecord] = field(default_factory=dict)
    resume_attempt: dict[str, int] = field(default_factory=dict)
    current: dict[str, NodeRunRecord] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, list[Item]]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    _seq: int = 0
    _pending: Transition = field(default_factory=Transition)
    _flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _commit_error: Exception | None = None
    _incoming: dict[str, list[ConnectionSpec]] = field(default_factory=dict)
    _successors: dict[str, list[str]] = field(default_factory=dict)
    _nodes: dict[str, NodeSpec] = field(default_factory=dict)
    _prepared: _Prepared | None = None
    _by_name: dict[str, list[Item]] = field(default_factory=dict)
    """Settled nodes' output items by node name (all ports), kept as ``results`` grows."""

    def __post_init__(self) -> None:
        self._nodes = {n.id: n for n in self.graph.nodes}
        for c in self.graph.connections:
            self._incoming.setdefault(c.target, []).append(c)
            self._successors.setdefault(c.source, []).append(c.target)

    def incoming(self, node_id: str) -> list[ConnectionSpec]:
        return self._incoming.get(node_id, [])

    def successors(self, node_id: str) -> list[str]:
        return self._successors.get(node_id, [])

    def node(self, node_id: str) -> NodeSpec:
        return self._nodes[node_id]

    def in_scope(self, node_id: str) -> bool:
        return self.scope is None or node_id in self.scope

    def event(self, type_: str, node: NodeSpec | None = None, **fields: Any) -> Event:
        """The next numbered event of this execution (not yet stored or published)."""
        self._seq += 1
        return Event(
            type=type_, execution_id=self.execution_id, workflow_id=self.workflow_id, seq=self._seq,
            at=time.time(), node_id=node.id if node else None, node_name=node.name if node else None, **fields,
        )

    def defer(self, record: NodeRunRecord | None, event: Event) -> None:
        """Add a node run (as it is now) and its event to the next commit; nothing is published before it."""
        if record is not None:
            self._pending.runs.append(_copy(record))
        self._pending.events.append(event)

    async def flush(self) -> None:
        """Commit everything deferred in one transaction, then publish its events in ``seq`` order.

        Serialised per run: a later flush neither commits nor publishes before an earlier one. A failed
        commit is final for the run: every later flush raises its error, so nothing is committed past
        the hole and no node starts on state that was never stored (the job resumes from the database)."""
        async with self._flush_lock:
            if self._commit_error is not None:
                raise self._commit_error
            transition, self._pending = self._pending, Transition()
            if not transition.events and transition.execution is None:
                return
            if self.owner_id is not None:
                transition.changes.append(self._change(transition))
            if self.redactor:  # what is stored and published never holds a secret opened for the run
                redact_transition(self.redactor, transition)
            try:
                notified = await self.store.commit(self.execution_id, transition)
            except Exception as exc:
                self._commit_error = exc
                raise
            if not notified:
                await publish_all(self.sink, [*transition.events, *transition.changes])

    def _change(self, transition: Transition) -> ExecutionChange:
        assert self.owner_id is not None
        running = next((r.node_name for r in self.current.values() if r.status == "running"), None)
        extra, self.announce = self.announce, None
        return change_for(transition, execution_id=self.execution_id, owner_id=self.owner_id,
                          workflow_id=self.workflow_id, running_node=running, error=self.error,
                          started_at=self.started_at, extra=extra)

    async def emit(self, type_: str, node: NodeSpec | None = None, **fields: Any) -> None:
        """Number the event, persist it with whatever is pending (for reconnecting clients), then publish it."""
        self.defer(None, self.event(type_, node, **fields))
        await self.flush()

    async def save(self, record: NodeRunRecord, event: Event) -> None:
        """Persist a node run and its event now (with whatever is pending), then publish the event."""
        self.defer(record, event)
        await self.flush()


def _copy(record: NodeRunRecord) -> NodeRunRecord:
    """The record as it is now (``dataclasses.replace`` does the same, several times slower)."""
    return NodeRunRecord(record.node_id, record.node_name, record.node_type, record.attempt, record.status,
                         record.input, record.output, record.error, record.started_at, record.finished_at,
                         record.resume_at, list(record.logs) if record.logs is not None else None)


@dataclass
class _Prepared:
    """What the run loop derives from one validated graph, kept as long as the graph is cached."""

    graph: Graph
    registry: Registry
    configs: dict[str, Any] = field(default_factory=dict)
    """Parsed node configs by node id (a version never changes; nodes treat their config as read-only)."""


_PREPARED: OrderedDict[tuple[int, int], _Prepared] = OrderedDict()
"""Graphs already validated against a registry, by identity (the worker reuses one parsed ``Graph``
per immutable version); the value keeps both alive, so an id cannot be reused while it is here."""


def _prepare(graph: Graph, registry: Registry) -> _Prepared:
    key = (id(graph), id(registry))
    prepared = _PREPARED.get(key)
    if prepared is not None:
        _PREPARED.move_to_end(key)
        return prepared
    ensure_valid(graph, registry)
    prepared = _PREPARED[key] = _Prepared(graph, registry)
    if len(_PREPARED) > 256:
        _PREPARED.popitem(last=False)
    return prepared


def _config(run: Run, node: NodeSpec, node_type: type[NodeType]) -> Any:
    configs = run._prepared.configs if run._prepared is not None else {}
    config = configs.get(node.id)
    if config is None:  # a config that does not parse raises each time (it fails the node)
        config = configs[node.id] = parse_config(node_type.Config, node.config)
    return config


async def execute(run: Run) -> Outcome:
    """Run (or resume) the graph to the end; the caller persists the returned outcome.

    Log records emitted meanwhile carry the execution's id (a sub-workflow's run is awaited inside its
    caller's node task: its own id applies until it returns)."""
    execution_token, node_token = execution_id_var.set(run.execution_id), node_id_var.set(None)
    try:
        return await _execute(run)
    finally:
        node_id_var.reset(node_token)
        execution_id_var.reset(execution_token)


async def _execute(run: Run) -> Outcome:
    run._prepared = _prepare(run.graph, run.registry)
    if run.resume:
        previous, run._seq = await run.store.resume_state(run.execution_id)  # a resumed run numbers on
        _load_previous_runs(run, previous)
    run.defer(None, run.event("workflow.started", status="running"))  # committed with the first starts
    _release_due_waits(run)
    try:
        async with asyncio.timeout(run.execution_timeout) as deadline:
            await _drive(run)
    except TimeoutError:
        if not deadline.expired():
            raise
        _handle_execution_timeout(run)
    outcome = _outcome(run)
    if outcome.status == "waiting":
        return await suspend(run, outcome)
    return await finish(run, outcome)


async def suspend(run: Run, outcome: Outcome) -> Outcome:
    """Persist that the run waits until ``resume_at``, then publish ``workflow.waiting``; the caller
    schedules the continuation."""
    assert outcome.resume_at is not None
    run._pending.execution = ExecutionState("waiting", resume_at=outcome.resume_at)
    await run.emit("workflow.waiting", status="waiting", summary=f"continues at {_clock(outcome.resume_at)}")
    return outcome


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _release_due_waits(run: Run) -> None:
    """A continued run: waits whose time has come end now (a Wait completes, a back-off retries)."""
    now = time.time()
    for node_id, record in list(run.waiting.items()):
        if record.resume_at is not None and record.resume_at > now:
            continue
        del run.waiting[node_id]
        if record.status == "waiting":
            record.status, record.finished_at = "succeeded", now
            _settle(run, run.node(node_id), record, "succeeded", record.output,
                          run.event("node.completed", run.node(node_id), status="succeeded", attempt=record.attempt,
                                    duration_ms=_duration_ms(record), summary=summarize(_count(record.output))))
        else:  # a retry back-off is over: the next attempt runs like any ready node
            del run.status[node_id]
            run.resume_attempt[node_id] = record.attempt + 1


def _count(outputs: dict[str, list[Item]] | None) -> int:
    return sum(len(v) for v in (outputs or {}).values())


def _load_previous_runs(run: Run, previous: dict[str, NodeRunRecord]) -> None:
    """Resume: settled nodes keep their outcome; an interrupted node continues with its attempts."""
    for node_id, record in previous.items():
        if record.status == "waiting" or (record.status == "failed" and record.resume_at and record.output is None):
            run.status[node_id] = "waiting"  # a Wait, or a retry back-off, persisted by an earlier job
            run.waiting[node_id] = record
        elif record.status == "succeeded" or record.status == "skipped" or record.output is not None:
            run.status[node_id] = record.status
            if record.output is not None:
                _set_result(run, node_id, record.output)
        elif record.status == "running":
            run.resume_attempt[node_id] = record.attempt  # it never finished: the same attempt again
        else:
            run.resume_attempt[node_id] = record.attempt + 1


def _handle_execution_timeout(run: Run) -> None:
    message = f"the execution did not finish within {run.execution_timeout:g} s"
    error = {"type": "ExecutionTimeout", "message": message, "node_id": None, "node_name": "Workflow", "kind": "timeout"}
    for node_id, record in list(run.current.items()):
        record.status, record.finished_at = "failed", time.time()
        record.error = {**error, "node_id": node_id, "node_name": record.node_name}
        _settle(run, run.node(node_id), record, "failed", None,
                run.event("node.failed", run.node(node_id), status="failed", attempt=record.attempt,
                          duration_ms=_duration_ms(record), summary=message))
    run.error = run.error or error


async def finish(run: Run, outcome: Outcome) -> Outcome:
    """Persist the execution's outcome (with whatever is pending), then publish ``workflow.finished``."""
    output = outcome.output if outcome.status == "succeeded" else None
    run._pending.execution = ExecutionState(outcome.status, output, outcome.error, finished_at=time.time())
    await run.emit("workflow.finished", status=outcome.status, summary=_error_text(outcome.error))
    return outcome


async def _drive(run: Run) -> None:
    running: dict[asyncio.Task[None], str | None] = {}
    """Node tasks by node id, and the step commits still in flight (``None``)."""
    candidates: list[str] = [n.id for n in run.graph.nodes if run.in_scope(n.id)]
    try:
        while True:
            starting = _start_ready(run, candidates) if run.error is None else []
            await _commit_and_start(run, starting, running)
            if not running:
                return
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            candidates = []
            for task in done:
                node_id = running.pop(task)
                task.result()  # a failed step commit ends the run here, as an awaited one would
                if node_id is not None:
                    candidates += run.successors(node_id)
    finally:
        await _cancel(running)


async def _commit_and_start(run: Run, starting: list[NodeRunRecord],
                            running: dict[asyncio.Task[None], str | None]) -> None:
    """Commit the step (settled outcomes + skips + the starts: one transaction, then their events),
    then start the nodes — or, when every node starting is pure, start them while it commits.

    A pure node has no effect outside its result, and its result is deferred into a later commit,
    which the flush lock orders after this one: nothing it produces is stored, published or seen by
    a node with effects before this step is committed (engine/README.md, "Pipelined commits")."""
    if not starting and not running:
        return  # the run ends here: its last transaction (finish, suspend) commits what is pending with it
    pipelined = bool(starting) and all(_is_pure(run, record.node_id) for record in starting)
    if not pipelined:
        await run.flush()
    for record in starting:
        running[asyncio.create_task(_run_node(run, run.node(record.node_id), record))] = record.node_id
    if pipelined:  # created after the nodes, so they begin first and the commit's own work overlaps them
        running[asyncio.ensure_future(_pipelined_flush(run, [r.node_id for r in starting]))] = None


async def _pipelined_flush(run: Run, started: list[str]) -> None:
    """A pipelined step's commit — left to the next commit when every node it started has ended already
    (they ended at once, on their first turn, which comes before this one): then the step's rows and events
    are committed, and published, with the next step's or the run's last transaction (engine/README.md,
    "Coalesced commits"). A node still going gets its ``running`` row committed and published now."""
    if all(run.status.get(node_id) != "running" for node_id in started):
        return
    await run.flush()


def _is_pure(run: Run, node_id: str) -> bool:
    node = run.node(node_id)
    return run.registry.get(node.type, node.version).pure


async def _cancel(running: dict[asyncio.Task[None], str | None]) -> None:
    """On cancellation or a crash, no node task outlives the run that started it. A step commit in
    flight is awaited, not cancelled: what it holds is stored (or its error kept) before the run's
    last writes and before its lease is released."""
    for task, node_id in running.items():
        if node_id is not None:
            task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def _start_ready(run: Run, candidates: list[str]) -> list[NodeRunRecord]:
    """Start ready candidates (their ``running`` rows are returned, deferred) or skip them
    (deferred as well); skipping propagates."""
    to_run: list[NodeRunRecord] = []
    work = deque(candidates)
    while work:
        node_id = work.popleft()
        if node_id in run.status or not run.in_scope(node_id) or not _predecessors_settled(run, node_id):
            continue
        node = run.node(node_id)
        if _is_start(run, node) or _live_inputs(run, node_id):
            run.status[node_id] = "running"
            to_run.append(_begin_attempt(run, node, _input_items(run, node), run.resume_attempt.get(node_id, 1)))
        else:
            _skip(run, node)
            work.extend(run.successors(node_id))
    return to_run


def _predecessors_settled(run: Run, node_id: str) -> bool:
    return all(run.status.get(c.source) in SETTLED for c in run.incoming(node_id))


def _is_start(run: Run, node: NodeSpec) -> bool:
    return (not run.incoming(node.id) and run.registry.get(node.type, node.version).is_trigger
            and (run.trigger_node is None or node.id == run.trigger_node))


def _live_inputs(run: Run, node_id: str) -> bool:
    return any(c.source_port in run.results.get(c.source, {}) for c in run.incoming(node_id))


def _input_items(run: Run, node: NodeSpec) -> list[Item]:
    return [item for items in _inputs_by_port(run, node).values() for item in items]


def _inputs_by_port(run: Run, node: NodeSpec) -> dict[str, list[Item]]:
    """Items arriving at each input port; a port only appears if some upstream output reached it."""
    if _is_start(run, node):
        return {"main": [dict(i) for i in run.start_items] if run.start_items is not None else [dict(run.trigger_input)]}
    inputs: dict[str, list[Item]] = {}
    for c in run.incoming(node.id):
        if c.source_port in run.results.get(c.source, {}):
            inputs.setdefault(c.target_port, []).extend(run.results[c.source][c.source_port])
    return inputs


def _skip(run: Run, node: NodeSpec) -> None:
    now = time.time()
    record = NodeRunRecord(node.id, node.name, node.type, 1, "skipped", started_at=now, finished_at=now)
    run.status[node.id] = "skipped"
    run.defer(record, run.event("node.skipped", node, status="skipped", attempt=1))


def _begin_attempt(run: Run, node: NodeSpec, items: list[Item], attempt: int) -> NodeRunRecord:
    """The attempt's ``running`` row and ``node.started``, deferred: the caller commits them before the node runs."""
    record = NodeRunRecord(node.id, node.name, node.type, attempt, "running", input=items, started_at=time.time())
    run.current[node.id] = record
    run.defer(record, run.event("node.started", node, status="running", attempt=attempt))
    return record


async def _run_node(run: Run, node: NodeSpec, record: NodeRunRecord) -> None:
    """Attempts until success, a final failure, or the retry policy gives up; one row per attempt.

    ``record`` is the first attempt's ``running`` row, already committed. The node runs in its own task:
    the node id set here is seen by every log record of this node (and of nothing else)."""
    node_id_var.set(node.id)
    node_type = run.registry.get(node.type, node.version)
    items = record.input or []
    while True:
        try:
            result = await _call(run, node, node_type, items, record)
        except Exception as exc:  # node code failing is data on the node run, never swallowed
            if not node.settings.retry.retries(exc, record.attempt):
                _handle_failure(run, node, record, _error_data(run, node, exc), items)
                return
            if await _handle_retry(run, node, record, exc) == SUSPENDED:
                return
            record = _begin_attempt(run, node, items, record.attempt + 1)
            await run.flush()  # the next attempt's row is committed before it runs
        else:
            if result.not_before is None or await _wait_if_asked(run, node, record, result) != SUSPENDED:
                _handle_success(run, node, record, result)
            return


SUSPENDED = "suspended"


async def _wait_if_asked(run: Run, node: NodeSpec, record: NodeRunRecord, result: NodeResult) -> str | None:
    """A result that may only pass at ``not_before``: sleep a short wait, persist a long one."""
    wait = (result.not_before or 0) - time.time()
    if wait <= 0:
        return None
    if wait <= run.inline_wait:
        await asyncio.sleep(wait)
        return None
    record.status, record.output, record.resume_at = "waiting", result.outputs, result.not_before
    await _park(run, node, record, run.event("node.waiting", node, status="waiting", attempt=record.attempt,
                                             summary=f"continues at {_clock(result.not_before or 0)}"))
    return SUSPENDED


async def _park(run: Run, node: NodeSpec, record: NodeRunRecord, event: Event) -> None:
    """Persist a node that waits without holding the worker; the run ends as ``waiting``."""
    run.current.pop(node.id, None)
    run.status[node.id] = "waiting"
    run.waiting[node.id] = record
    await run.save(record, event)


async def _call(run: Run, node: NodeSpec, node_type: type[NodeType], items: list[Item],
                record: NodeRunRecord) -> NodeResult:
    """One attempt of the node's code; what it logs lands in ``record.logs`` (stored with its outcome)."""
    config = _config(run, node, node_type)
    inputs = _inputs_by_port(run, node)
    logs = NodeLogs(run.execution_id, node.id, node.name, record.attempt, redactor=run.redactor)
    record.logs = logs.entries
    instance = node_type()
    limit = node.settings.timeout or instance.time_limit(config, items) or run.node_timeout
    expressions = Expressions(run.trigger_input, items=items, nodes=_outputs_by_name(run),
                              deadline=time.monotonic() + limit, budget=run.expression_budget)  # an evaluation left in the pool stops then
    ctx = NodeContext(
        execution_id=run.execution_id, workflow_id=run.workflow_id, node_id=node.id, node_name=node.name,
        attempt=record.attempt, http=run.http, trigger_input=run.trigger_input, expressions=expressions,
        inputs=inputs, live_inputs=tuple(inputs), sub_workflows=run.sub_workflows, logger=logs.logger,
        credentials=for_node(run.credentials, config, node.name),
    )
    try:
        async with asyncio.timeout(limit) as deadline:
            result = await instance.run(ctx, config, items)
    except TimeoutError:
        if deadline.expired():
            raise NodeTimeout(f"{node.name} did not finish within {limit:g} s") from None
        raise
    unknown = set(result.outputs) - set(node_type.outputs) - {RESPONSE_OUTPUT}
    if unknown:
        raise NodeError(f"{node.name} returned items on unknown output(s): {', '.join(sorted(unknown))}")
    return NodeResult(_as_json(node, result.outputs), not_before=result.not_before)


def _outputs_by_name(run: Run) -> dict[str, list[Item]]:
    """Earlier nodes' output items by node name (all ports), for ``nodes["Name"]`` in expressions."""
    return dict(run._by_name)


def _set_result(run: Run, node_id: str, outputs: dict[str, list[Item]]) -> None:
    run.results[node_id] = outputs
    run._by_name[run.node(node_id).name] = passed_on(outputs)


def _as_json(node: NodeSpec, outputs: dict[str, list[Item]]) -> dict[str, list[Item]]:
    """Outputs are stored and passed on as JSON: datetimes become ISO strings, NaN becomes null."""
    try:
        return msgspec.json.decode(msgspec.json.encode(outputs))
    except (TypeError, msgspec.EncodeError) as exc:
        raise NodeError(f"{node.name} produced output that is not JSON: {exc}") from None


def _handle_success(run: Run, node: NodeSpec, record: NodeRunRecord, result: NodeResult) -> None:
    record.status, record.output, record.finished_at = "succeeded", result.outputs, time.time()
    _settle(run, node, record, "succeeded", result.outputs,
                  run.event("node.completed", node, status="succeeded", attempt=record.attempt,
                            duration_ms=_duration_ms(record), summary=summarize(_count(result.outputs))))


async def _handle_retry(run: Run, node: NodeSpec, record: NodeRunRecord, exc: BaseException) -> str | None:
    """Persist the failed attempt, announce ``node.retrying``, then wait out the back-off: in the
    job when short, as a suspended execution when long (``SUSPENDED``)."""
    delay = node.settings.retry.delay(record.attempt, getattr(exc, "retry_after", None))
    record.status, record.finished_at = "failed", time.time()
    record.error = {**_error_data(run, node, exc), "retry_in": round(delay, 3)}
    long_wait = delay > run.inline_wait
    log.info("node %r (%s) attempt %d failed (%s); retry in %.1f s", node.name, node.type, record.attempt,
             record.error["message"][:200], delay)
    event = run.event("node.retrying", node, status="retrying", attempt=record.attempt, duration_ms=_duration_ms(record),
                      summary=f"attempt {record.attempt} failed ({record.error['message'][:120]}); retry in {delay:.1f} s")
    if long_wait:
        record.resume_at = record.finished_at + delay
        await _park(run, node, record, event)
    else:
        await run.save(record, event)
    if long_wait:
        return SUSPENDED
    await asyncio.sleep(delay)
    return None


def _handle_failure(run: Run, node: NodeSpec, record: NodeRunRecord, error: dict[str, Any],
                    items: list[Item]) -> None:
    """Final failure: stop the workflow, or hand error items on (``continue`` / ``error_output``)."""
    on_error = node.settings.on_error
    outputs = None if on_error == "stop" else {_ERROR_ROUTES[on_error]: _error_items(items, error)}
    record.status, record.error, record.output, record.finished_at = "failed", error, outputs, time.time()
    if outputs is None:
        run.error = run.error or error
    log.warning("node %r (%s) failed on attempt %d: %s", node.name, node.type, record.attempt, error["message"][:500])
    _settle(run, node, record, "failed", outputs,
            run.event("node.failed", node, status="failed", attempt=record.attempt,
                      duration_ms=_duration_ms(record), summary=error["message"][:200]))


_ERROR_ROUTES = {"continue": "main", "error_output": ERROR_PORT}


def _error_items(items: list[Item], error: dict[str, Any]) -> list[Item]:
    brief = {k: v for k, v in error.items() if k != "traceback"}
    return [{**item, "error": brief} for item in items] or [{"error": brief}]


def _settle(run: Run, node: NodeSpec, record: NodeRunRecord, status: str,
            outputs: dict[str, list[Item]] | None, event: Event) -> None:
    """Defer the node's outcome with its event. The run loop commits it at its next flush, with the
    ``running`` rows of the successors it starts, before publishing the event or running them."""
    run.defer(record, event)
    run.current.pop(node.id, None)
    run.status[node.id] = status
    if outputs is not None:
        _set_result(run, node.id, outputs)


def _error_data(run: Run, node: NodeSpec, exc: BaseException) -> dict[str, Any]:
    """The node's error as data, redacted at once: it is also logged and becomes the run's error."""
    return run.redactor.redact(error_data(node.id, node.name, exc))


def _duration_ms(record: NodeRunRecord) -> float:
    return round(((record.finished_at or 0) - (record.started_at or 0)) * 1000, 1)


def _outcome(run: Run) -> Outcome:
    if run.error is not None:
        return Outcome("failed", error=run.error)
    if run.waiting:
        return Outcome("waiting", resume_at=min(r.resume_at or 0 for r in run.waiting.values()))
    # the leaves: nodes with no successor (in a test run: no successor that may run)
    has_successor = {c.source for c in run.graph.connections if run.in_scope(c.target)}
    output = {
        node.name: passed_on(run.results[node.id])
        for node in run.graph.nodes
        if node.id not in has_successor and node.id in run.results and run.in_scope(node.id)
    }
    return Outcome("succeeded", output=output)


def _error_text(error: dict[str, Any] | None) -> str | None:
    return f"{error['node_name']}: {error['message']}" if error else None
