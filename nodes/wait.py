"""Wait: pause for a duration or until a date-time, then pass the items on unchanged.

For now the wait happens in-process (``asyncio.sleep``) inside the node's run, so a waiting
execution holds its worker slot and does not survive a worker restart (resume re-runs the
Wait from the start). A later engine change will turn long waits into scheduled continuations
(persist "resume at T", free the worker, re-enqueue at T); until then waits are capped at
``MAX_WAIT`` seconds, and ``time_limit`` makes sure the engine's node timeout never cuts a wait.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.expressions import check_syntax, is_expression
from nodes.conditions import parse_instant

MAX_WAIT = 86_400.0
"""Longest in-process wait (one day), until waits become scheduled continuations."""
MARGIN = 30.0
"""Time a Wait may take beyond its wait before the engine's node timeout applies."""


class WaitConfig(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[Literal["duration", "until"], msgspec.Meta(
        title="Wait for", description="duration: a number of seconds; until: a date-time.")] = "duration"
    seconds: Annotated[float, msgspec.Meta(
        ge=0, le=MAX_WAIT, title="Seconds", description="duration: how long to wait (0–86400).")] = 1.0
    until: Annotated[str, msgspec.Meta(
        title="Until", description="until: an ISO 8601 date-time with timezone, e.g. 2030-01-31T09:00:00+01:00 "
                                   "or 2030-01-31T08:00:00Z, or an expression such as {{ item.send_at }} (evaluated "
                                   "on the first item). A time in the past passes at once; at most one day ahead.")] = ""

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
    """Waits for a duration or until a date-time (in-process for now), then passes its items on."""

    type_name = "wait"
    version = 1
    title = "Wait"
    category = "Logic"
    description = "Pause for a while or until a date-time."
    Config = WaitConfig
    expression_fields = ("until",)

    async def run(self, ctx: NodeContext, config: WaitConfig, items: list[Item]) -> NodeResult:
        delay = config.seconds if config.mode == "duration" else self._until(ctx, config, items)
        if delay > 0:
            await asyncio.sleep(delay)
        return NodeResult.main(items)

    def _until(self, ctx: NodeContext, config: WaitConfig, items: list[Item]) -> float:
        value = ctx.expressions.render(config.until, item=items[0] if items else {}, field="until")
        try:
            when = parse_instant(value, assume_utc=False)
        except ValueError as exc:
            raise NodeError(f"until: {exc}", data={"until": str(value)[:200]}) from None
        delay = _seconds_until(when)
        if delay > MAX_WAIT:
            raise NodeError(f"until: {when.isoformat()} is {delay / 3600:.1f} h away; "
                            f"waits are limited to {MAX_WAIT / 3600:g} h for now")
        return max(0.0, delay)

    def time_limit(self, config: WaitConfig, items: list[Item]) -> float:
        """The wait plus a margin, so the engine's node timeout never cuts the wait short."""
        if config.mode == "duration":
            return config.seconds + MARGIN
        if is_expression(config.until):
            return MAX_WAIT + MARGIN  # known only at run time; the run refuses longer waits itself
        remaining = _seconds_until(parse_instant(config.until, assume_utc=False))
        return min(max(0.0, remaining), MAX_WAIT) + MARGIN
