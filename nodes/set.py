from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from engine.config import KeyValue
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.expressions import check_syntax
from nodes.set_types import FieldType, convert


class SetConfig(msgspec.Struct, forbid_unknown_fields=True):
    fields: Annotated[list[KeyValue], msgspec.Meta(
        title="Fields", description="Name and value; values may use {{ item.field }} expressions.")] = []
    keep_existing: Annotated[bool, msgspec.Meta(
        title="Keep incoming fields", description="Start from the incoming item instead of an empty one.")] = True
    types: Annotated[dict[str, FieldType], msgspec.Meta(
        title="Field types", description='Optional: a field\'s value converted to a type, e.g. {"count": "number"} '
        "(string, number, boolean, array, object; text such as \"42\", \"true\" or JSON is converted). "
        "Fields not listed keep the value as rendered.")] = {}

    def problems(self) -> dict[str, str]:
        for row in self.fields:
            if not row.name:
                return {"fields": "Every field needs a name."}
            if error := check_syntax(row.value):
                return {"fields": f"{row.name}: {error}"}
        names = {row.name for row in self.fields}
        if stray := [name for name in self.types if name not in names]:
            return {"types": f"{', '.join(repr(n) for n in stray)}: not one of the fields above."}
        return {}


class Set(NodeType):
    """Sets fields on every item, from literal values or expressions over the item."""

    type_name = "set"
    version = 1
    pure = True
    title = "Set"
    category = "Data"
    description = "Add or change fields on each item."
    help: ClassVar[str] = ("Adds or changes fields on every item: one row per field, with a literal value or a "
                           "{{ }} expression over the incoming item, optionally converted to a type.")
    Config = SetConfig

    async def run(self, ctx: NodeContext, config: SetConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main([await self._apply(ctx, config, item) for item in items])

    async def _apply(self, ctx: NodeContext, config: SetConfig, item: Item) -> Item:
        out: dict[str, Any] = dict(item) if config.keep_existing else {}
        for row in config.fields:
            value = await ctx.expressions.render(row.value, item=item, field=f"fields.{row.name}")
            out[row.name] = _typed(row.name, value, config.types.get(row.name))
        return out


def _typed(name: str, value: Any, field_type: str | None) -> Any:
    if field_type is None:
        return value
    try:
        return convert(value, field_type)
    except ValueError as exc:
        raise NodeError(f"field '{name}' should be {field_type}: {exc}",
                        data={"field": name, "type": field_type}) from None
