"""Schedule Trigger: starts the workflow at computed times (an active workflow's scheduler fires each slot once).

Modes: an interval (every N seconds ≥ 10, minutes or hours), times of day on chosen weekdays, a cron
expression (croniter), or one date-time; each in an IANA time zone. The calendar rules, DST included,
are in ``nodes/schedules.py`` and docs/triggers.md ("Schedules").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, ScheduleTriggerType
from nodes import schedules

MIN_INTERVAL = 10.0
MAX_INTERVAL = 366 * 86_400
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}


class ScheduleTriggerConfig(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[Literal["interval", "times", "cron", "once"], msgspec.Meta(
        title="Run", description="interval: every N units; times: at times of day on chosen days; cron: a cron "
                                 "expression; once: at one date-time.")] = "interval"
    every: Annotated[int, msgspec.Meta(ge=1, le=1_000_000, title="Every",
                                       description="interval: how many units between runs (at least 10 s).")] = 15
    unit: Annotated[Literal["seconds", "minutes", "hours"], msgspec.Meta(title="Unit")] = "minutes"
    times: Annotated[str, msgspec.Meta(title="Times of day",
                                       description="times: HH:MM, 24 hours, comma-separated, e.g. 09:00, 17:30.")] = "09:00"
    days: Annotated[str, msgspec.Meta(title="Days", description="times: e.g. mon-fri or mon, wed, fri; "
                                                                "empty: every day.")] = ""
    cron: Annotated[str, msgspec.Meta(title="Cron expression",
                                      description="cron: minute hour day-of-month month day-of-week, e.g. "
                                                  "*/15 * * * * or 30 2 * * mon-fri.")] = ""
    at: Annotated[str, msgspec.Meta(title="Date-time", description="once: e.g. 2030-01-31T09:00 (in the time "
                                                                   "zone below) or with an offset.")] = ""
    timezone: Annotated[str, msgspec.Meta(title="Time zone",
                                          description="An IANA name, e.g. Europe/Berlin, America/New_York, UTC.")] = "UTC"
    missed: Annotated[Literal["skip", "latest"], msgspec.Meta(
        title="Missed runs", description="When no worker ran at a slot's time (downtime): skip them, or run the "
                                         "latest missed one once.")] = "skip"

    def problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        _check(errors, "timezone", lambda: schedules.zone(self.timezone))
        if self.mode == "interval" and self.every * UNIT_SECONDS[self.unit] < MIN_INTERVAL:
            errors["every"] = f"At least {MIN_INTERVAL:g} seconds between runs."
        elif self.mode == "interval" and self.every * UNIT_SECONDS[self.unit] > MAX_INTERVAL:
            errors["every"] = "At most 366 days between runs; use a date-time (once) or cron for rarer runs."
        elif self.mode == "times":
            _check(errors, "times", lambda: schedules.parse_times(self.times))
            _check(errors, "days", lambda: schedules.parse_days(self.days))
        elif self.mode == "cron":
            _check(errors, "cron", lambda: schedules.check_cron(self.cron))
        elif self.mode == "once" and "timezone" not in errors:
            _check(errors, "at", lambda: schedules.parse_local(self.at, schedules.zone(self.timezone)))
        return errors


def _check(errors: dict[str, str], name: str, parse: Any) -> None:
    try:
        parse()
    except ValueError as exc:
        errors[name] = str(exc)


class ScheduleTrigger(ScheduleTriggerType):
    """Fires at the slots of its schedule; emits one item describing the slot (timestamp, scheduled_for in the
    zone, timezone, missed)."""

    type_name = "schedule_trigger"
    version = 1
    title = "Schedule Trigger"
    description = "Run the workflow on a schedule: an interval, times of day, cron, or once."
    Config = ScheduleTriggerConfig

    def next_slot(self, config: ScheduleTriggerConfig, after: datetime) -> datetime | None:
        tz = schedules.zone(config.timezone)
        after = after.astimezone(UTC)
        if config.mode == "interval":
            return schedules.next_interval(config.every * UNIT_SECONDS[config.unit], tz, after)
        if config.mode == "once":
            at = schedules.parse_local(config.at, tz)
            return at if at > after else None
        if config.mode == "times":
            crons = schedules.times_to_cron(schedules.parse_times(config.times), schedules.parse_days(config.days))
            return schedules.next_cron(crons, tz, after, both_folds=False)
        expression = schedules.check_cron(config.cron)
        return schedules.next_cron([expression], tz, after, both_folds=schedules.hour_is_every(expression))

    def missed_policy(self, config: ScheduleTriggerConfig) -> str:
        return config.missed

    @classmethod
    def upcoming(cls, raw: dict[str, Any], count: int = 5, now: datetime | None = None) -> tuple[list[str], str | None]:
        """The next ``count`` run times as local ISO strings (for the form), or the reason there are none."""
        from engine.config import parse_config
        from engine.errors import ConfigError

        try:
            config = parse_config(ScheduleTriggerConfig, raw)
        except ConfigError:
            return [], "Fix the fields below to see the next run times."
        assert isinstance(config, ScheduleTriggerConfig)
        tz = schedules.zone(config.timezone)
        slot, found = now or datetime.now(UTC), []
        for _ in range(count):
            nxt = cls().next_slot(config, slot)
            if nxt is None:
                break
            found.append(nxt.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z"))
            slot = nxt
        return found, (None if found else "No run ahead: the date-time has passed.")

    async def run(self, ctx: NodeContext, config: ScheduleTriggerConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)

