"""If and Switch."""

from __future__ import annotations

from typing import Any

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, Skip, register, report_options
from webapp.workflows.n8n.conditions import V1_OPERATIONS, condition_row, filter_conditions, v1_conditions

MAX_SWITCH_RULES = 4
MAX_OUTPUT_NAME = 60


@register
class IfMapper(NodeMapper):
    """If v1 and v2: output 0 → true, 1 → false."""

    n8n_types = ("if",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        if ctx.type_version < 2:
            conditions = v1_conditions(ctx, p.get("conditions"), lambda row: row.get("value1"))
            combine = "or" if p.get("combineOperation") == "any" else "and"
        else:
            conditions, combine = filter_conditions(ctx, p.get("conditions"), "conditions")
            p.get("looseTypeValidation")
            report_options(ctx, p.get("options"), ignore={"looseTypeValidation"})
        if not conditions:
            raise Skip("none of its conditions could be mapped (see above)")
        return Mapped("if", {"combine": combine, "conditions": conditions}, version=2,
                      outputs={0: ["true"], 1: ["false"]})


@register
class SwitchMapper(NodeMapper):
    """Switch v1–v3 in rules mode → our Switch version 2: rule outputs → ports 0–3 (named as in n8n), the fallback."""

    n8n_types = ("switch",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        mode = p.get("mode", "rules")
        if mode != "rules":
            p.read.update(p.raw)
            raise Skip(f"Switch in mode {mode!r} (output index from an expression) is not supported")
        return _switch_v3(ctx) if ctx.type_version >= 3 else _switch_v1(ctx)


def _switch_v3(ctx: Context) -> Mapped:
    """Every condition of every rule, with its combinator and output name (``renameOutput`` + ``outputKey``)."""
    options = ctx.params.get("options") or {}
    values = (ctx.params.get("rules") or {}).get("values") or []
    rules, outputs, names = [], {}, {}
    for i, rule in enumerate(values):
        rule = rule if isinstance(rule, dict) else {}
        conditions, combine = filter_conditions(ctx, rule.get("conditions"), f"rules[{i}]")
        names[i] = _output_name(rule.get("outputKey")) if rule.get("renameOutput") else ""
        if not conditions or len(rules) == MAX_SWITCH_RULES:
            if conditions:
                ctx.unmapped(f"rule {i}: Switch has at most {MAX_SWITCH_RULES} rules: dropped with its output",
                             f"rules[{i}]")
            continue
        outputs[i] = [str(len(rules))]
        rules.append({"conditions": conditions, "combine": combine, "output": names[i]})
    fallback, fallback_name = options.get("fallbackOutput", "none"), ""
    if fallback == "extra":
        outputs[len(values)] = ["fallback"]
        fallback_name = _output_name(options.get("renameFallbackOutput"))
    elif isinstance(fallback, int) and not isinstance(fallback, bool) and fallback >= 0:
        outputs.setdefault(fallback, []).append("fallback")
        fallback_name = names.get(fallback, "")  # n8n sends the unmatched items by that rule's (named) output
    for key in options:
        if key not in ("fallbackOutput", "allMatchingOutputs", "renameFallbackOutput"):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")
    return _switch(ctx, rules, outputs, bool(options.get("allMatchingOutputs")), fallback_name)


def _output_name(value: Any) -> str:
    return value.strip()[:MAX_OUTPUT_NAME] if isinstance(value, str) else ""


def _switch_v1(ctx: Context) -> Mapped:
    """n8n Switch v1 / v2: one comparison per rule against ``value1``. v1 rules name their n8n output
    (``output``); v2 rules each have their own output, optionally named (``outputKey``)."""
    p = ctx.params
    kind, left = str(p.get("dataType", "number")), p.get("value1")
    rules, outputs = [], {}
    for i, rule in enumerate((p.get("rules") or {}).get("rules") or []):
        op_name = str(rule.get("operation", "equal"))
        operator = V1_OPERATIONS.get(kind, {}).get(op_name)
        condition = condition_row(ctx, f"rules[{i}]", left, kind, operator, rule.get("value2"), op_name)
        if condition is None or len(rules) == MAX_SWITCH_RULES:
            if condition is not None:
                ctx.unmapped(f"rule {i}: Switch has at most {MAX_SWITCH_RULES} rules: dropped", f"rules[{i}]")
            continue
        output = int(rule.get("output", 0)) if ctx.type_version < 2 else i
        outputs.setdefault(output, []).append(str(len(rules)))
        rules.append({"conditions": [condition], "combine": "and", "output": _output_name(rule.get("outputKey"))})
    fallback = p.get("fallbackOutput", -1)
    if fallback == "extra":
        outputs.setdefault(len((p.get("rules") or {}).get("rules") or []), []).append("fallback")
    elif isinstance(fallback, int) and fallback >= 0:
        outputs.setdefault(fallback, []).append("fallback")
    return _switch(ctx, rules, outputs, False, "")


def _switch(ctx: Context, rules: list[dict[str, Any]], outputs: dict[int, list[str]], all_matches: bool,
            fallback_name: str) -> Mapped:
    if not rules:
        raise Skip("none of its rules could be mapped (see above)")
    config = {"mode": "all_matches" if all_matches else "first_match", "rules": rules}
    if fallback_name:
        config["fallback_output"] = fallback_name
    return Mapped("switch", config, version=2, outputs=outputs)
