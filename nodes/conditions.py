"""Conditions shared by If (version 2) and Switch: one struct, one save-time check, one evaluator.

A condition is ``{field, type, operator, value}``. ``field`` is a dotted path into the item
(``body.items.0.id``); ``type`` says how both sides are read (string, number, boolean, date);
``value`` is the right-hand side and may be a ``{{ }}`` expression, rendered per item.

Rules, in order:

* The field is missing or ``null``: ``exists`` is false, ``not_exists`` true, and every other
  operator simply does not match (never an error).
* ``exists`` / ``not_exists`` ignore ``type``.
* A present value that cannot be read as the condition's type ("abc" as a number) is a
  ``NodeError`` naming the condition, the field and the value — not a silent false.
* Loose reading: numbers accept numeric strings; booleans accept ``true``/``false`` strings
  and 0/1; dates are ISO 8601 strings compared as instants (no timezone means UTC); strings
  accept numbers and booleans (``true``/``false``). ``is_empty`` is true for ``""``, ``[]`` and ``{}``.
"""

from __future__ import annotations

import math
import operator as op
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import msgspec
import regex

from engine.contract import Item, NodeContext
from engine.errors import NodeError
from engine.expressions import check_syntax, is_expression

OPERATORS: dict[str, tuple[str, ...]] = {
    "string": ("equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with", "matches",
               "not_matches", "is_empty", "is_not_empty"),
    "number": ("equals", "not_equals", "gt", "gte", "lt", "lte"),
    "boolean": ("is_true", "is_false"),
    "date": ("before", "after", "equals"),
    "list": ("contains", "not_contains", "length_equals", "length_gt", "length_lt", "is_empty", "is_not_empty"),
}
EXISTENCE = ("exists", "not_exists")
"""Operators valid for every type; they only ask whether the field is there (and not null)."""
NO_VALUE = frozenset({"is_empty", "is_not_empty", "is_true", "is_false", *EXISTENCE})
MAX_PATTERN_CHARS = 500
MAX_CONDITIONS = 50
_NOUN = {"string": "a string", "number": "a number", "boolean": "a boolean (true or false)",
         "date": "an ISO 8601 date-time", "list": "a list"}
MISSING = object()
"""What `field_value` returns for a path that is not in the item."""


class Condition(msgspec.Struct, forbid_unknown_fields=True):
    """One test of one item field. Checked as a whole by ``condition_problems`` (clear messages)."""

    field: Annotated[str, msgspec.Meta(title="Field", description="Dotted path into the item, e.g. body.status.")] = ""
    operator: Annotated[str, msgspec.Meta(title="Operator", description="One of OPERATORS[type], or exists / not_exists.")] = ""
    value: Annotated[Any, msgspec.Meta(title="Value", description="Right-hand side; may be a {{ }} expression.")] = None
    type: Annotated[str, msgspec.Meta(title="Type", description="string, number, boolean, date or list.")] = "string"

    OPERATORS: ClassVar[dict[str, tuple[str, ...]]]
    EXISTENCE: ClassVar[tuple[str, ...]]
    NO_VALUE: ClassVar[frozenset[str]]
    LABELS: ClassVar[dict[str, str]]

    @staticmethod
    def from_form(row: dict[str, str]) -> dict[str, Any]:
        """A builder row (all text) in the stored shape: no value for an operator that takes none,
        a number where the operator compares numbers (text that is not one stays, to be reported)."""
        operator = row.get("operator", "").strip()
        kind = row.get("type", "").strip() or "string"
        stored: dict[str, Any] = {"field": row.get("field", "").strip(), "type": kind, "operator": operator}
        if operator not in NO_VALUE:
            stored["value"] = _typed_text(row.get("value", ""), kind, operator)
        return stored


HELP = ('Each condition tests one field of the item: a dotted path (body.status), a type (string, number, '
        'boolean, date as ISO 8601, list), an operator and a value, which may use {{ }} expressions; '
        'is_empty, is_not_empty, is_true, is_false, exists and not_exists take no value.')
OPERATOR_LABELS = {
    "equals": "is equal to", "not_equals": "is not equal to", "contains": "contains",
    "not_contains": "does not contain", "starts_with": "starts with", "ends_with": "ends with",
    "matches": "matches regex", "not_matches": "does not match regex", "is_empty": "is empty",
    "is_not_empty": "is not empty", "gt": "is greater than", "gte": "is greater than or equal to",
    "lt": "is less than", "lte": "is less than or equal to", "is_true": "is true", "is_false": "is false",
    "before": "is before", "after": "is after", "length_equals": "length is", "length_gt": "length is greater than",
    "length_lt": "length is less than", "exists": "exists", "not_exists": "does not exist",
}
"""What the condition builder shows for each operator (the stored name stays the key)."""
Condition.OPERATORS, Condition.EXISTENCE, Condition.NO_VALUE, Condition.LABELS = (
    OPERATORS, EXISTENCE, NO_VALUE, OPERATOR_LABELS)  # what the condition builder's template reads
