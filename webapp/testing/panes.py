"""What the node editor's input and output panes show, and in which view.

The input pane shows the items the node receives, from the newest of: the node's own last run (its
recorded input), the pinned outputs of the nodes feeding it, their last runs' outputs (what "Run the
previous nodes" leaves). Or, chosen in its selector, an earlier node's output (the nodes upstream of
this one), which expressions reach as ``nodes["Name"]``. The output pane shows the node's last run
(per output port) and its pinned output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from markupsafe import Markup
from sqlalchemy import select

from engine.models import Execution, Node, NodeRun
from engine.registry import RegistryError
from webapp.testing.dataviews import data_schema, data_table
from webapp.testing.jsontree import json_tree

View = Literal["table", "json", "schema"]
VIEWS: tuple[View, ...] = ("table", "json", "schema")
VIEW_LABELS = {"table": "Table", "json": "JSON", "schema": "Schema"}
SIDES = ("input", "output")
PANE_JSON_VALUES = 400
"""At most this many values in a pane's JSON view (the execution page shows up to ``jsontree.MAX_NODES``): a tree
of nested ``<details>`` is the slowest view for the browser to lay out (docs/benchmarks.md, node editor)."""
COOKIE = "pw_{}_view"
"""The view chosen last for a side (``pw_input_view``): remembered by the browser, read by the server, so a
pane renders only the chosen view whatever asks for it (a load, a pin, a refresh after a run)."""


def chosen_view(asked: str | None, remembered: str | None) -> View:
    for view in (asked, remembered):
        if view in VIEWS:
            return view  # type: ignore[return-value]
    return "table"


def data_view(items: list[Any], view: str, source: str) -> Markup:
    """``items`` in ``view``; ``source`` says what the fields' expressions start from (dataviews.py)."""
    if view == "json":
        return json_tree(items, source=source, limit=PANE_JSON_VALUES)
    if view == "schema":
        return data_schema(items, source)
    return data_table(items, source)


@dataclass
class InputData:
    node: Node
    items: list[Any] | None
    """``None``: no input yet (or the node is a trigger)."""
    origin: str = ""
    execution_id: int | None = None
    trigger: bool = False
    feeding: list[Node] = field(default_factory=list)
    earlier: list[Node] = field(default_factory=list)
    shown: Node | None = None
    """The earlier node whose output is shown instead of the node's own input."""


@dataclass
class _Graph:
    nodes: dict[str, Node]
    incoming: dict[str, list[tuple[str, str]]]  # target -> [(source, source_port)]

    def ancestors(self, node_id: str) -> list[Node]:
        seen: list[str] = []
        work = [s for s, _ in self.incoming.get(node_id, [])]
        while work:
            current = work.pop(0)
            if current in seen or current == node_id:
                continue
            seen.append(current)
            work.extend(s for s, _ in self.incoming.get(current, []))
        return [self.nodes[i] for i in seen if i in self.nodes]


