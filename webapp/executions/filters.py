"""The executions table's filters and cursor, parsed from a query string (the page, its htmx swaps
and the live WebSocket take the same parameters).

Every parameter is checked: an unknown status or trigger, a malformed or impossible date, a cursor
that is not a positive id, a search longer than ``MAX_SEARCH`` — each is a ``BadFilter`` (400) with a
message naming the parameter. Which workflows are the user's is checked by the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar.exceptions import HTTPException

from engine.alerts import ERROR_TRIGGER
from engine.contract import AUTOMATIC_TRIGGER_KINDS
from engine.executions import MANUAL_TRIGGERS
from engine.subworkflows import SUB_TRIGGER

STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "crashed", "cancelled")
TRIGGERS = (*MANUAL_TRIGGERS, *AUTOMATIC_TRIGGER_KINDS, SUB_TRIGGER, ERROR_TRIGGER)
"""Every ``executions.trigger`` value: webhook, schedule and poll are the automatic triggers (engine/triggers/)."""
MAX_SEARCH = 200
MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger cursor is out of range, not "before everything"
PARAMETERS = {"status", "workflow", "trigger", "from", "to", "q", "before", "after"}
_INT = re.compile(r"[0-9]{1,10}")


class BadFilter(HTTPException):
    """A filter or cursor parameter that cannot be used (400, with the reason)."""

    status_code = 400


@dataclass(frozen=True)
class ExecutionFilter:
    """What the table shows; empty fields do not filter. Times are UTC; ``until`` is exclusive."""

    statuses: frozenset[str] = field(default_factory=frozenset)
    workflow_id: int | None = None
    trigger: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    raw: tuple[tuple[str, str], ...] = ()
    """The filter parameters as given (for links and the form)."""

    @property
    def active(self) -> bool:
        return bool(self.statuses or self.workflow_id or self.trigger or self.since or self.until or self.search)

    def matches(self, *, status: str, workflow_id: int, trigger: str | None, created_at: float | None) -> bool | None:
        """Whether a row passes; ``None`` when only the database can tell (a search on the input)."""
        if self.statuses and status not in self.statuses:
            return False
        if self.workflow_id is not None and workflow_id != self.workflow_id:
            return False
        if self.trigger is not None and trigger != self.trigger:
            return False
        if created_at is not None and not self._in_range(created_at):
            return False
        return None if self.search else True

    def _in_range(self, created_at: float) -> bool:
        return ((self.since is None or created_at >= self.since.timestamp())
                and (self.until is None or created_at < self.until.timestamp()))

    def query(self, **cursor: int | None) -> str:
        """The query string of these filters plus a cursor (``before=`` / ``after=``)."""
        pairs = [*self.raw, *((k, str(v)) for k, v in cursor.items() if v is not None)]
        return urlencode(pairs)

    def value(self, name: str) -> str:
        return next((v for k, v in self.raw if k == name), "")


@dataclass(frozen=True)
class Cursor:
    """Keyset pagination by id: ``before`` (older page: ids below) or ``after`` (newer page: ids above)."""

    before: int | None = None
    after: int | None = None

    @property
    def first_page(self) -> bool:
        return self.before is None and self.after is None


def parse(params: list[tuple[str, str]], *, ignore: frozenset[str] = frozenset()) -> tuple[ExecutionFilter, Cursor]:
    """Filters and cursor from the query parameters (``BadFilter`` when one is wrong)."""
    unknown = sorted({k for k, _ in params} - PARAMETERS - ignore)
    if unknown:
        raise BadFilter(f"Unknown parameter: {', '.join(unknown)}.")
    values: dict[str, list[str]] = {}
    for key, value in params:
        if key in PARAMETERS:
            values.setdefault(key, []).append(value.strip())
    raw = tuple((k, v.strip()) for k, v in params if k in PARAMETERS - {"before", "after"} and v.strip())
    filters = ExecutionFilter(statuses=_statuses(values.get("status", [])), workflow_id=_id(values, "workflow"),
                              trigger=_choice(values, "trigger", TRIGGERS), since=_time(values, "from"),
                              until=_time(values, "to", end=True), search=_search(values), raw=raw)
    if filters.since and filters.until and filters.since >= filters.until:
        raise BadFilter("“from” must be before “to”.")
    cursor = Cursor(before=_id(values, "before"), after=_id(values, "after"))
    if cursor.before is not None and cursor.after is not None:
        raise BadFilter("Give either “before” or “after”, not both.")
    return filters, cursor


def _single(values: dict[str, list[str]], name: str) -> str | None:
    given = [v for v in values.get(name, []) if v]
    if len(given) > 1:
        raise BadFilter(f"“{name}” is given more than once.")
    return given[0] if given else None


def _statuses(given: list[str]) -> frozenset[str]:
    chosen = frozenset(v for v in given if v)
    unknown = sorted(chosen - set(STATUSES))
    if unknown:
        raise BadFilter(f"Unknown status {', '.join(repr(u[:40]) for u in unknown)}: use {', '.join(STATUSES)}.")
    return chosen


def _id(values: dict[str, list[str]], name: str) -> int | None:
    text = _single(values, name)
    if text is None:
        return None
    if not _INT.fullmatch(text) or not 1 <= int(text) <= MAX_ID:
        raise BadFilter(f"“{name}” must be a positive id (1 to {MAX_ID}).")
    return int(text)


def _choice(values: dict[str, list[str]], name: str, allowed: tuple[str, ...]) -> str | None:
    text = _single(values, name)
    if text is not None and text not in allowed:
        raise BadFilter(f"Unknown {name} {text[:40]!r}: use {', '.join(allowed)}.")
    return text


def _time(values: dict[str, list[str]], name: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (a whole day: ``to`` includes it) or ``YYYY-MM-DDTHH:MM[:SS]``, in UTC."""
    text = _single(values, name)
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        if len(text) > 30 or "T" not in text:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise BadFilter(f"“{name}” must be a date (2026-12-01) or a date and time (2026-12-01T14:30), "
                        "in UTC.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _search(values: dict[str, list[str]]) -> str | None:
    text = _single(values, "q")
    if text is not None and len(text) > MAX_SEARCH:
        raise BadFilter(f"The search is limited to {MAX_SEARCH} characters.")
    return text


def like_pattern(search: str) -> str:
    """A LIKE / ILIKE pattern that matches ``search`` anywhere, its wildcards taken literally."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def without_search(filters: ExecutionFilter) -> ExecutionFilter:
    return replace(filters, search=None)


def params_of(query: Any) -> list[tuple[str, str]]:
    """The (key, value) pairs of a Litestar query ``MultiDict``."""
    return [(key, value) for key in query for value in query.getall(key)]
