from __future__ import annotations

from engine.contract import EmptyConfig, Item, NodeContext, NodeResult, NodeType


class ManualTrigger(NodeType):
    """Starts the workflow when someone presses Run (or `patchwire run`); emits the run's input."""

    type_name = "manual_trigger"
    version = 1
    pure = True
    title = "Manual Trigger"
    category = "Triggers"
    description = "Starts the workflow from the Run button, the CLI or the API."
    Config = EmptyConfig
    inputs = ()
    is_trigger = True
    trigger_kind = "manual"

    async def run(self, ctx: NodeContext, config: EmptyConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)
