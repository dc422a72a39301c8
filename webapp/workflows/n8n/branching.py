"""If and Switch."""

from __future__ import annotations

from typing import Any

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, Skip, register, report_options
from webapp.workflows.n8n.conditions import V1_OPERATIONS, condition_row, filter_conditions, v1_conditions

MAX_SWITCH_RULES = 4


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
    """Switch v1–v3 in rules mode: rule outputs → ports 0–3, the fallback."""

    n8n_types = ("switch",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        mode = p.get("mode", "rules")
        if mode != "rules":
            p.read.update(p.raw)
            raise Skip(f"Switch in mode {mode!r} (output index from an expression) is not supported")
        return _switch_v3(ctx) if ctx.type_version >= 3 else _switch_v1(ctx)


def _switch_v3(ctx: Context) -> Mapped:
    options = ctx.params.get("options") or {}
    rules, outputs = [], {}
    for i, rule in enumerate((ctx.params.get("rules") or {}).get("values") or []):
        conditions, _ = filter_conditions(ctx, rule.get("conditions"), f"rules[{i}]")
        if len(conditions) > 1:
            ctx.unmapped(f"rule {i} has {len(conditions)} conditions; a Patchwire rule has one: only the first is kept",
                         f"rules[{i}]")
        if not conditions or len(rules) == MAX_SWITCH_RULES:
            if conditions:
                ctx.unmapped(f"rule {i}: Switch has at most {MAX_SWITCH_RULES} rules: dropped with its output",
                             f"rules[{i}]")
            continue
        outputs[i] = [str(len(rules))]
        rules.append(conditions[0])
    fallback = options.get("fallbackOutput", "none")
    values = (ctx.params.get("rules") or {}).get("values") or []
    if fallback == "extra":
        outputs[len(values)] = ["fallback"]
    elif isinstance(fallback, int):
        outputs.setdefault(fallback, []).append("fallback")
    _report_output_names(ctx, values, outputs, options.get("renameFallbackOutput") if fallback == "extra" else None)
    for key in options:
        if key not in ("fallbackOutput", "allMatchingOutputs", "renameFallbackOutput"):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")
    return _switch(ctx, rules, outputs, bool(options.get("allMatchingOutputs")))


def _report_output_names(ctx: Context, values: list[Any], outputs: dict[int, list[str]], fallback_name: Any) -> None:
    """n8n's output names (``renameOutput`` + ``outputKey``) have no place here: our ports carry no labels."""
    names = [(str(rule["outputKey"]), "/".join(outputs.get(i, [])) or "dropped") for i, rule in enumerate(values)
             if isinstance(rule, dict) and rule.get("renameOutput") and rule.get("outputKey")]
    if isinstance(fallback_name, str) and fallback_name:
        names.append((fallback_name, "fallback"))
    if names:
        shown = ", ".join(f"{name!r} → port {port}" for name, port in names)
        ctx.unmapped(f"output names are not kept: Patchwire's Switch ports have fixed names (0–3, fallback) and no "
                     f"labels; {shown}", "rules")


def _switch_v1(ctx: Context) -> Mapped:
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
        outputs.setdefault(int(rule.get("output", 0)), []).append(str(len(rules)))
        rules.append(condition)
    fallback = p.get("fallbackOutput", -1)
    if isinstance(fallback, int) and fallback >= 0:
        outputs.setdefault(fallback, []).append("fallback")
    return _switch(ctx, rules, outputs, False)


def _switch(ctx: Context, rules: list[dict[str, Any]], outputs: dict[int, list[str]], all_matches: bool) -> Mapped:
    if not rules:
        raise Skip("none of its rules could be mapped (see above)")
    return Mapped("switch", {"mode": "all_matches" if all_matches else "first_match", "rules": rules},
                  outputs=outputs)