class Panes:
    """Reads a node's pane data through ``TestingService`` (so another owner's node is a 404 here too)."""

    def __init__(self, testing: Any) -> None:
        self.testing = testing
        self.db = testing.db

    async def input_data(self, workflow_id: int, node_id: str, source_id: str = "") -> InputData:
        node = await self.testing.workflows.node(workflow_id, node_id)
        graph = await self._graph(workflow_id)
        feeding_ids = list(dict.fromkeys(s for s, _ in graph.incoming.get(node_id, [])))
        data = InputData(node, None, trigger=self._is_trigger(node), earlier=graph.ancestors(node_id),
                         feeding=[graph.nodes[i] for i in feeding_ids if i in graph.nodes])
        # The nodes are loaded with their pinned data already: not read (and decoded) a second time.
        pinned = {i: n.pinned_output for i, n in graph.nodes.items() if n.pinned_output}
        shown = next((n for n in data.earlier if n.id == source_id), None)
        if shown is not None:
            data.shown = shown
            await self._earlier_output(data, shown, pinned)
        elif not data.trigger:
            await self._own_input(data, graph.incoming.get(node_id, []), pinned)
        return data

    def _is_trigger(self, node: Node) -> bool:
        try:
            return bool(self.testing.workflows.node_type(node).is_trigger)
        except RegistryError:
            return False

    async def _graph(self, workflow_id: int) -> _Graph:
        nodes = {n.id: n for n in await self.testing.workflows.nodes(workflow_id)}
        incoming: dict[str, list[tuple[str, str]]] = {}
        for c in await self.testing.workflows.connections(workflow_id):
            incoming.setdefault(c.target_node_id, []).append((c.source_node_id, c.source_port))
        return _Graph(nodes, incoming)

    async def _earlier_output(self, data: InputData, shown: Node, pinned: dict[str, Any]) -> None:
        if shown.id in pinned:
            data.items, data.origin = _items(pinned[shown.id]), f"pinned output of “{shown.name}”"
            return
        run = await self._last_run(shown.id, lambda q: q.where(NodeRun.status == "succeeded"))
        if run is not None and run.output is not None:
            data.items, data.execution_id = _items(run.output), run.execution_id
            data.origin = f"output of “{shown.name}”, execution #{run.execution_id}"

    async def _own_input(self, data: InputData, incoming: list[tuple[str, str]], pinned: dict[str, Any]) -> None:
        own = await self._last_input(data.node.id)
        # Which feeding runs are newest is read without their outputs: those are loaded (and decoded) only when
        # they, not the node's own last input, are what the pane shows.
        runs = {source: await self._last_succeeded(source) for source, _ in incoming if source not in pinned}
        newest = max((execution_id for _, execution_id in filter(None, runs.values())), default=0)
        if own is not None and own.execution_id >= newest:
            data.items, data.execution_id = list(own.input or []), own.execution_id
            data.origin = f"last run’s input, execution #{own.execution_id}"
            return
        fed: list[Any] = []
        for source, port in incoming:
            if source in pinned:
                fed.extend((pinned[source] or {}).get(port, []))
            elif (found := runs.get(source)) is not None:
                run = await self.db.get(NodeRun, found[0])
                fed.extend(((run.output if run is not None else None) or {}).get(port, []))
        if fed or newest:
            data.items, data.execution_id = fed, newest or None
            data.origin = (f"outputs of the previous nodes, execution #{newest}" if newest
                           else "pinned data of the nodes feeding it")

    async def _last_succeeded(self, node_id: str) -> tuple[int, int] | None:
        """The id and execution of the node's last succeeded run, without its data."""
        row = (await self.db.execute(
            select(NodeRun.id, NodeRun.execution_id).join(Execution, Execution.id == NodeRun.execution_id)
            .where(NodeRun.node_id == node_id, NodeRun.status == "succeeded").order_by(NodeRun.id.desc()).limit(1)
        )).first()
        return (row[0], row[1]) if row is not None else None

    async def _last_input(self, node_id: str) -> NodeRun | None:
        """The node's last settled run that recorded an input (a run given by pinned data has none)."""
        ids = await self.db.scalars(select(NodeRun.id).where(NodeRun.node_id == node_id, NodeRun.status.in_(
            ("succeeded", "failed"))).order_by(NodeRun.id.desc()).limit(10))
        for run_id in list(ids):
            run = await self.db.get(NodeRun, run_id)
            if run is not None and run.input:
                return run
        return None

    async def _last_run(self, node_id: str, where: Any) -> NodeRun | None:
        query = (select(NodeRun).join(Execution, Execution.id == NodeRun.execution_id)
                 .where(NodeRun.node_id == node_id).order_by(NodeRun.id.desc()).limit(1))
        return await self.db.scalar(where(query))


def _items(output: dict[str, Any] | None) -> list[Any]:
    return [item for items in (output or {}).values() for item in items]
