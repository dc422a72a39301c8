"""The Schedule Trigger's slots: each mode, time zones, DST in two zones, and the form's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.config import parse_config
from engine.errors import ConfigError
from nodes.schedule_trigger import ScheduleTrigger, ScheduleTriggerConfig

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def cfg(**raw: object) -> ScheduleTriggerConfig:
    config = parse_config(ScheduleTriggerConfig, raw)
    assert isinstance(config, ScheduleTriggerConfig)
    return config


def slots(config: ScheduleTriggerConfig, after: datetime, count: int) -> list[datetime]:
    found, node = [], ScheduleTrigger()
    for _ in range(count):
        after = node.next_slot(config, after)
        assert after is not None
        found.append(after)
    return found


def local(values: list[datetime], zone: ZoneInfo) -> list[str]:
    return [v.astimezone(zone).isoformat() for v in values]


def test_interval_slots_are_anchored_whatever_the_start() -> None:
    config = cfg(mode="interval", every="15", unit="minutes")
    a = slots(config, datetime(2026, 5, 1, 10, 7, 3, tzinfo=UTC), 3)
    b = slots(config, datetime(2026, 5, 1, 10, 14, 59, tzinfo=UTC), 3)
    assert a == b == [datetime(2026, 5, 1, 10, 15, tzinfo=UTC), datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
                      datetime(2026, 5, 1, 10, 45, tzinfo=UTC)]
    # a slot is never "after" itself: the next one is a whole interval later
    assert ScheduleTrigger().next_slot(config, a[0]) == a[1]


def test_hour_intervals_follow_the_zones_standard_time_and_ignore_dst() -> None:
    config = cfg(mode="interval", every="6", unit="hours", timezone="Europe/Berlin")
    winter = slots(config, datetime(2026, 1, 10, 0, 30, tzinfo=BERLIN), 2)
    assert local(winter, BERLIN) == ["2026-01-10T06:00:00+01:00", "2026-01-10T12:00:00+01:00"]
    across = slots(config, datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 3)  # the spring change at 02:00
    assert [b - a for a, b in zip(across, across[1:], strict=False)] == [timedelta(hours=6)] * 2


@pytest.mark.parametrize(("zone", "spring", "fall"), [
    (BERLIN, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 10, 24, 12, tzinfo=UTC)),
    (NEW_YORK, datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 10, 30, 12, tzinfo=UTC)),
])
@pytest.mark.parametrize("mode", ["times", "cron"])
def test_a_daily_0230_job_across_both_dst_changes(zone: ZoneInfo, spring: datetime, fall: datetime,
                                                   mode: str) -> None:
    raw = {"mode": "times", "times": "02:30"} if mode == "times" else {"mode": "cron", "cron": "30 2 * * *"}
    config = cfg(**raw, timezone=zone.key)
    gap_day = slots(config, spring, 2)  # 02:30 does not exist: it runs once, when the gap ends (03:00)
    assert [s.astimezone(zone).strftime("%d %H:%M") for s in gap_day] == [
        f"{gap_day[0].astimezone(zone).day:02d} 03:00", f"{gap_day[0].astimezone(zone).day + 1:02d} 02:30"]
    assert gap_day[0].astimezone(zone).dst() != timedelta(0)
    fold_day = slots(config, fall, 3)  # the day before, the day the clocks go back, the day after
    days = [s.astimezone(zone).date() for s in fold_day]
    assert len(set(days)) == 3
    assert all(s.astimezone(zone).strftime("%H:%M") == "02:30" for s in fold_day)
    assert fold_day[1] - fold_day[0] == timedelta(hours=25)  # the day the clocks go back has 25 hours


@pytest.mark.parametrize(("zone", "at", "first_pass"), [
    (BERLIN, "02:30", "2026-10-25T02:30:00+02:00"), (NEW_YORK, "01:30", "2026-11-01T01:30:00-04:00")])
def test_a_daily_job_in_the_repeated_hour_runs_once_at_its_first_pass(zone: ZoneInfo, at: str,
                                                                     first_pass: str) -> None:
    for raw in ({"mode": "times", "times": at}, {"mode": "cron", "cron": f"{at[3:]} {int(at[:2])} * * *"}):
        found = slots(cfg(**raw, timezone=zone.key), datetime.fromisoformat(first_pass) - timedelta(hours=2), 2)
        assert local(found, zone)[0] == first_pass
        assert found[1] - found[0] == timedelta(hours=25)  # the second pass is not a slot


def test_an_hourly_cron_runs_in_both_passes_of_the_repeated_hour() -> None:
    config = cfg(mode="cron", cron="0 * * * *", timezone="Europe/Berlin")
    found = slots(config, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 4)
    assert local(found, BERLIN) == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                                    "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]
    assert [b - a for a, b in zip(found, found[1:], strict=False)] == [timedelta(hours=1)] * 3


def test_a_cron_every_half_hour_through_the_spring_gap_runs_once_at_its_end() -> None:
    config = cfg(mode="cron", cron="*/30 * * * *", timezone="America/New_York")
    found = slots(config, datetime(2026, 3, 8, 6, 15, tzinfo=UTC), 4)  # 01:15 EST
    assert local(found, NEW_YORK) == ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
                                      "2026-03-08T03:30:00-04:00", "2026-03-08T04:00:00-04:00"]


def test_times_of_day_on_chosen_weekdays() -> None:
    config = cfg(mode="times", times="17:30, 09:00", days="mon-fri", timezone="Europe/Berlin")
    found = slots(config, datetime(2026, 12, 4, 12, tzinfo=BERLIN), 4)  # a Friday noon
    assert local(found, BERLIN) == ["2026-12-04T17:30:00+01:00", "2026-12-07T09:00:00+01:00",
                                    "2026-12-07T17:30:00+01:00", "2026-12-08T09:00:00+01:00"]
    weekend = cfg(mode="times", times="08:00", days="sat-sun")
    assert [s.strftime("%a") for s in slots(weekend, datetime(2026, 12, 4, tzinfo=UTC), 3)] == ["Sat", "Sun", "Sat"]


def test_one_time_date_in_the_zone_then_no_more() -> None:
    config = cfg(mode="once", at="2030-01-31T09:00", timezone="America/New_York")
    node = ScheduleTrigger()
    first = node.next_slot(config, datetime(2029, 1, 1, tzinfo=UTC))
    assert first == datetime(2030, 1, 31, 14, 0, tzinfo=UTC)
    assert node.next_slot(config, first) is None
    with_offset = cfg(mode="once", at="2030-01-31T09:00+01:00", timezone="America/New_York")
    assert node.next_slot(with_offset, datetime(2029, 1, 1, tzinfo=UTC)) == datetime(2030, 1, 31, 8, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"mode": "cron", "cron": "61 * * * *"}, "cron", "not a valid cron expression"),
    ({"mode": "cron", "cron": "* * * *"}, "cron", "5 fields"),
    ({"mode": "cron", "cron": ""}, "cron", "5 fields"),
    ({"mode": "interval", "timezone": "Mars/Olympus"}, "timezone", "Unknown time zone 'Mars/Olympus'"),
    ({"mode": "interval", "timezone": "../../etc/passwd"}, "timezone", "Unknown time zone"),
    ({"mode": "interval", "every": "5", "unit": "seconds"}, "every", "At least 10 seconds"),
    ({"mode": "interval", "every": "0"}, "every", ">= 1"),
    ({"mode": "times", "times": "25:00"}, "times", "'25:00' is not a time of day"),
    ({"mode": "times", "times": "", "days": "funday"}, "times", "at least one time"),
    ({"mode": "times", "days": "mon-funday"}, "days", "'funday' is not a day"),
    ({"mode": "once", "at": "next tuesday"}, "at", "is not a date-time"),
    ({"mode": "hourly"}, "mode", "Invalid enum value 'hourly'"),
    ({"mode": "cron", "cron": "0 0 30 2 *"}, "cron", "'0 0 30 2 *' never fires"),
    ({"mode": "once", "at": "9999-12-31T23:59", "timezone": "America/New_York"}, "at", "is out of range"),
    ({"mode": "interval", "every": "1000000", "unit": "hours"}, "every", "At most 366 days"),
])
def test_bad_config_is_a_precise_field_error(raw: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(ScheduleTriggerConfig, raw)
    assert message in caught.value.field_errors[field]


def test_the_form_preview_lists_the_next_five_runs() -> None:
    now = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    times, note = ScheduleTrigger.upcoming({"mode": "times", "times": "09:00", "timezone": "Europe/Berlin"}, now=now)
    assert note is None
    assert times == [f"{d} 2026-12-{n:02d} 09:00:00 CET" for d, n in
                     [("Fri", 4), ("Sat", 5), ("Sun", 6), ("Mon", 7), ("Tue", 8)]]
    assert ScheduleTrigger.upcoming({"mode": "cron", "cron": "nope"}, now=now) == (
        [], "Fix the fields below to see the next run times.")
    assert ScheduleTrigger.upcoming({"mode": "once", "at": "2020-01-01T00:00"}, now=now) == (
        [], "No run ahead: the date-time has passed.")
