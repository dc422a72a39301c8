"""Calendar arithmetic of the Schedule Trigger: wall-clock times in an IANA zone → UTC instants.

Every mode reduces to "the first slot strictly after an instant". Wall-clock modes (times of day, cron)
walk local wall times (croniter on naive datetimes, so it never sees a DST change) and map each to an
instant with one rule for the two DST cases (docs/triggers.md, "Daylight-saving time"):

- a wall time that does not exist (the spring gap, e.g. 02:30 in Europe/Berlin on the last Sunday of
  March) fires once, at the first instant after the gap (03:00 local);
- a wall time that happens twice (the fall-back hour) fires once, at its first occurrence — unless the
  cron expression's hour field is ``*`` (a job for every hour), which fires in both passes, since they
  are two different real hours.

Intervals are elapsed time: slots at whole multiples of the interval since the Unix epoch, shifted by
the zone's standard offset (so "every 6 hours" in Europe/Berlin is 00:00, 06:00, … in winter), and a
DST change neither adds nor drops one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
MAX_WALK = 200_000
"""Cron wall times looked at before giving up (an expression that never fires, e.g. 30 February)."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or ``ValueError`` with a message for the form."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("Enter an IANA time zone such as Europe/Berlin or UTC.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {name[:64]!r}: use an IANA name such as Europe/Berlin or "
                         "America/New_York.") from None


def parse_times(text: str) -> list[tuple[int, int]]:
    """``"09:00, 17:30"`` → ``[(9, 0), (17, 30)]`` (sorted, unique); ``ValueError`` names the bad entry."""
    found = set()
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        match = _TIME.match(part)
        if match is None:
            raise ValueError(f"{part[:20]!r} is not a time of day: use HH:MM (24 hours), e.g. 09:00, 17:30.")
        found.add((int(match[1]), int(match[2])))
    if not found:
        raise ValueError("Enter at least one time of day, e.g. 09:00 or 09:00, 17:30.")
    if len(found) > 48:
        raise ValueError("At most 48 times of day; use a cron expression for more.")
    return sorted(found)


def parse_days(text: str) -> list[int]:
    """``"mon-fri"``, ``"mon, wed, sat-sun"`` or empty (every day) → cron weekday numbers (0 = Sunday)."""
    text = text.strip().lower()
    if not text:
        return list(range(7))
    days: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, _, last = part.partition("-")
        lo, hi = _day(first.strip()), _day(last.strip()) if last else _day(first.strip())
        span = range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(0, hi + 1)]
        days.update((d + 1) % 7 for d in span)  # DAY_NAMES index (Monday 0) → cron (Sunday 0)
    return sorted(days)


def _day(name: str) -> int:
    key = name[:3]
    if key not in DAY_NAMES or not FULL_DAY_NAMES[DAY_NAMES.index(key)].startswith(name):
        raise ValueError(f"{name[:20]!r} is not a day: use mon, tue, wed, thu, fri, sat, sun, lists (mon, wed) "
                         "and ranges (mon-fri).")
    return DAY_NAMES.index(key)


