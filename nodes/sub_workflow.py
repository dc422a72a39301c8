from __future__ import annotations

from typing import Annotated

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.limits import MAX_ID
from engine.subworkflows import SUB_WORKFLOW_TYPE


class SubWorkflowConfig(msgspec.Struct, forbid_unknown_fields=True):
    workflow_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, title="Workflow id", description=(
        "The id of another workflow of yours (the number in its address, /workflows/<id>). It gets this "
        "node's items as its trigger's items; its final items are this node's output."))]


class SubWorkflow(NodeType):
    """Runs another workflow of the same owner with the current items and returns its final outputs."""

    type_name = SUB_WORKFLOW_TYPE
    version = 1
    title = "Sub-workflow"
    category = "Logic"
    description = "Run another of your workflows with these items."
    Config = SubWorkflowConfig

    async def run(self, ctx: NodeContext, config: SubWorkflowConfig, items: list[Item]) -> NodeResult:
        if ctx.sub_workflows is None:
            raise NodeError("sub-workflows are not available here")
        return NodeResult.main(await ctx.sub_workflows.run(config.workflow_id, items))

    def time_limit(self, config: SubWorkflowConfig, items: list[Item]) -> float:
        return 24 * 3600.0  # bounded by the sub-workflow's own execution limit
