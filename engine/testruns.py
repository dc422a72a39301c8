"""Test runs from the editor: *run up to a node*, *run one node*, and pinned test data.

A test run is an ordinary execution (trigger ``manual``, a pinned version, the real worker) with two
additions, both written in the transaction that creates it, before it is enqueued:

* ``executions.scope``: the ids of the nodes that may run. The run loop starts no other node and
  writes no row or event for it (``Run.scope``); those nodes are neither run nor skipped.
* *Pre-settled* node runs (``succeeded``, attempt 1) for the nodes whose output is taken as given:
  a node's pinned output, or — for *run one node* — the output of its last successful run in an
  earlier execution of the workflow. The run loop reads them on resume like the copied runs of a
  retry from the failed node, so the nodes of the scope find their inputs settled.

Which nodes run (``plan``), walking back from the targets over incoming connections and stopping
at every pinned node (its pin stands in for it and for everything upstream of it that only it needs):

* ``all`` (the editor's Run button, when some node is pinned): the targets are the leaves;
* ``up_to``: the target and the ancestors it needs; the target runs even when it is pinned;
* ``only``: the target alone; each ancestor with a pin or a previous output is pre-settled, and a
  direct predecessor with neither refuses the run (``MissingTestData`` names it).

Production triggers (REST, webhooks, schedules, sub-workflows, retries of them) never look at pins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.contract import Item
from engine.errors import PatchwireError
from engine.executions import create_execution, graph_from_json
from engine.graph import Graph
from engine.limits import JSONLimitError, check_depth, check_size, load_json
from engine.models import Execution, Node, NodeRun, Workflow, WorkflowVersion
from engine.registry import Registry

Mode = Literal["all", "up_to", "only"]
MAX_PINNED_BYTES = 1024 * 1024
"""Pinned output is stored on the node row and copied into each test run: at most 1 MiB of JSON."""


class MissingTestData(PatchwireError):
    """A node's input cannot be made up: an upstream node has neither pinned data nor a previous output."""

    def __init__(self, message: str, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(message)


class InvalidPinnedData(PatchwireError):
    """Pinned data that is not ``{"<output port>": [{…}, …], …}`` JSON of at most ``MAX_PINNED_BYTES``."""


@dataclass
class Given:
    """Output taken as given for a node that does not run: where it came from and the items."""

    output: dict[str, list[Item]]
    source: str
    """``pinned`` or ``execution #<id>``."""
    input: list[Item] | None = None
    execution_input: dict[str, Any] | None = None


@dataclass
class Plan:
    scope: set[str] = field(default_factory=set)
    given: dict[str, Given] = field(default_factory=dict)


def parse_pinned(raw: str | bytes | Any, outputs: tuple[str, ...]) -> dict[str, list[Item]]:
    """Validate pinned output: JSON text (or an already decoded value) mapping output port names to
    lists of JSON objects; ``InvalidPinnedData`` says precisely what is wrong."""
    value = _decoded(raw)
    if not isinstance(value, dict) or not value:
        raise InvalidPinnedData('Pinned data must be an object mapping output names to lists of items, '
                                'e.g. {"main": [{"id": 1}]}.')
    for port, items in value.items():
        if port not in outputs:
            raise InvalidPinnedData(f"“{port}” is not an output of this node (its outputs: {', '.join(outputs)}).")
        if not isinstance(items, list):
            raise InvalidPinnedData(f"Output “{port}” must be a list of items (JSON objects).")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidPinnedData(f"Output “{port}”, item {index + 1} must be a JSON object, "
                                        f"not {type(item).__name__}.")
    return value


def _decoded(raw: str | bytes | Any) -> Any:
    """Pinned data held to engine.limits: at most MAX_PINNED_BYTES, at most MAX_JSON_DEPTH levels deep."""
    try:
        if isinstance(raw, (str, bytes)):
            return load_json(raw, "Pinned data", max_bytes=MAX_PINNED_BYTES)
        check_size(len(msgspec.json.encode(raw)), "Pinned data", MAX_PINNED_BYTES)
        check_depth(raw, "Pinned data")
    except JSONLimitError as exc:
        raise InvalidPinnedData(str(exc)) from None
    return raw


def plan(graph: Graph, mode: Mode, target: str | None, pinned: dict[str, dict[str, list[Item]]],
         previous: dict[str, Given]) -> Plan:
    """Which nodes of ``graph`` run and which are given (see the module's docstring)."""
    nodes = {n.id: n for n in graph.nodes}
    incoming: dict[str, list[str]] = {}
    for c in graph.connections:
        incoming.setdefault(c.target, []).append(c.source)
    if mode == "only":
        assert target is not None
        return _plan_one(nodes, incoming, target, pinned, previous)
    result = Plan()
    if mode == "up_to":
        assert target is not None
        work = [target]
    else:
        has_successor = {c.source for c in graph.connections}
        work = [n for n in nodes if n not in has_successor]
    while work:
        node_id = work.pop()
        if node_id in result.scope or node_id in result.given:
            continue
        if node_id in pinned and node_id != target:
            result.given[node_id] = Given(pinned[node_id], "pinned")
            continue
        result.scope.add(node_id)
        work.extend(incoming.get(node_id, []))
    return result


def _plan_one(nodes: dict[str, Any], incoming: dict[str, list[str]], target: str,
              pinned: dict[str, dict[str, list[Item]]], previous: dict[str, Given]) -> Plan:
    result = Plan(scope={target})
    for source in incoming.get(target, []):
        if source not in pinned and source not in previous:
            raise MissingTestData(f"“{nodes[source].name}” has neither pinned data nor an output from an earlier "
                                  f"run: run up to “{nodes[target].name}” first, or pin data on "
                                  f"“{nodes[source].name}”.", node_id=source)
    for node_id in _ancestors(incoming, target):
        given = Given(pinned[node_id], "pinned") if node_id in pinned else previous.get(node_id)
        if given is not None:
            result.given[node_id] = given
    return result


def _ancestors(incoming: dict[str, list[str]], node_id: str) -> set[str]:
    found: set[str] = set()
    work = list(incoming.get(node_id, []))
    while work:
        current = work.pop()
        if current not in found:
            found.add(current)
            work.extend(incoming.get(current, []))
    return found


async def pinned_outputs(session: AsyncSession, workflow_id: int) -> dict[str, dict[str, list[Item]]]:
    rows = await session.execute(select(Node.id, Node.pinned_output).where(
        Node.workflow_id == workflow_id, Node.pinned_output.is_not(None)))
    return {node_id: output for node_id, output in rows if output}


async def previous_outputs(session: AsyncSession, workflow_id: int, node_ids: set[str]) -> dict[str, Given]:
    """The output of each node's last successful run in an execution of the workflow."""
    if not node_ids:
        return {}
    newest = (select(func.max(NodeRun.id)).join(Execution, Execution.id == NodeRun.execution_id)
              .where(Execution.workflow_id == workflow_id, NodeRun.node_id.in_(node_ids), NodeRun.status == "succeeded")
              .group_by(NodeRun.node_id))
    rows = await session.execute(select(NodeRun, Execution.input).join(Execution, Execution.id == NodeRun.execution_id)
                                 .where(NodeRun.id.in_(newest)))
    return {run.node_id: Given(run.output, f"execution #{run.execution_id}", run.input, execution_input)
            for run, execution_input in rows if run.output is not None}


async def create_test_execution(session: AsyncSession, workflow: Workflow, registry: Registry, mode: Mode,
                                target: str | None = None, *, author_id: int | None = None) -> tuple[Execution, Plan]:
    """A queued ``manual`` execution of the draft restricted to the plan, with its given nodes' runs
    stored as settled. ``GraphError`` (the draft cannot run) or ``MissingTestData``: nothing is kept
    (the caller rolls back). The caller commits, then enqueues."""
    execution = await create_execution(session, workflow, registry, trigger="manual", author_id=author_id)
    graph = graph_from_json(await session.scalar(select(WorkflowVersion.graph)
                                                 .where(WorkflowVersion.id == execution.version_id)))
    if target is not None and target not in {n.id for n in graph.nodes}:
        raise MissingTestData("This node is not in the workflow any more; reload the editor.", node_id=target)
    pinned = await pinned_outputs(session, workflow.id)
    previous = await previous_outputs(session, workflow.id, {n.id for n in graph.nodes}) if mode == "only" else {}
    chosen = plan(graph, mode, target, pinned, previous)
    execution.scope = sorted(chosen.scope)
    execution.input = _execution_input(chosen)
    names = {n.id: n for n in graph.nodes}
    now = datetime.fromtimestamp(time.time(), UTC)
    for node_id, given in chosen.given.items():
        node = names[node_id]
        session.add(NodeRun(execution_id=execution.id, node_id=node_id, node_name=node.name, node_type=node.type,
                            attempt=1, status="succeeded", output=given.output,
                            input=given.input if given.input is not None else null(),  # SQL NULL: not computed
                            started_at=now, finished_at=now))
    await session.flush()
    return execution, chosen


def _execution_input(chosen: Plan) -> dict[str, Any]:
    """``trigger`` in expressions: the input of the execution the given outputs came from (the newest)."""
    inputs = [g for g in chosen.given.values() if g.execution_input is not None]
    newest = max(inputs, key=lambda g: int(g.source.rsplit("#", 1)[-1]), default=None)
    return dict(newest.execution_input) if newest and newest.execution_input else {}
