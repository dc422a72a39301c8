"""Editing many nodes at once: paste a document, move many nodes, delete many nodes.

Each operation is one transaction: it is checked completely first, and on any problem nothing
is written (the editor's undo history relies on that: a step is recorded only when it applied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.exceptions import NotFoundException
from sqlalchemy import delete, select

from engine.errors import GraphError
from engine.executions import load_graph, touch_draft
from engine.graph import (
    NO_TRIGGER,
    UNCONNECTED_INPUT,
    ConnectionSpec,
    Graph,
    NodeSpec,
    Problem,
    WorkflowDocument,
    port_problem,
    topological_order,
    validate_graph,
)
from engine.limits import nesting_exceeds, too_deep_message
from engine.models import Connection, Node
from engine.registry import Registry
from webapp.credentials.references import resolve_references
from webapp.errors import Invalid, PasteRefused, StaleEdit
from webapp.webhooks.services import sync_workflow_webhooks
from webapp.workflows.services import MAX_NAME, WorkflowService, _coordinate, new_node_id

MAX_PASTE_BYTES = 1024 * 1024
MAX_BATCH = 2_000
_NUMBER_SUFFIX = re.compile(r" \d+$")


@dataclass
class Pasted:
    """What a paste created: the new node rows, their connections, and old id → new id."""

    nodes: list[Node]
    connections: list[Connection]
    ids: dict[str, str] = field(default_factory=dict)


def decode_paste(text: str) -> WorkflowDocument:
    """The clipboard's text as a workflow document, or ``PasteRefused`` with a precise reason."""
    size = len(text.encode())
    if size > MAX_PASTE_BYTES:
        raise PasteRefused([Problem(f"Too large: the pasted text is {size:,} bytes; at most 1 MiB "
                                    f"({MAX_PASTE_BYTES:,} bytes) can be pasted.")])
    if not text.strip():
        raise PasteRefused([Problem("The clipboard is empty.")])
    if nesting_exceeds(text.encode("utf-8", "surrogatepass")):
        raise PasteRefused([Problem(f"Not a Patchwire workflow: {too_deep_message('the pasted text')}")])
    try:
        document = msgspec.json.decode(text, type=WorkflowDocument)
    except msgspec.DecodeError as exc:
        raise PasteRefused([Problem(f"Not a Patchwire workflow: {str(exc).replace('`', '')}")]) from None
    except RecursionError:
        raise PasteRefused([Problem("Not a Patchwire workflow: nested too deeply.")]) from None
    if not document.nodes:
        raise PasteRefused([Problem("Nothing to paste: the document has no nodes.")])
    return document


