from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.limits import MAX_ID
from engine.options import Choice, OptionsContext
from engine.subworkflows import SUB_WORKFLOW_TYPE


class SubWorkflowConfig(msgspec.Struct, forbid_unknown_fields=True):
    workflow_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, title="Workflow", description=(
        "Another workflow of yours: pick it by name, or enter its id by hand (the number in its address, "
        "/workflows/<id>). It gets this node's items as its trigger's items; its final items are this node's "
        "output."), extra={"widget": "options"})]


class SubWorkflow(NodeType):
    """Runs another workflow of the same owner with the current items and returns its final outputs."""

    type_name = SUB_WORKFLOW_TYPE
    version = 1
    title = "Sub-workflow"
    category = "Logic"
    description = "Run another of your workflows with these items."
    help: ClassVar[str] = ("Runs another of your workflows with this node's items and returns the items its last nodes "
                           "produce. Pick the workflow by name, or enter its id by hand.")
    Config = SubWorkflowConfig

    async def run(self, ctx: NodeContext, config: SubWorkflowConfig, items: list[Item]) -> NodeResult:
        if ctx.sub_workflows is None:
            raise NodeError("sub-workflows are not available here")
        return NodeResult.main(await ctx.sub_workflows.run(config.workflow_id, items))

    async def options(self, ctx: OptionsContext, field: str, credential: int | None, query: str) -> list[Choice]:
        """The owner's other workflows, by name."""
        if ctx.workflows is None:
            raise NodeError("the workflow list is not available here")
        return [c for c in await ctx.workflows.search(query) if c.value != ctx.workflow_id]

    def time_limit(self, config: SubWorkflowConfig, items: list[Item]) -> float:
        return 24 * 3600.0  # bounded by the sub-workflow's own execution limit
