"""Test while building: test runs from the editor, pinned test data, a node's last data, expression previews.

Every query goes through ``WorkflowService`` first, so another owner's workflow or node is a 404 here too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from saq import Queue
from sqlalchemy import null, select
from sqlalchemy.orm.exc import StaleDataError

from engine.changes import Announce, announce_created
from engine.errors import ExpressionBudgetExceeded, ExpressionError
from engine.executions import enqueue_execution, touch_draft
from engine.expressions import Expressions, check_syntax, is_expression
from engine.expressions.offloop import PREVIEWS
from engine.models import Execution, Node, NodeRun
from engine.settings import Settings
from engine.testruns import InvalidPinnedData, Mode, Plan, create_test_execution, parse_pinned, pinned_outputs
from engine.worker import HEARTBEAT, job_timeout_for
from webapp.errors import Conflict, Invalid
from webapp.testing.completions import Completions, build_completions, upstream
from webapp.workflows.services import WorkflowService

SETTLED = ("succeeded", "failed", "skipped")
NO_DATA = "no data yet — run the previous nodes to preview"
PREVIEW_CHARS = 2000
PREVIEW_SECONDS = Settings.preview_seconds
"""An expression preview's time limit unless the settings give another (its budget is the engine's:
engine/expressions/budget.py)."""


@dataclass
class NodeData:
    """What the side panel shows of a node: its last settled run (if any) and its pinned output."""

    node: Node
    run: NodeRun | None
    pinned: dict[str, Any] | None


@dataclass
class Segment:
    text: str
    expression: bool


@dataclass
class Preview:
    node_name: str
    field: str
    source: str
    segments: list[Segment] = field(default_factory=list)
    value: str | None = None
    error: str | None = None
    data_from: str = ""
    waiting: bool = False
    """No input data yet and the expression parses: the preview says so quietly instead of failing."""


_PARTS = re.compile(r"(\{\{.*?\}\})", re.DOTALL)


@dataclass
class TestingService:
    workflows: WorkflowService
    preview_seconds: float = PREVIEW_SECONDS

    @property
    def db(self) -> Any:
        return self.workflows.db

    async def start(self, queue: Queue, workflow_id: int, mode: Mode, node_id: str | None, *, author_id: int,
                    timeout: int, announce: Announce | None = None) -> tuple[Execution, Plan]:
        """Create the test execution, **commit**, then enqueue it (``GraphError`` / ``MissingTestData``: nothing kept)."""
        workflow = await self.workflows.get(workflow_id)
        if node_id is not None:
            await self.workflows.node(workflow_id, node_id)
        try:
            execution, chosen = await create_test_execution(self.db, workflow, self.workflows.registry, mode, node_id,
                                                            author_id=author_id)
        except BaseException:
            await self.db.rollback()
            raise
        await self.db.commit()
        await enqueue_execution(queue, execution.id, timeout=job_timeout_for(timeout), heartbeat=HEARTBEAT)
        await announce_created(announce, [(execution, workflow.name)])
        return execution, chosen

    async def has_pins(self, workflow_id: int) -> bool:
        await self.workflows.get(workflow_id)
        return bool(await pinned_outputs(self.db, workflow_id))

    async def pin(self, workflow_id: int, node_id: str, text: str, expected_version: int | None) -> Node:
        """Pin ``text`` (JSON) or, when it is blank, the output of the node's last successful run."""
        node = await self.workflows.node_for_write(workflow_id, node_id, expected_version)
        outputs = self.workflows.outputs(node)
        if text.strip():
            raw: Any = text
        else:
            run = await self._last_run(workflow_id, node_id, ("succeeded",))
            if run is None or run.output is None:
                raise Invalid(f"“{node.name}” has no output from an earlier run to pin: run it first, "
                              "or paste JSON to pin.")
            raw = run.output
        try:
            node.pinned_output = parse_pinned(raw, outputs)
        except InvalidPinnedData as exc:
            raise Invalid(str(exc)) from None
        await self._commit(workflow_id)
        return node

    async def unpin(self, workflow_id: int, node_id: str, expected_version: int | None) -> Node:
        node = await self.workflows.node_for_write(workflow_id, node_id, expected_version)
        if node.pinned_output is not None:
            node.pinned_output = null()  # SQL NULL, not JSON null
            await self._commit(workflow_id)
        return node

    async def _commit(self, workflow_id: int) -> None:
        """A pin is a node edit: the row's version moves on (stale tabs get 409) and the draft revision is
        bumped like for every node write. Pinned data is not in the version snapshot, so the next start
        finds the same graph and reuses the newest version (engine/testruns.py)."""
        try:
            await touch_draft(self.db, workflow_id)
            await self.db.commit()
        except StaleDataError:
            await self.db.rollback()
            raise Conflict("This node was changed elsewhere. Reload to see the latest version.") from None

    async def node_data(self, workflow_id: int, node_id: str) -> NodeData:
        node = await self.workflows.node(workflow_id, node_id)
        return NodeData(node, await self._last_run(workflow_id, node_id, SETTLED), node.pinned_output)

    async def _last_run(self, workflow_id: int, node_id: str, statuses: tuple[str, ...]) -> NodeRun | None:
        return await self.db.scalar(
            select(NodeRun).join(Execution, Execution.id == NodeRun.execution_id)
            .where(Execution.workflow_id == workflow_id, NodeRun.node_id == node_id, NodeRun.status.in_(statuses))
            .order_by(NodeRun.id.desc()).limit(1))

    async def preview(self, workflow_id: int, node_id: str, field_name: str, source: str) -> Preview:
        """``source`` evaluated the way the engine would, against the node's last input (its first item).

        Before any data, what fails only for want of data (a missing field reads as undefined) waits quietly;
        a syntax error, a refused operation or an exceeded budget is an error with or without data."""
        node = await self.workflows.node(workflow_id, node_id)
        preview = Preview(node.name, field_name, source,
                          [Segment(part, bool(_PARTS.fullmatch(part))) for part in _PARTS.split(source) if part])
        if not is_expression(source):
            return preview
        syntax = check_syntax(source)
        if syntax is not None:
            preview.error = f"“{node.name}”, field “{field_name}”, expression {source}: syntax error: {syntax}"
            return preview
        items, trigger, nodes, preview.data_from = await self._variables(workflow_id, node)
        deadline = time.monotonic() + self.preview_seconds
        expressions = Expressions(trigger, items=items, nodes=nodes, pool=PREVIEWS, deadline=deadline)
        try:
            async with asyncio.timeout(self.preview_seconds):
                value = await expressions.render(source, item=items[0] if items else {}, field=field_name)
        except (ExpressionError, TimeoutError) as exc:
            if preview.data_from == NO_DATA and _for_want_of_data(exc):
                preview.waiting = True
                return preview
            preview.error = f"“{node.name}”, field “{field_name}”, expression {self._failure(exc, source, deadline)}"
            return preview
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        preview.value = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " … (truncated)"
        return preview

    async def completions(self, workflow_id: int, node_id: str) -> Completions:
        """What the expression editor offers in the fields of ``node_id`` (webapp/testing/completions.py)."""
        node = await self.workflows.node(workflow_id, node_id)
        items, trigger, outputs, data_from = await self._variables(workflow_id, node)
        edges = [(c.source_node_id, c.target_node_id) for c in await self.workflows.connections(workflow_id)]
        ancestors = upstream(node.id, edges)
        names = [n.name for n in await self.workflows.nodes(workflow_id) if n.id in ancestors]
        return build_completions(items, trigger, outputs, names, "" if data_from == NO_DATA else data_from)

    def _failure(self, exc: ExpressionError | TimeoutError, source: str, deadline: float) -> str:
        """The expression and why it failed. The preview's time limit is reached twice at once: by the timeout
        here, and by the evaluation's own deadline check in its thread, whichever the event loop sees first —
        both answer the preview's message."""
        if isinstance(exc, TimeoutError) or (isinstance(exc, ExpressionBudgetExceeded) and time.monotonic() >= deadline):
            return f"{source}: the preview took longer than its limit of {self.preview_seconds:g} s"
        return f"{exc.expression or source}: {str(exc).split(' in field ', 1)[0]}"

    async def _variables(self, workflow_id: int, node: Node) -> tuple[list[Any], dict[str, Any], dict[str, Any], str]:
        """The node's last input, the trigger input and earlier nodes' outputs of that execution; without a
        run, the pinned outputs of the nodes feeding it."""
        recent = await self.db.scalars(
            select(NodeRun).join(Execution, Execution.id == NodeRun.execution_id)
            .where(Execution.workflow_id == workflow_id, NodeRun.node_id == node.id)
            .order_by(NodeRun.id.desc()).limit(20))
        run = next((r for r in recent if r.input), None)  # a given (pinned) run has no input
        pinned = await pinned_outputs(self.db, workflow_id)
        names = {n.id: n.name for n in await self.workflows.nodes(workflow_id)}
        nodes = {names[i]: _items(output) for i, output in pinned.items() if i in names}
        if run is not None and run.input:
            execution = await self.db.get_one(Execution, run.execution_id)
            for other in await self.db.scalars(select(NodeRun).where(NodeRun.execution_id == execution.id)
                                               .order_by(NodeRun.id)):
                if other.output:
                    nodes.setdefault(other.node_name, _items(other.output))
            return list(run.input), dict(execution.input or {}), nodes, f"last input (execution #{execution.id})"
        feeding = [c.source_node_id for c in await self.workflows.connections(workflow_id)
                   if c.target_node_id == node.id and c.source_node_id in pinned]
        items = [item for source in feeding for item in _items(pinned[source])]
        if items:
            return items, {}, nodes, "pinned data of the nodes feeding it"
        return [], {}, nodes, NO_DATA


def _for_want_of_data(exc: ExpressionError | TimeoutError) -> bool:
    """A failure that real data may cure: a lookup or a use of something undefined, a wrong type. Not a time or
    budget limit, nor what the sandbox refuses (``engine.expressions.evaluate`` words it "Not allowed: …")."""
    if isinstance(exc, (TimeoutError, ExpressionBudgetExceeded)):
        return False
    return not str(exc).startswith("Not allowed")


def _items(output: dict[str, Any] | None) -> list[Any]:
    return [item for items in (output or {}).values() for item in items]