def _paste_problems(graph: Graph, service: WorkflowService) -> list[Problem]:
    """What stops a pasted graph from being added. A draft may be unfinished: no trigger, an open
    Merge input, or a required config field not filled in yet (as on a freshly dropped node)."""
    def relevant(problem: Problem) -> bool:
        if problem.code in (NO_TRIGGER, UNCONNECTED_INPUT):
            return False
        if problem.field and problem.node_id:
            return problem.field.split(".")[0] in graph.node(problem.node_id).config  # absent: not filled in yet
        return True

    return [p for p in validate_graph(graph, service.registry) if relevant(p)]


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    base = _NUMBER_SUFFIX.sub("", name)
    for i in range(2, len(taken) + 3):
        suffix = f" {i}"
        candidate = base[:MAX_NAME - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable: there is always a free suffix")


async def paste(service: WorkflowService, workflow_id: int, document: WorkflowDocument, dx: float, dy: float,
                attach: bool = False) -> Pasted:
    """Add the document's nodes (fresh ids, offset positions, unique names) and connections.

    With ``attach`` (how undo restores deleted nodes), a connection may also end at a node that
    is already in the workflow; otherwise every connection must stay inside the document.
    """
    await service.get(workflow_id)
    try:  # credential ids must be the owner's; references (from an export) become the owner's ids
        document, _ = await resolve_references(service.db, service.owner_id, document, service.registry)
    except GraphError as exc:
        raise PasteRefused(exc.problems) from None
    existing = await load_graph(service.db, workflow_id)
    pasted_ids = {n.id for n in document.nodes}
    outside = [c for c in document.connections if attach and not {c.source, c.target} <= pasted_ids]
    inside = [c for c in document.connections if c not in outside]
    problems = _paste_problems(Graph(nodes=document.nodes, connections=inside), service)
    problems += _attach_problems(existing, document, outside, service.registry)
    if problems:
        raise PasteRefused(problems)
    taken = {n.name for n in existing.nodes}
    ids = {n.id: new_node_id() for n in document.nodes}
    nodes = []
    for spec in document.nodes:
        name = _free_name(spec.name, taken)
        taken.add(name)
        nodes.append(Node(id=ids[spec.id], workflow_id=workflow_id, type_name=spec.type, type_version=spec.version,
                          name=name, config=spec.config, settings=msgspec.to_builtins(spec.settings),
                          pos_x=_coordinate(spec.position.x + dx), pos_y=_coordinate(spec.position.y + dy)))
    service.db.add_all(nodes)
    await service.db.flush()
    connections = [Connection(workflow_id=workflow_id, source_node_id=ids.get(c.source, c.source),
                              source_port=c.source_port, target_node_id=ids.get(c.target, c.target),
                              target_port=c.target_port) for c in document.connections]
    service.db.add_all(connections)
    await sync_workflow_webhooks(service.db, await service.get(workflow_id))
    await touch_draft(service.db, workflow_id)
    await service.db.commit()
    return Pasted(nodes, connections, ids)


def _attach_problems(existing: Graph, document: WorkflowDocument, outside: list[ConnectionSpec],
                     registry: Registry) -> list[Problem]:
    """Connections from pasted nodes to nodes already in the workflow: both ends exist, the ports
    exist, and the whole graph stays free of cycles."""
    if not outside:
        return []
    by_id = {n.id: n for n in existing.nodes} | {n.id: n for n in document.nodes}
    problems: list[Problem] = []
    for c in outside:
        for node_id in (c.source, c.target):
            if node_id not in by_id:
                problems.append(Problem(f"A connection refers to a node that does not exist: {node_id!r}."))
    if problems:
        return problems
    for c in outside:
        problems += [Problem(m) for m in _port_problems(by_id, c, registry)]
    if problems:
        return problems
    combined = Graph(nodes=[*existing.nodes, *document.nodes], connections=[*existing.connections, *document.connections])
    if len(topological_order(combined)) != len(combined.nodes):
        problems.append(Problem("These connections would create a cycle; workflows must not loop back."))
    return problems


def _port_problems(by_id: dict[str, NodeSpec], c: ConnectionSpec, registry: Registry) -> list[str]:
    messages = []
    for node_id, port, side in ((c.source, c.source_port, "outputs"), (c.target, c.target_port, "inputs")):
        node = by_id[node_id]
        if not registry.has(node.type, node.version):
            continue  # reported with the node
        if message := port_problem(node.name, registry.get(node.type, node.version), port, side, node.settings):
            messages.append(message)
    return messages


async def move_nodes(service: WorkflowService, workflow_id: int, positions: list[tuple[str, float, float]],
                     versions: dict[str, int] | None = None) -> dict[str, int]:
    """Save many positions in one transaction; an unknown node id changes nothing (404), nor does a node
    whose version differs from the one in ``versions`` (409). Returns the nodes' new versions."""
    await service.get(workflow_id)
    wanted = _unique_ids([node_id for node_id, _, _ in positions])
    rows = {n.id: n for n in await service.db.scalars(
        select(Node).where(Node.workflow_id == workflow_id, Node.id.in_(wanted)))}
    _require_all(wanted, rows)
    _require_versions(rows, versions)
    for node_id, x, y in positions:
        rows[node_id].pos_x, rows[node_id].pos_y = _coordinate(x), _coordinate(y)
    await service._commit_node(workflow_id)
    return {node_id: row.version for node_id, row in rows.items()}


async def delete_nodes(service: WorkflowService, workflow_id: int, node_ids: list[str],
                       versions: dict[str, int] | None = None) -> None:
    """Delete many nodes and their connections in one transaction (409 if one changed since ``versions``)."""
    await service.get(workflow_id)
    wanted = _unique_ids(node_ids)
    rows = {n.id: n for n in await service.db.scalars(
        select(Node).where(Node.workflow_id == workflow_id, Node.id.in_(wanted)))}
    _require_all(wanted, rows)
    _require_versions(rows, versions)
    await service.db.execute(delete(Connection).where(
        Connection.workflow_id == workflow_id,
        Connection.source_node_id.in_(wanted) | Connection.target_node_id.in_(wanted)))
    for row in rows.values():
        await service.db.delete(row)
    await touch_draft(service.db, workflow_id)
    await service.db.commit()


def _unique_ids(node_ids: list[str]) -> list[str]:
    if not node_ids:
        raise Invalid("No nodes given.")
    if len(node_ids) > MAX_BATCH:
        raise Invalid(f"Too many nodes at once (at most {MAX_BATCH}).")
    if len(set(node_ids)) != len(node_ids):
        raise Invalid("A node is listed twice.")
    return node_ids


def _require_versions(rows: dict[str, Node], versions: dict[str, int] | None) -> None:
    """Every node the editor named with a version must still be at that version: else nothing is done."""
    stale = [row for node_id, row in rows.items() if versions and node_id in versions and versions[node_id] != row.version]
    if stale:
        raise StaleEdit(f"“{stale[0].name}” was changed in another tab or by someone else since this page loaded; "
                        "nothing was done.", [f"“{row.name}” is at version {row.version}." for row in stale],
                        node_id=stale[0].id, current_version=stale[0].version)


def _require_all(wanted: list[str], rows: dict[str, Any]) -> None:
    if missing := [node_id for node_id in wanted if node_id not in rows]:
        raise NotFoundException(f"No node {missing[0]!r} in this workflow: it was deleted, or it belongs elsewhere.")
