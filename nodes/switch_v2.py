"""Switch, version 2: each rule is a condition set (conditions + and / or) with an optional output
name shown as its port's label. Version 1 (one condition per rule) stays as it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from engine.contract import Item, NodeContext
from nodes.conditions import HELP, MAX_CONDITIONS, OPERATORS, Condition, condition_problems, matches
from nodes.switch import FALLBACK, RULE_PORTS, Switch

MAX_OUTPUT_NAME = 60


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One rule: its conditions, how they combine, and the name its output port shows."""

    conditions: list[Condition] = msgspec.field(default_factory=list)
    combine: Literal["and", "or"] = "and"
    output: str = ""

    @staticmethod
    def from_form(form: Mapping[str, list[str]], name: str) -> list[dict[str, Any]]:
        """Rules posted by the rule builder: per rule ``name.rule`` (its key), ``name.combine`` and
        ``name.output``; per condition row ``name.group`` (its rule's key) and the row's parts."""
        keys, combines, outputs = (form.get(f"{name}.{part}", []) for part in ("rule", "combine", "output"))
        rules: list[dict[str, Any]] = []
        by_key: dict[str, list[dict[str, Any]]] = {}
        for i, key in enumerate(keys):
            conditions: list[dict[str, Any]] = []
            by_key[key] = conditions
            combine = combines[i] if i < len(combines) else "and"
            rules.append({"conditions": conditions, "combine": combine,
                          "output": (outputs[i] if i < len(outputs) else "").strip()})
        parts = {part: form.get(f"{name}.{part}", []) for part in Condition.__struct_fields__}
        for i, key in enumerate(form.get(f"{name}.group", [])):
            row = {part: (v[i] if i < len(v) else "") for part, v in parts.items()}
            if key in by_key:
                by_key[key].append(Condition.from_form(row))
        return rules

    @staticmethod
    def errors_of(message: str | None, name: str) -> dict[int, dict[str, Any]]:
        """A field message split per rule: ``{rule: {"rule": [messages], "rows": {row: [messages]}}}``."""
        from engine.config import row_errors

        found: dict[int, dict[str, Any]] = {}
        for index, messages in row_errors(message, name).items():
            rows = row_errors("; ".join(messages), "conditions")
            own = [m for m in messages if not m.startswith("conditions[")]
            found[index] = {"rule": own, "rows": rows}
        return found


def rule_problems(rules: list[Rule], name: str) -> str | None:
    if not rules:
        return "Add at least one rule."
    if len(rules) > len(RULE_PORTS):
        return (f"At most {len(RULE_PORTS)} rules (Switch has outputs {', '.join(RULE_PORTS)} and {FALLBACK}), "
                f"got {len(rules)}.")
    found = []
    for index, rule in enumerate(rules):
        where = f"{name}[{index}]"
        if not rule.conditions:
            found.append(f"{where}.conditions: add at least one condition")
        elif len(rule.conditions) > MAX_CONDITIONS:
            found.append(f"{where}.conditions: at most {MAX_CONDITIONS} conditions, got {len(rule.conditions)}")
        found += condition_problems(rule.conditions, f"{where}.conditions")
        if len(rule.output) > MAX_OUTPUT_NAME:
            found.append(f"{where}.output: at most {MAX_OUTPUT_NAME} characters")
    return "; ".join(found) or None


class SwitchV2Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: Annotated[Literal["first_match", "all_matches"], msgspec.Meta(
        title="Mode", description="first_match: an item leaves by the first matching rule's output; "
                                  "all_matches: by every matching rule's output.",
        extra={"labels": {"first_match": "First matching rule", "all_matches": "Every matching rule"}})] = "first_match"
    rules: Annotated[list[Rule], msgspec.Meta(
        title="Rules", description=f"Up to {len(RULE_PORTS)} rules; rule 0 feeds output 0, rule 1 output 1, … "
                                   f"Items matching no rule leave by fallback. A rule holds one or more conditions "
                                   f"combined with and (all hold) or or (any holds), and may name its output. {HELP}",
        extra={"widget": "conditions", "rows": Condition, "rules": Rule, "ports": RULE_PORTS})]
    fallback_output: Annotated[str, msgspec.Meta(
        title="Fallback output name", description="The label of the fallback port (empty: fallback).")] = ""

    def problems(self) -> dict[str, str]:
        found = {}
        if message := rule_problems(self.rules, "rules"):
            found["rules"] = message
        if len(self.fallback_output) > MAX_OUTPUT_NAME:
            found["fallback_output"] = f"At most {MAX_OUTPUT_NAME} characters."
        return found


def port_labels(config: Any) -> dict[str, str]:
    """Port id → the name shown for it, read leniently from a stored (maybe invalid) config."""
    if not isinstance(config, Mapping):
        return {}
    labels = {}
    rules = config.get("rules")
    for port, rule in zip(RULE_PORTS, rules if isinstance(rules, list) else [], strict=False):
        if isinstance(rule, Mapping) and isinstance(rule.get("output"), str) and rule["output"].strip():
            labels[port] = rule["output"].strip()
    if isinstance(config.get("fallback_output"), str) and config["fallback_output"].strip():
        labels[FALLBACK] = config["fallback_output"].strip()
    return labels


class SwitchV2(Switch):
    """Routes each item by up to four rules of conditions; a condition on a missing field does not
    match (except ``not_exists``); items matching no rule leave by ``fallback``. Within a rule the
    conditions stop as soon as the result is known (as in If v2)."""

    type_name = "switch"
    version = 2
    pure = True
    title = "Switch"
    category = "Logic"
    description = "Send items to one of several outputs by rules."
    help: ClassVar[str] = ("Sends each item to the output of the rule it matches (rule 0 → output 0, …), or to fallback "
                           "when it matches none. A rule is one or more conditions combined with and / or; name a "
                           "rule's output to label its port on the canvas.")
    Config = SwitchV2Config
    outputs = (*RULE_PORTS, FALLBACK)
    expression_fields = ("rules",)
    condition_operators: ClassVar[dict[str, tuple[str, ...]]] = OPERATORS
    port_labels = staticmethod(port_labels)

    async def _matches(self, ctx: NodeContext, rule: Rule, item: Item, where: str) -> bool:
        return await _rule_matches(ctx, rule, item, where)


async def _rule_matches(ctx: NodeContext, rule: Rule, item: Item, where: str) -> bool:
    deciding = rule.combine != "and"
    for i, c in enumerate(rule.conditions):
        if await matches(ctx, c, item, f"{where}.conditions[{i}]") == deciding:
            return deciding
    return not deciding