def check_cron(expression: str) -> str:
    """The expression, normalised; ``ValueError`` says what is wrong (5 fields: minute hour day month weekday)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                         f"not {len(fields)}: e.g. */15 * * * * or 30 2 * * mon-fri.")
    normalised = " ".join(fields)
    if len(normalised) > 200 or not croniter.is_valid(normalised):
        raise ValueError(f"{normalised[:60]!r} is not a valid cron expression (minute 0-59, hour 0-23, day 1-31, "
                         "month 1-12 or jan-dec, weekday 0-6 or sun-sat; * , - / allowed).")
    try:
        croniter(normalised, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ValueError(f"{normalised[:60]!r} never fires (e.g. 30 February): check the day and the month.") from None
    return normalised


def standard_offset(tz: ZoneInfo, at: datetime) -> timedelta:
    local = at.astimezone(tz)
    return (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))


def next_interval(seconds: float, tz: ZoneInfo, after: datetime) -> datetime:
    """The first multiple of ``seconds`` (since the epoch at the zone's standard offset) strictly after ``after``."""
    shift = standard_offset(tz, after).total_seconds()
    elapsed = (after - EPOCH).total_seconds() + shift
    step = int(elapsed // seconds) + 1
    return EPOCH + timedelta(seconds=step * seconds - shift)


def _instants(wall: datetime, tz: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The UTC instants a naive local wall time stands for under the DST rules above."""
    first = wall.replace(tzinfo=tz, fold=0)
    roundtrip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if roundtrip != wall:  # in the spring gap: the first instant after it
        return [_gap_end(wall, tz)]
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset() and both_folds:
        return [first.astimezone(UTC), second.astimezone(UTC)]
    return [first.astimezone(UTC)]


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant the spring gap containing ``wall`` ends (the clocks jump to it)."""
    before = wall.replace(tzinfo=tz, fold=0).utcoffset() or timedelta(0)
    # zoneinfo reads a gap time with the offset before the jump: that instant lies after the gap
    instant = (wall - before).replace(tzinfo=UTC)
    low = instant - timedelta(hours=3)
    while (instant - low) > timedelta(seconds=1):  # the transition: last instant whose offset is `before`
        mid = low + (instant - low) / 2
        if mid.astimezone(tz).utcoffset() == before:
            low = mid
        else:
            instant = mid
    return instant.replace(microsecond=0)


def next_cron(expressions: list[str], tz: ZoneInfo, after: datetime, *, both_folds: bool) -> datetime | None:
    """The first instant strictly after ``after`` at which one of the cron expressions fires in ``tz``."""
    found = [slot for e in expressions if (slot := _next_one(e, tz, after, both_folds)) is not None]
    return min(found) if found else None


def _next_one(expression: str, tz: ZoneInfo, after: datetime, both_folds: bool) -> datetime | None:
    # start a few hours back on the wall clock: a repeated hour maps earlier wall times to later instants
    start = after.astimezone(tz).replace(tzinfo=None, fold=0) - timedelta(hours=3)
    walk = croniter(expression, start)
    best: datetime | None = None
    for _ in range(MAX_WALK):
        try:
            wall = walk.get_next(datetime)
        except (CroniterError, OverflowError):  # no later date (or past year 9999)
            return best
        candidates = _instants(wall, tz, both_folds)
        if best is not None and candidates[0] >= best:
            return best
        later = [c for c in candidates if c > after]
        if later and (best is None or min(later) < best):
            best = min(later)
    return best


def hour_is_every(expression: str) -> bool:
    """Whether the cron expression runs every hour (its hour field is ``*``): it fires in both passes of a
    repeated hour."""
    return expression.split()[1] == "*"


def times_to_cron(times: list[tuple[int, int]], days: list[int]) -> list[str]:
    """One cron expression per distinct minute (``30 9,17 * * 1-5``-like), for the times-of-day mode."""
    by_minute: dict[int, list[int]] = {}
    for hour, minute in times:
        by_minute.setdefault(minute, []).append(hour)
    weekdays = "*" if len(days) == 7 else ",".join(str(d) for d in days)
    return [f"{minute} {','.join(str(h) for h in hours)} * * {weekdays}" for minute, hours in sorted(by_minute.items())]


def parse_local(text: str, tz: ZoneInfo) -> datetime:
    """An ISO date-time: with an offset it is that instant; without one it is a wall time in ``tz``
    (a time in the spring gap is the instant the gap ends). Returns UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()[:40]!r} is not a date-time: use 2030-01-31T09:00 (in the trigger's time "
                         "zone) or add an offset such as +01:00.") from None
    try:
        if when.tzinfo is not None:
            return when.astimezone(UTC)
        return _instants(when.replace(microsecond=0), tz, both_folds=False)[0]
    except (OverflowError, ValueError):
        raise ValueError(f"{text.strip()[:40]!r} is out of range: use a date between the years 1 and 9999.") from None
