"""The workflow graph: one validated schema, enforced on save and again on load.

The same structs are the ``patchwire.workflow`` JSON format (docs/workflow-format.md) and the
immutable snapshot stored in ``workflow_versions``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from engine.config import parse_config
from engine.contract import NodeType
from engine.errors import ConfigError, GraphError, RegistryError
from engine.limits import nesting_exceeds, too_deep_message
from engine.policy import ERROR_PORT, NodeSettings
from engine.registry import Registry

FORMAT = "patchwire.workflow"
NO_TRIGGER = "no_trigger"
UNCONNECTED_INPUT = "unconnected_input"
MAX_DOCUMENT_BYTES = 5_000_000
MAX_NODES = 2_000
MAX_CONNECTIONS = 5_000
MAX_NOTES = 500
MAX_NOTE_TEXT = 10_000
NOTE_WIDTH = (120.0, 2000.0)
NOTE_HEIGHT = (60.0, 2000.0)


Coordinate = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Port = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Position(msgspec.Struct, forbid_unknown_fields=True):
    x: Coordinate = 0.0
    y: Coordinate = 0.0


class NodeSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: Id
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    name: Name
    version: int = 1
    config: dict[str, Any] = {}
    settings: NodeSettings = msgspec.field(default_factory=NodeSettings)
    position: Position = msgspec.field(default_factory=Position)


class ConnectionSpec(msgspec.Struct, forbid_unknown_fields=True):
    source: Id
    target: Id
    source_port: Port = "main"
    target_port: Port = "main"


class NoteSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A sticky note on the canvas: markdown for people, never part of a run."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_NOTE_TEXT)] = ""
    position: Position = msgspec.field(default_factory=Position)
    width: Annotated[float, msgspec.Meta(ge=NOTE_WIDTH[0], le=NOTE_WIDTH[1])] = 240.0
    height: Annotated[float, msgspec.Meta(ge=NOTE_HEIGHT[0], le=NOTE_HEIGHT[1])] = 160.0


class Graph(msgspec.Struct, forbid_unknown_fields=True):
    nodes: list[NodeSpec] = []
    connections: list[ConnectionSpec] = []

    def node(self, node_id: str) -> NodeSpec:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


class WorkflowDocument(msgspec.Struct, forbid_unknown_fields=True):
    """A whole workflow as exported and imported."""

    name: Name
    format: Literal["patchwire.workflow"] = FORMAT
    format_version: Literal[1] = 1
    nodes: list[NodeSpec] = []
    connections: list[ConnectionSpec] = []
    notes: Annotated[list[NoteSpec], msgspec.Meta(max_length=MAX_NOTES)] = []

    @property
    def graph(self) -> Graph:
        return Graph(nodes=self.nodes, connections=self.connections)


@dataclass(frozen=True)
class Problem:
    """One reason a graph cannot run; ``node_id`` is set when a node is concerned."""

    message: str
    node_id: str | None = None
    field: str | None = None
    code: str = "invalid"

    def __str__(self) -> str:
        return self.message


def decode_document(data: bytes | str) -> WorkflowDocument:
    """Parse the workflow JSON format; raise ``GraphError`` with a precise message."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise GraphError([Problem(f"Too large: a workflow file is at most {MAX_DOCUMENT_BYTES // 1_000_000} MB.")])
    if nesting_exceeds(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data):
        raise GraphError([Problem(f"Not a Patchwire workflow: {too_deep_message('the document')}")])
    try:
        return msgspec.json.decode(data, type=WorkflowDocument)
    except msgspec.DecodeError as exc:
        raise GraphError([Problem(f"Not a Patchwire workflow: {str(exc).replace('`', '')}")]) from None
    except RecursionError:
        raise GraphError([Problem("Not a Patchwire workflow: nested too deeply.")]) from None


def validate_graph(graph: Graph, registry: Registry) -> list[Problem]:
    """Every reason the graph cannot run, in a stable order (empty list: it can run)."""
    if problems := _check_sizes(graph):
        return problems
    problems = _check_nodes(graph, registry)
    if not all(registry.has(n.type, n.version) for n in graph.nodes):
        return problems
    connection_problems = _check_connections(graph, registry)
    problems += connection_problems or _check_cycles(graph)
    problems += _check_inputs_connected(graph, registry)
    if not any(registry.get(n.type, n.version).is_trigger for n in graph.nodes):
        problems.append(Problem("The workflow needs a trigger node (e.g. Manual Trigger) to start from.",
                                code=NO_TRIGGER))
    return problems


def _check_sizes(graph: Graph) -> list[Problem]:
    if len(graph.nodes) > MAX_NODES or len(graph.connections) > MAX_CONNECTIONS:
        return [Problem(f"Too large: at most {MAX_NODES} nodes and {MAX_CONNECTIONS} connections.")]
    return []


def _check_nodes(graph: Graph, registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    for node in graph.nodes:
        if node.id in seen_ids:
            problems.append(Problem(f"Duplicate node id {node.id!r}.", node.id))
        if node.name in seen_names:
            problems.append(Problem(f"Duplicate node name {node.name!r}: names must be unique.", node.id))
        seen_ids.add(node.id)
        seen_names.add(node.name)
        problems += _check_node_config(node, registry)
    return problems


def _check_node_config(node: NodeSpec, registry: Registry) -> list[Problem]:
    try:
        node_type = registry.get(node.type, node.version)
    except RegistryError as exc:
        return [Problem(f"{node.name}: {exc}.", node.id)]
    try:
        parse_config(node_type.Config, node.config)
    except ConfigError as exc:
        return [Problem(f"{node.name}: {field}: {msg}", node.id, field) for field, msg in exc.field_errors.items()]
    return []


def _check_connections(graph: Graph, registry: Registry) -> list[Problem]:
    by_id = {n.id: n for n in graph.nodes}
    problems: list[Problem] = []
    seen: set[tuple[str, str, str, str]] = set()
    for c in graph.connections:
        key = (c.source, c.source_port, c.target, c.target_port)
        if key in seen:
            problems.append(Problem(f"Duplicate connection {c.source}.{c.source_port} → {c.target}.{c.target_port}.", c.target))
        seen.add(key)
        label = f"{c.source}.{c.source_port} → {c.target}.{c.target_port}"
        problems += _check_endpoint(by_id, registry, c.source, c.source_port, "outputs", label)
        problems += _check_endpoint(by_id, registry, c.target, c.target_port, "inputs", label)
    return problems


def _check_inputs_connected(graph: Graph, registry: Registry) -> list[Problem]:
    """A node with several inputs (Merge) needs each of them connected: with one it has nothing to join."""
    connected = {(c.target, c.target_port) for c in graph.connections}
    problems: list[Problem] = []
    for node in graph.nodes:
        inputs = registry.get(node.type, node.version).inputs
        if len(inputs) > 1:
            problems += [Problem(f"{node.name}: input {port} is not connected.", node.id, code=UNCONNECTED_INPUT)
                         for port in inputs if (node.id, port) not in connected]
    return problems


def _check_endpoint(by_id: dict[str, NodeSpec], registry: Registry, node_id: str, port: str, side: str,
                    label: str) -> list[Problem]:
    node = by_id.get(node_id)
    if node is None:
        return [Problem(f"Connection {label} refers to a node that does not exist: {node_id!r}.")]
    message = port_problem(node.name, registry.get(node.type, node.version), port, side, node.settings)
    return [Problem(message, node.id)] if message else []


def ports(node_type: type[NodeType], side: str, settings: NodeSettings | None = None) -> tuple[str, ...]:
    """A node's ports; a node whose failures go to an error output has the extra output ``error``."""
    found: tuple[str, ...] = getattr(node_type, side)
    if side == "outputs" and settings is not None and settings.on_error == "error_output":
        found += (ERROR_PORT,)
    return found


def port_problem(node_name: str, node_type: type[NodeType], port: str, side: str,
                 settings: NodeSettings | None = None) -> str | None:
    """Why ``port`` is not one of the node's ``side`` ("inputs" / "outputs"), or None."""
    ports_ = ports(node_type, side, settings)
    if port in ports_:
        return None
    kind = "output" if side == "outputs" else "input"
    return f"{node_name} has no {kind} port {port!r} (it has: {', '.join(ports_) or 'none'})."


def successors(graph: Graph) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for c in graph.connections:
        out[c.source].add(c.target)
    return out


def _check_cycles(graph: Graph) -> list[Problem]:
    order = topological_order(graph)
    if len(order) == len(graph.nodes):
        return []
    stuck = sorted(set(n.id for n in graph.nodes) - set(order))
    names = ", ".join(f"{graph.node(i).name} ({i})" for i in stuck)
    return [Problem(f"The connections form a cycle through: {names}.", i) for i in stuck[:1]] + [
        Problem("Part of a cycle.", i) for i in stuck[1:]
    ]


def topological_order(graph: Graph) -> list[str]:
    """Kahn's algorithm; nodes on a cycle are left out (callers compare lengths)."""
    succ = successors(graph)
    indegree = {n.id: 0 for n in graph.nodes}
    for _source, target in {(c.source, c.target) for c in graph.connections}:
        if target in indegree:
            indegree[target] += 1
    ready = deque(n.id for n in graph.nodes if indegree[n.id] == 0)
    order = []
    while ready:
        node_id = ready.popleft()
        order.append(node_id)
        for nxt in sorted(succ.get(node_id, ())):
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return order


def would_close_cycle(edges: list[tuple[str, str]], source: str, target: str) -> bool:
    """True when adding ``source → target`` to ``edges`` makes a cycle (target reaches source)."""
    if source == target:
        return True
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    stack, seen = [target], {target}
    while stack:
        for nxt in succ.get(stack.pop(), ()):
            if nxt == source:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def ensure_valid(graph: Graph, registry: Registry) -> None:
    if problems := validate_graph(graph, registry):
        raise GraphError(problems)
