from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from nodes.conditions import MISSING, field_value, log_routes

Operator = Literal["equals", "not_equals", "greater_than", "less_than", "contains", "exists"]


class IfConfig(msgspec.Struct, forbid_unknown_fields=True):
    field: Annotated[str, msgspec.Meta(title="Field", description="Dotted path in the item, e.g. status or body.ok.")]
    operator: Annotated[Operator, msgspec.Meta(title="Operator")] = "equals"
    value: Annotated[str, msgspec.Meta(title="Value", description="Compared as a number when both sides are numbers.")] = ""


def lookup(item: Item, path: str) -> Any:
    """The value at a dotted path; ``KeyError`` when it is not there."""
    value = field_value(item, path)
    if value is MISSING:
        raise KeyError(path)
    return value


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compare(left: Any, operator: str, right: str) -> bool:
    ln, rn = _as_number(left), _as_number(right)
    if operator in ("greater_than", "less_than"):
        if ln is None or rn is None:
            raise NodeError(f"Cannot compare {left!r} with {right!r} as numbers")
        return ln > rn if operator == "greater_than" else ln < rn
    if operator == "contains":
        return right in left if isinstance(left, (str, list)) else False
    same = (ln == rn) if (ln is not None and rn is not None) else (_text(left) == right)
    return same if operator == "equals" else not same


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class If(NodeType):
    """Routes each item to ``true`` or ``false`` by comparing one field with a value."""

    type_name = "if"
    version = 1
    pure = True
    title = "If"
    category = "Logic"
    description = "Send items down the true or false branch."
    Config = IfConfig
    outputs = ("true", "false")

    async def run(self, ctx: NodeContext, config: IfConfig, items: list[Item]) -> NodeResult:
        routes: dict[str, list[Item]] = {}
        for item in items:
            routes.setdefault("true" if self._test(config, item) else "false", []).append(item)
        log_routes(ctx, routes, len(items))
        return NodeResult(routes)

    def _test(self, config: IfConfig, item: Item) -> bool:
        try:
            left = lookup(item, config.field)
        except KeyError:
            return config.operator == "not_equals"
        return True if config.operator == "exists" else compare(left, config.operator, config.value)
