"""Wait: pause for a duration or until a date-time, then pass the items on unchanged.

The node only computes *when*: it returns its items with ``not_before``. The engine sleeps a
short wait in the job; a long one is persisted (node run ``waiting``, execution ``waiting``) and
a continuation job is scheduled for that time, so no worker slot is held and a restart loses
nothing. Waits are limited to ``MAX_WAIT`` (a year).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.expressions import check_syntax, is_expression
from nodes.conditions import parse_instant

MAX_WAIT = 366 * 86_400.0


class WaitConfig(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[Literal["duration", "until"], msgspec.Meta(
        title="Wait for", description="duration: a number of seconds; until: a date-time.")] = "duration"
    seconds: Annotated[float, msgspec.Meta(
        ge=0, le=MAX_WAIT, title="Seconds", description="duration: how long to wait (up to a year).")] = 1.0
    until: Annotated[str, msgspec.Meta(
        title="Until", description="until: an ISO 8601 date-time with timezone, e.g. 2030-01-31T09:00:00+01:00 "
                                   "or 2030-01-31T08:00:00Z, or an expression such as {{ item.send_at }} (evaluated "
                                   "on the first item). A time in the past passes at once; at most a year ahead.")] = ""

    def problems(self) -> dict[str, str]:
        if self.mode != "until":
            return {}
        if not self.until.strip():
            return {"until": "Enter a date-time with timezone (e.g. 2030-01-31T08:00:00Z) or an expression."}
        if is_expression(self.until):
            error = check_syntax(self.until)
            return {"until": error} if error else {}
        try:
            parse_instant(self.until, assume_utc=False)
        except ValueError as exc:
            return {"until": f"{str(exc)[:1].upper()}{str(exc)[1:]}."}
        return {}


def _seconds_until(when: datetime) -> float:
    return (when - datetime.now(UTC)).total_seconds()


class Wait(NodeType):
    """Waits for a duration or until a date-time, then passes its items on."""

    type_name = "wait"
    version = 1
    pure = True
    title = "Wait"
    category = "Logic"
    description = "Pause for a while or until a date-time."
    Config = WaitConfig
    expression_fields = ("until",)

    async def run(self, ctx: NodeContext, config: WaitConfig, items: list[Item]) -> NodeResult:
        delay = config.seconds if config.mode == "duration" else await self._until(ctx, config, items)
        ctx.logger.info("waiting %g s (until %s)", delay, datetime.fromtimestamp(time.time() + delay, UTC).isoformat(
            timespec="seconds"))
        return NodeResult({"main": items}, not_before=time.time() + delay if delay > 0 else None)

    async def _until(self, ctx: NodeContext, config: WaitConfig, items: list[Item]) -> float:
        value = await ctx.expressions.render(config.until, item=items[0] if items else {}, field="until")
        try:
            when = parse_instant(value, assume_utc=False)
        except ValueError as exc:
            raise NodeError(f"until: {exc}", data={"until": str(value)[:200]}) from None
        delay = _seconds_until(when)
        if delay > MAX_WAIT:
            raise NodeError(f"until: {when.isoformat()} is more than a year away")
        return max(0.0, delay)

