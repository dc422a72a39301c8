"""The editor's many-node operations: paste (also duplicate and undo of a delete), batch moves, batch deletes."""

from __future__ import annotations

import json
from typing import Annotated

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Template
from msgspec import Struct

from webapp.forms import Form
from webapp.workflows.controllers import node_view
from webapp.workflows.editing import decode_paste, delete_nodes, move_nodes, paste
from webapp.workflows.services import WorkflowService


class PasteForm(Struct):
    document: str = ""
    dx: float = 40.0
    dy: float = 40.0
    attach: str = ""


class NodePosition(Struct, forbid_unknown_fields=True):
    node: str
    x: float
    y: float
    version: int | None = None
    """The node's version the editor saw: a stale one refuses the whole batch (409)."""


class PositionsBody(Struct, forbid_unknown_fields=True):
    positions: list[NodePosition]


class NodeIdsBody(Struct, forbid_unknown_fields=True):
    nodes: list[str]
    versions: dict[str, int] = {}


class EditingController(Controller):
    path = "/workflows"

    @post("/{workflow_id:int}/paste")
    async def paste(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                    data: Annotated[PasteForm, Form]) -> Template:
        document = decode_paste(data.document)
        pasted = await paste(workflows, workflow_id, document, data.dx, data.dy, attach=data.attach == "1")
        connections = [{"source": c.source_node_id, "source_port": c.source_port,
                        "target": c.target_node_id, "target_port": c.target_port} for c in pasted.connections]
        return Template("workflows/_pasted.html", status_code=201, context={
            "nodes": [node_view(n) for n in pasted.nodes],
            "meta": {"ids": pasted.ids, "connections": connections}})

    @post("/{workflow_id:int}/positions")
    async def move_many(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                        data: JSONBody[PositionsBody]) -> Response[str]:
        versions = {p.node: p.version for p in data.positions if p.version is not None}
        moved = await move_nodes(workflows, workflow_id, [(p.node, p.x, p.y) for p in data.positions], versions)
        return Response("", status_code=204, headers={"X-Node-Versions": json.dumps(moved)})

    @post("/{workflow_id:int}/nodes/delete")
    async def delete_many(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                          data: JSONBody[NodeIdsBody]) -> Response[str]:
        await delete_nodes(workflows, workflow_id, data.nodes, data.versions)
        return Response("", status_code=204)
