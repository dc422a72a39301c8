"""Switch: route each item by rules to outputs ``0``–``3``, or ``fallback`` when none matches."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from nodes.conditions import HELP, OPERATORS, Condition, list_problems, log_routes, matches

RULE_PORTS = ("0", "1", "2", "3")
FALLBACK = "fallback"


class SwitchConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: Annotated[Literal["first_match", "all_matches"], msgspec.Meta(
        title="Mode", description="first_match: an item leaves by the first matching rule's output; "
                                  "all_matches: by every matching rule's output.",
        extra={"labels": {"first_match": "First matching rule", "all_matches": "Every matching rule"}})] = "first_match"
    rules: Annotated[list[Condition], msgspec.Meta(
        title="Rules", description=f"Up to {len(RULE_PORTS)} rules; rule 0 feeds output 0, rule 1 output 1, … "
                                   f"Items matching no rule leave by fallback. Each rule is one condition. "
                                   f"{HELP}",
        extra={"widget": "conditions", "rows": Condition, "ports": RULE_PORTS})]

    def problems(self) -> dict[str, str]:
        if len(self.rules) > len(RULE_PORTS):
            return {"rules": f"At most {len(RULE_PORTS)} rules (Switch has outputs {', '.join(RULE_PORTS)} and "
                             f"{FALLBACK}), got {len(self.rules)}."}
        if message := list_problems(self.rules, "rules", at_most=len(RULE_PORTS), noun="rule"):
            return {"rules": message}
        return {}


class Switch(NodeType):
    """Routes each item by up to four rules; a rule on a missing field does not match (except
    ``not_exists``); items matching no rule leave by ``fallback``."""

    type_name = "switch"
    version = 1
    pure = True
    title = "Switch"
    category = "Logic"
    description = "Send items to one of several outputs by rules."
    help: ClassVar[str] = ("Sends each item to the output of the rule it matches (rule 0 → output 0, …), or to fallback "
                           "when it matches none. Each rule is one condition row.")
    Config = SwitchConfig
    outputs = (*RULE_PORTS, FALLBACK)
    expression_fields = ("rules",)
    condition_operators: ClassVar[dict[str, tuple[str, ...]]] = OPERATORS

    async def run(self, ctx: NodeContext, config: SwitchConfig, items: list[Item]) -> NodeResult:
        routes: dict[str, list[Item]] = {}
        for item in items:
            for port in await self._ports(ctx, config, item):
                routes.setdefault(port, []).append(item)
        log_routes(ctx, routes, len(items))
        return NodeResult(routes)

    async def _ports(self, ctx: NodeContext, config: SwitchConfig, item: Item) -> list[str]:
        found = []
        for index, rule in enumerate(config.rules):
            if await self._matches(ctx, rule, item, f"rules[{index}]"):
                found.append(RULE_PORTS[index])
                if config.mode == "first_match":
                    break
        return found or [FALLBACK]

    async def _matches(self, ctx: NodeContext, rule: Any, item: Item, where: str) -> bool:
        """Whether ``rule`` holds for ``item`` (a rule is one condition here; Switch version 2 overrides this)."""
        return await matches(ctx, rule, item, where)
