from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType


class DelayConfig(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600, title="Seconds", description="How long to wait (0–3600).")] = 1.0


class Delay(NodeType):
    """Waits, then passes its items on unchanged."""

    type_name = "delay"
    version = 1
    pure = True
    title = "Delay"
    category = "Logic"
    description = "Wait a number of seconds."
    Config = DelayConfig

    async def run(self, ctx: NodeContext, config: DelayConfig, items: list[Item]) -> NodeResult:
        await asyncio.sleep(config.seconds)
        return NodeResult.main(items)

    def time_limit(self, config: DelayConfig, items: list[Item]) -> float:
        return config.seconds + 30
