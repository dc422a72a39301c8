from __future__ import annotations

from typing import Annotated, Any

import msgspec

from engine.config import KeyValue
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.expressions import check_syntax


class SetConfig(msgspec.Struct, forbid_unknown_fields=True):
    fields: Annotated[list[KeyValue], msgspec.Meta(
        title="Fields", description="Name and value; values may use {{ item.field }} expressions.")] = []
    keep_existing: Annotated[bool, msgspec.Meta(
        title="Keep incoming fields", description="Start from the incoming item instead of an empty one.")] = True

    def problems(self) -> dict[str, str]:
        for row in self.fields:
            if not row.name:
                return {"fields": "Every field needs a name."}
            if error := check_syntax(row.value):
                return {"fields": f"{row.name}: {error}"}
        return {}


class Set(NodeType):
    """Sets fields on every item, from literal values or expressions over the item."""

    type_name = "set"
    version = 1
    pure = True
    title = "Set"
    category = "Data"
    description = "Add or change fields on each item."
    Config = SetConfig

    async def run(self, ctx: NodeContext, config: SetConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main([await self._apply(ctx, config, item) for item in items])

    async def _apply(self, ctx: NodeContext, config: SetConfig, item: Item) -> Item:
        out: dict[str, Any] = dict(item) if config.keep_existing else {}
        for row in config.fields:
            out[row.name] = await ctx.expressions.render(row.value, item=item, field=f"fields.{row.name}")
        return out