_PATTERN_OPERATORS = ("matches", "not_matches")
_LENGTH_OPERATORS = {"length_equals": "equals", "length_gt": "gt", "length_lt": "lt"}


# ---------------------------------------------------------------------------------------------
# Reading values as a type. Each raises ValueError with a short reason.


def _typed_text(text: str, kind: str, operator: str) -> Any:
    if not text.strip() and kind != "string":
        return None  # reported as "required for operator …"
    if is_expression(text) or not (kind == "number" or operator in _LENGTH_OPERATORS):
        return text
    try:
        return to_number(text)
    except ValueError:
        return text


def log_routes(ctx: NodeContext, routes: dict[str, list[Item]], total: int) -> None:
    """Say in the node's log where its items went (the run page shows it with the node run)."""
    taken = ", ".join(f"{len(items)} → {port}" for port, items in routes.items()) or "none"
    ctx.logger.info("%d item%s routed: %s", total, "" if total == 1 else "s", taken)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError(f"{_show(value)} is not {_NOUN['string']}")


def to_number(value: Any) -> int | float:
    number: int | float
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_show(value)} is not {_NOUN['number']}")
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"{_show(value)} is not {_NOUN['number']}") from None
    else:
        number = value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{_show(value)} is not a finite number")
    return number


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    raise ValueError(f"{_show(value)} is not {_NOUN['boolean']}")


def to_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"{_show(value)} is not {_NOUN['list']}")


def _element_text(value: Any) -> Any:
    """A list element as the builder's text value compares to it ("2" finds 2, "true" finds True)."""
    try:
        return to_text(value)
    except ValueError:
        return value


def list_contains(left: list[Any], right: Any) -> bool:
    return any(element == right or _element_text(element) == right for element in left)


