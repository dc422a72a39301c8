"""If, version 2: several typed conditions combined with and / or (version 1 stays as it was)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from nodes.conditions import HELP, MAX_CONDITIONS, OPERATORS, Condition, list_problems, log_routes, matches


class IfV2Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    combine: Annotated[Literal["and", "or"], msgspec.Meta(
        title="Combine", description="and: every condition must hold; or: at least one must.",
        extra={"labels": {"and": "All conditions hold (and)", "or": "Any condition holds (or)"}})] = "and"
    conditions: Annotated[list[Condition], msgspec.Meta(title="Conditions", description=HELP,
                                                        extra={"widget": "conditions", "rows": Condition})]

    def problems(self) -> dict[str, str]:
        if message := list_problems(self.conditions, "conditions", at_most=MAX_CONDITIONS):
            return {"conditions": message}
        return {}


class IfV2(NodeType):
    """Routes each item to ``true`` or ``false`` by testing typed conditions combined with and / or.

    Conditions are evaluated in order and stop as soon as the result is known (``and``: the
    first false; ``or``: the first true), so a later condition's type error only surfaces when
    that condition is reached.
    """

    type_name = "if"
    version = 2
    pure = True
    title = "If"
    category = "Logic"
    description = "Send items down the true or false branch by one or more conditions."
    help: ClassVar[str] = ("Tests each item against conditions built as rows (field, type, operator, value) and sends it "
                           "to true or false. Combine the rows with and (all must hold) or or (any may hold).")
    Config = IfV2Config
    outputs = ("true", "false")
    expression_fields = ("conditions",)
    condition_operators: ClassVar[dict[str, tuple[str, ...]]] = OPERATORS

    async def run(self, ctx: NodeContext, config: IfV2Config, items: list[Item]) -> NodeResult:
        routes: dict[str, list[Item]] = {}
        for item in items:
            routes.setdefault("true" if await self._test(ctx, config, item) else "false", []).append(item)
        log_routes(ctx, routes, len(items))
        return NodeResult(routes)

    async def _test(self, ctx: NodeContext, config: IfV2Config, item: Item) -> bool:
        """``and``: the first false condition decides; ``or``: the first true one (later ones are not evaluated)."""
        deciding = config.combine != "and"
        for i, c in enumerate(config.conditions):
            if await matches(ctx, c, item, f"conditions[{i}]") == deciding:
                return deciding
        return not deciding
