"""Tiny automatic trigger node types for the engine and web tests of activation and trigger-node runs
(the real Webhook, Schedule and poll nodes are separate node types with their own tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from engine.contract import (
    Item,
    NodeContext,
    NodeResult,
    NodeType,
    PollContext,
    PollResult,
    PollTriggerType,
    ScheduleTriggerType,
)
from engine.registry import Registry
from nodes import NODE_TYPES


class HookTrigger(NodeType):
    """A webhook-kind trigger: emits the items it is started with."""

    type_name = "test_hook"
    title = "Test hook"
    category = "Triggers"
    is_trigger = True
    trigger_kind = "webhook"
    inputs = ()
    pure = True

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)


class EveryConfig(msgspec.Struct, forbid_unknown_fields=True):
    minutes: int = 1
    missed: str = "skip"

    def problems(self) -> dict[str, str]:
        return {"minutes": "must be at least 1"} if self.minutes < 1 else {}


class EveryMinutes(ScheduleTriggerType):
    """Fires at every whole multiple of ``minutes`` minutes (UTC)."""

    type_name = "test_every"
    title = "Test every N minutes"
    Config = EveryConfig

    def next_slot(self, config: EveryConfig, after: datetime) -> datetime | None:
        step = timedelta(minutes=config.minutes)
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        return epoch + ((after - epoch) // step + 1) * step

    def missed_policy(self, config: EveryConfig) -> str:
        return config.missed


class PollConfig(msgspec.Struct, forbid_unknown_fields=True):
    interval_minutes: int = 1


class CountPoll(PollTriggerType):
    """A poll trigger whose ``poll`` is not used by these tests (the scheduler's tests poll)."""

    type_name = "test_poll"
    title = "Test poll"
    Config = PollConfig

    def interval(self, config: PollConfig) -> float:
        return config.interval_minutes * 60.0

    async def poll(self, ctx: PollContext, config: PollConfig, state: dict[str, Any] | None) -> PollResult:
        return PollResult([], state or {})


TEST_TRIGGER_TYPES = (HookTrigger, EveryMinutes, CountPoll)
registry = Registry([*NODE_TYPES, *TEST_TRIGGER_TYPES])


if __name__ == "__main__":  # ``python -m tests.engine.trigger_types serve …``: the CLI with the test triggers registered
    import sys

    from nodes import registry as app_registry
    from webapp.cli import main

    for node_type in TEST_TRIGGER_TYPES:
        app_registry.register(node_type)
    sys.exit(main(sys.argv[1:]))