def parse_instant(value: Any, *, assume_utc: bool = True) -> datetime:
    """An ISO 8601 date-time (or a ``datetime``) as an aware instant; without a timezone it is UTC,
    or a ``ValueError`` when ``assume_utc`` is false."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{_show(value)} is not {_NOUN['date']}") from None
    else:
        raise ValueError(f"{_show(value)} is not {_NOUN['date']}")
    if when.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"{_show(value)} has no timezone (add Z or an offset such as +02:00)")
        when = when.replace(tzinfo=UTC)
    return when


REGEX_TIMEOUT = 0.25
"""Seconds one ``matches`` may take on one value: a pattern that backtracks catastrophically
(``(a|aa)+$``) fails the node instead of pinning a worker core (the ``regex`` package checks the
time while it matches; Python's ``re`` cannot be interrupted)."""


def compile_pattern(pattern: Any) -> regex.Pattern[str]:
    if not isinstance(pattern, str):
        raise ValueError(f"{_show(pattern)} is not a regular expression (a string)")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the regular expression is longer than {MAX_PATTERN_CHARS} characters")
    try:
        return regex.compile(pattern, regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def _search(left: str, pattern: regex.Pattern[str]) -> bool:
    try:
        return pattern.search(left, timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        raise NodeError(f"the regular expression {_show(pattern.pattern)} took longer than {REGEX_TIMEOUT:g} s on "
                        f"{_show(left)} (catastrophic backtracking?); simplify it", kind="other") from None


_READ: dict[str, Callable[[Any], Any]] = {"string": to_text, "number": to_number, "boolean": to_bool,
                                          "date": parse_instant, "list": to_list}


def _read_value(condition: Condition, value: Any) -> Any:
    """The right-hand side, read as the condition's type (a compiled pattern for ``matches``, a
    count for a list's length, any value for what a list contains)."""
    if condition.operator in _PATTERN_OPERATORS:
        return compile_pattern(value)
    if condition.operator in _LENGTH_OPERATORS:
        count = to_number(value)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{_show(value)} is not a length (a whole number, 0 or more)")
        return count
    if condition.type == "list":
        return value
    return _READ[condition.type](value)


# ---------------------------------------------------------------------------------------------
# Save-time checks.


def condition_problems(conditions: list[Condition], name: str) -> list[str]:
    """Every problem of every condition, as ``name[i].part: message``."""
    found = []
    for index, condition in enumerate(conditions):
        found += [f"{name}[{index}].{part}: {message}" for part, message in _problems_of(condition)]
    return found


def _problems_of(c: Condition) -> list[tuple[str, str]]:
    if not c.field.strip():
        return [("field", "required: a dotted path into the item, e.g. body.status")]
    if c.operator in EXISTENCE:
        return []
    if c.type not in OPERATORS:
        return [("type", f"{c.type!r} is not a type (use one of: {', '.join(OPERATORS)})")]
    if not c.operator:
        return [("operator", f"required (for type {c.type}: {', '.join(OPERATORS[c.type] + EXISTENCE)})")]
    if c.operator not in OPERATORS[c.type]:
        return [("operator", f"{c.operator!r} is not an operator for type {c.type} "
                             f"(use one of: {', '.join(OPERATORS[c.type] + EXISTENCE)})")]
    if message := _value_problem(c):
        return [("value", message)]
    return []


def _value_problem(c: Condition) -> str | None:
    if c.operator in NO_VALUE:
        return None
    if c.value is None:
        return f"required for operator {c.operator}"
    if is_expression(c.value):
        return check_syntax(c.value)
    try:
        _read_value(c, c.value)
    except ValueError as exc:
        return str(exc)
    return None


def list_problems(conditions: list[Condition], name: str, *, at_most: int, noun: str = "condition") -> str | None:
    """The problem of a whole list (empty, too long, bad conditions), as one message for the form."""
    if not conditions:
        return f"Add at least one {noun}."
    if len(conditions) > at_most:
        return f"At most {at_most} {noun}s, got {len(conditions)}."
    found = condition_problems(conditions, name)
    return "; ".join(found) if found else None


# ---------------------------------------------------------------------------------------------
# Evaluation.


def field_value(item: Item, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``), or ``MISSING``."""
    current: Any = item
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def is_missing(value: Any) -> bool:
    return value is MISSING or value is None


def _is_empty(value: Any) -> bool:
    return isinstance(value, (str, list, dict)) and len(value) == 0


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equals": op.eq, "not_equals": op.ne, "gt": op.gt, "gte": op.ge, "lt": op.lt, "lte": op.le,
    "before": op.lt, "after": op.gt,
}
_TEXT: dict[str, Callable[[str, Any], bool]] = {
    "contains": lambda left, right: right in left,
    "not_contains": lambda left, right: right not in left,
    "starts_with": lambda left, right: left.startswith(right),
    "ends_with": lambda left, right: left.endswith(right),
    "matches": _search,
    "not_matches": lambda left, right: not _search(left, right),
}
_LIST: dict[str, Callable[[list[Any], Any], bool]] = {
    "contains": list_contains,
    "not_contains": lambda left, right: not list_contains(left, right),
    **{name: (lambda compare: lambda left, right: _COMPARE[compare](len(left), right))(compare)
       for name, compare in _LENGTH_OPERATORS.items()},
}


async def matches(ctx: NodeContext, condition: Condition, item: Item, where: str) -> bool:
    """Whether ``item`` satisfies ``condition``; ``where`` (``conditions[2]``) names it in errors."""
    c = condition
    left = field_value(item, c.field)
    if is_missing(left):
        return c.operator == "not_exists"
    if c.operator in EXISTENCE:
        return c.operator == "exists"
    if c.operator in ("is_empty", "is_not_empty"):
        return _is_empty(left) == (c.operator == "is_empty")
    try:
        left = _READ[c.type](left)
    except ValueError:
        raise NodeError(f"{where}: field '{c.field}' is {_show(left)}, which cannot be read as {_NOUN[c.type]}",
                        data={"condition": where, "field": c.field, "value": _show(left)}) from None
    if c.type == "boolean":
        return left is (c.operator == "is_true")
    right = await _right_side(ctx, c, item, where)
    if c.type == "list":
        return _LIST[c.operator](left, right)
    if c.operator in _TEXT:
        return _TEXT[c.operator](left, right)
    return _COMPARE[c.operator](left, right)


async def _right_side(ctx: NodeContext, c: Condition, item: Item, where: str) -> Any:
    value = c.value
    if is_expression(value):
        value = await ctx.expressions.render(value, item=item, field=f"{where}.value")
    try:
        return _read_value(c, value)
    except ValueError as exc:
        raise NodeError(f"{where}.value: {exc}", data={"condition": where, "value": _show(value)}) from None
