"""n8n conditions (If v1 and filter-style v2, Switch rules) → our condition rows.

Every condition is mapped; one that cannot be expressed is dropped with a reason naming the n8n
operation and what Patchwire offers instead. Some n8n operations have no operator of their own here
but an exact rewrite: ``notStartsWith "ab"`` is ``not_matches "^ab"``, an array's ``lengthGte 3`` is
``length_gt 2``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nodes.conditions import EXISTENCE, NO_VALUE, OPERATORS
from webapp.workflows.n8n.base import Context

V1_OPERATIONS = {
    "string": {"equal": "equals", "notEqual": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "notRegex": "not_matches",
               "isEmpty": "is_empty", "isNotEmpty": "is_not_empty", "notStartsWith": "not_starts_with",
               "notEndsWith": "not_ends_with"},
    "number": {"equal": "equals", "notEqual": "not_equals", "larger": "gt", "largerEqual": "gte", "smaller": "lt",
               "smallerEqual": "lte"},
    "dateTime": {"after": "after", "before": "before"},
    "boolean": {"equal": "equals", "notEqual": "not_equals"},
}
_TYPES = {"string": "string", "number": "number", "dateTime": "date", "boolean": "boolean", "array": "list",
          "object": "list"}
_FILTER_OPERATIONS = {
    "string": {"equals": "equals", "notEquals": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "notRegex": "not_matches",
               "empty": "is_empty", "notEmpty": "is_not_empty", "notStartsWith": "not_starts_with",
               "notEndsWith": "not_ends_with"},
    "number": {"equals": "equals", "notEquals": "not_equals", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"},
    "dateTime": {"equals": "equals", "after": "after", "before": "before"},
    "boolean": {"true": "is_true", "false": "is_false", "equals": "equals", "notEquals": "not_equals"},
    "array": {"contains": "contains", "notContains": "not_contains", "lengthEquals": "length_equals",
              "lengthGt": "length_gt", "lengthLt": "length_lt", "lengthGte": "length_gte", "lengthLte": "length_lte",
              "empty": "is_empty", "notEmpty": "is_not_empty"},
    "object": {"empty": "is_empty", "notEmpty": "is_not_empty"},
}
_ANY_TYPE = {"exists": "exists", "notExists": "not_exists"}
_NO_EQUIVALENT = {
    ("dateTime", "afterOrEquals"): "use two conditions (after, or equals) with combinator or",
    ("dateTime", "beforeOrEquals"): "use two conditions (before, or equals) with combinator or",
    ("dateTime", "notEquals"): "a date condition has before, after and equals only",
    ("array", "lengthNotEquals"): "a list condition compares its length with equals, greater than or less than only",
    ("number", "empty"): "a number field is either there or not: use exists / does not exist",
    ("number", "notEmpty"): "a number field is either there or not: use exists / does not exist",
    ("number", "isEmpty"): "a number field is either there or not: use exists / does not exist",
    ("number", "isNotEmpty"): "a number field is either there or not: use exists / does not exist",
}


def _no_operator(kind: str, op_name: str) -> str:
    if reason := _NO_EQUIVALENT.get((kind, op_name)):
        return f"{kind} operation {op_name!r} has no Patchwire operator ({reason}): condition dropped"
    ours = _TYPES.get(kind)
    if ours is None:
        return f"n8n type {kind!r} has no Patchwire condition type (string, number, boolean, date, list): condition dropped"
    offered = ", ".join(OPERATORS[ours] + EXISTENCE)
    return f"{kind} operation {op_name!r} has no Patchwire operator (for {ours}: {offered}): condition dropped"


def _rewrite(operator: str, value: Any) -> tuple[str, Any] | str:
    """An operator we lack but can express exactly, rewritten; or the reason it cannot be."""
    if operator in ("not_starts_with", "not_ends_with"):
        if not isinstance(value, str) or "{{" in value:
            return f"{operator.replace('_', ' ')} needs a literal text to become a regular expression"
        pattern = re.escape(value)
        return "not_matches", (f"^{pattern}" if operator == "not_starts_with" else f"{pattern}$")
    if operator in ("length_gte", "length_lte"):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{operator.replace('_', ' ')} needs a whole number to become length greater / less than"
        return ("length_gt", value - 1) if operator == "length_gte" else ("length_lt", value + 1)
    return operator, value


def condition_row(ctx: Context, where: str, left: Any, kind: str, operator: str | None, right: Any,
                  op_name: str = "") -> dict[str, Any] | None:
    """One of our conditions, or None (reported) when it cannot be expressed."""
    path = ctx.tr.field_path(left)
    if path is None:
        ctx.unmapped(f"condition left side {left!r} is not a simple field ($json.x): condition dropped", where)
        return None
    if operator is None:
        ctx.unmapped(_no_operator(kind, op_name), where)
        return None
    if kind == "boolean" and operator in ("equals", "not_equals"):
        truth = right if isinstance(right, bool) else str(right).strip().lower() == "true"
        operator = "is_true" if truth == (operator == "equals") else "is_false"
    condition: dict[str, Any] = {"field": path, "type": _TYPES.get(kind, "string"), "operator": operator}
    if operator not in NO_VALUE:
        value = ctx.tr.value(right, f"{where}.value")
        if isinstance(value, str) and value.startswith("{% raw %}"):
            ctx.unmapped("right side is an expression we cannot translate: condition dropped", where)
            return None
        rewritten = _rewrite(operator, value)
        if isinstance(rewritten, str):
            ctx.unmapped(f"{kind} operation {op_name!r}: {rewritten}: condition dropped", where)
            return None
        condition["operator"], value = rewritten
        condition["value"] = str(value) if kind == "string" and not isinstance(value, str) else value
    return condition


def v1_conditions(ctx: Context, raw: Any, left_of: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """If v1: ``conditions.{string,number,boolean,dateTime}`` lists, every row mapped in that order."""
    out = []
    for kind, rows in (raw or {}).items():
        for i, row in enumerate(rows or []):
            op_name = str(row.get("operation", "equal"))
            operator = V1_OPERATIONS.get(kind, {}).get(op_name)
            where = f"conditions.{kind}[{i}] ({op_name})"
            if (c := condition_row(ctx, where, left_of(row), kind, operator, row.get("value2"), op_name)) is not None:
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
        c = condition_row(ctx, label, row.get("leftValue"), kind, operator, row.get("rightValue"), op_name)
        if c is not None:
            out.append(c)
    return out, "or" if raw.get("combinator") == "or" else "and"
