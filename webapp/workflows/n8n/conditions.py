"""n8n conditions (If v1 and filter-style v2, Switch rules) → our condition rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webapp.workflows.n8n.base import Context

V1_OPERATIONS = {
    "string": {"equal": "equals", "notEqual": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "isEmpty": "is_empty",
               "isNotEmpty": "is_not_empty"},
    "number": {"equal": "equals", "notEqual": "not_equals", "larger": "gt", "largerEqual": "gte", "smaller": "lt",
               "smallerEqual": "lte"},
    "dateTime": {"after": "after", "before": "before"},
    "boolean": {"equal": "equals", "notEqual": "not_equals"},
}
_V1_TYPES = {"string": "string", "number": "number", "dateTime": "date", "boolean": "boolean"}
_FILTER_OPERATIONS = {
    "string": {"equals": "equals", "notEquals": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "empty": "is_empty",
               "notEmpty": "is_not_empty"},
    "number": {"equals": "equals", "notEquals": "not_equals", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"},
    "dateTime": {"equals": "equals", "after": "after", "before": "before"},
    "boolean": {"true": "is_true", "false": "is_false", "equals": "equals", "notEquals": "not_equals"},
}
_ANY_TYPE = {"exists": "exists", "notExists": "not_exists"}
_NO_VALUE = {"is_empty", "is_not_empty", "is_true", "is_false", "exists", "not_exists"}


def condition_row(ctx: Context, where: str, left: Any, kind: str, operator: str | None, right: Any) -> dict[str, Any] | None:
    """One of our conditions, or None (reported) when it cannot be expressed."""
    path = ctx.tr.field_path(left)
    if path is None:
        ctx.unmapped(f"condition left side {left!r} is not a simple field ($json.x): condition dropped", where)
        return None
    if operator is None:
        ctx.unmapped(f"{kind} operation is not supported: condition dropped", where)
        return None
    if kind == "boolean" and operator in ("equals", "not_equals"):
        truth = right if isinstance(right, bool) else str(right).strip().lower() == "true"
        operator = "is_true" if truth == (operator == "equals") else "is_false"
    condition: dict[str, Any] = {"field": path, "type": _V1_TYPES.get(kind, "string"), "operator": operator}
    if operator not in _NO_VALUE:
        value = ctx.tr.value(right, f"{where}.value")
        if isinstance(value, str) and value.startswith("{% raw %}"):
            ctx.unmapped("right side is an expression we cannot translate: condition dropped", where)
            return None
        condition["value"] = str(value) if kind == "string" and not isinstance(value, str) else value
    return condition


def v1_conditions(ctx: Context, raw: Any, left_of: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    out = []
    for kind, rows in (raw or {}).items():
        for i, row in enumerate(rows or []):
            op_name = str(row.get("operation", "equal"))
            operator = V1_OPERATIONS.get(kind, {}).get(op_name)
            where = f"conditions.{kind}[{i}] ({op_name})"
            if (c := condition_row(ctx, where, left_of(row), kind, operator, row.get("value2"))) is not None:
                out.append(c)
    return out


def filter_conditions(ctx: Context, raw: Any, where: str) -> tuple[list[dict[str, Any]], str]:
    """The v2 "filter" shape: ``{options, conditions: [{leftValue, rightValue, operator: {type, operation}}], combinator}``."""
    raw = raw or {}
    if (raw.get("options") or {}).get("caseSensitive") is False:
        ctx.unmapped("case-insensitive comparison is not supported: compared case-sensitively", f"{where}.options")
    out = []
    for i, row in enumerate(raw.get("conditions") or []):
        op = row.get("operator") or {}
        kind, op_name = str(op.get("type", "string")), str(op.get("operation", "equals"))
        operator = _ANY_TYPE.get(op_name) or _FILTER_OPERATIONS.get(kind, {}).get(op_name)
        label = f"{where}[{i}] ({kind} {op_name})"
        if (c := condition_row(ctx, label, row.get("leftValue"), kind, operator, row.get("rightValue"))) is not None:
            out.append(c)
    return out, "or" if raw.get("combinator") == "or" else "and"


