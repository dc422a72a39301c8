"""A workflow's performance over the last day or week: outcomes, durations, executions per hour and the
most frequent errors.

Every number is computed by SQL over the workflow's executions created in the window, scoped to the
owner. The window is made of whole UTC hours ending with the current one (``Window``), so the hourly
buckets cover it exactly and their sums are the totals. Durations are ``finished_at - started_at`` of
the executions that ended (waits included); percentiles interpolate linearly between the two nearest
ranks, as PostgreSQL's ``percentile_cont`` does — SQLite gets the same numbers from a window-function
query that returns at most four rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.exceptions import HTTPException, NotFoundException
from sqlalchemy import ColumnElement, Float, Integer, cast, extract, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.executions import FAILED_STATUSES
from engine.models import TERMINAL_STATUSES, Execution, Workflow

RANGES: dict[str, int] = {"day": 24, "week": 7 * 24}
"""The range switch: its names and how many hours each covers."""
PERCENTILES = (0.5, 0.95)
TOP_ERRORS = 10
ERROR_MESSAGE_CHARS = 200
"""Errors are grouped by their message's first characters: a long message with a varying tail (an id, a
timestamp) still groups, and the group key stays small."""
OUTCOMES = ("succeeded", "failed", "cancelled", "unfinished")
OUTCOME_OF = {"succeeded": "succeeded", "failed": "failed", "crashed": "failed", "cancelled": "cancelled",
              "queued": "unfinished", "running": "unfinished", "waiting": "unfinished"}


class BadRange(HTTPException):
    """A ``range`` parameter that is not one of ``RANGES`` (400)."""

    status_code = 400


@dataclass(frozen=True)
class Window:
    """Whole UTC hours, oldest first, ending with the hour ``now`` is in."""

    name: str
    hours: tuple[datetime, ...]

    @property
    def since(self) -> datetime:
        return self.hours[0]

    @property
    def until(self) -> datetime:
        """Exclusive end: the end of the current hour."""
        return self.hours[-1] + timedelta(hours=1)


def window(name: str, now: datetime) -> Window:
    if name not in RANGES:
        raise BadRange(detail=f"Unknown range {name[:40]!r}: use one of {', '.join(RANGES)}.")
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return Window(name, tuple(current - timedelta(hours=h) for h in reversed(range(RANGES[name]))))


@dataclass(frozen=True)
class Durations:
    """Seconds; ``None`` when no execution of the window (or hour) has ended."""

    count: int
    p50: float | None
    p95: float | None


NO_DURATIONS = Durations(0, None, None)


@dataclass
class HourBucket:
    hour: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0
    durations: Durations = NO_DURATIONS

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.unfinished


@dataclass(frozen=True)
class ErrorGroup:
    node: str
    type: str
    message: str
    count: int
    newest_execution_id: int


@dataclass
class Overview:
    workflow_id: int
    workflow_name: str
    window: Window
    hourly: list[HourBucket]
    durations: Durations
    top_errors: list[ErrorGroup] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        totals = {outcome: sum(getattr(b, outcome) for b in self.hourly) for outcome in OUTCOMES}
        return {"executions": sum(totals.values()), **totals}

    @property
    def ended(self) -> int:
        totals = self.totals
        return totals["succeeded"] + totals["failed"] + totals["cancelled"]

    @property
    def success_rate(self) -> float | None:
        return self.totals["succeeded"] / self.ended if self.ended else None

    @property
    def failure_rate(self) -> float | None:
        return self.totals["failed"] / self.ended if self.ended else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the API and of the page's chart data block."""
        return {
            "workflow": {"id": self.workflow_id, "name": self.workflow_name},
            "range": self.window.name, "since": _iso(self.window.since), "until": _iso(self.window.until),
            "totals": self.totals, "ended": self.ended,
            "success_rate": self.success_rate, "failure_rate": self.failure_rate,
            "duration_seconds": asdict(self.durations),
            "hourly": [{"hour": _iso(b.hour), **{o: getattr(b, o) for o in OUTCOMES},
                        "p50_seconds": b.durations.p50, "p95_seconds": b.durations.p95} for b in self.hourly],
            "top_errors": [asdict(group) for group in self.top_errors],
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class OverviewService:
    db: AsyncSession
    owner_id: int

    async def overview(self, workflow_id: int, range_name: str, now: datetime) -> Overview:
        """The statistics of one of the owner's workflows; 404 for anyone else's or a missing one."""
        span = window(range_name, now)
        workflow = await self.db.scalar(select(Workflow).where(Workflow.id == workflow_id,
                                                               Workflow.owner_id == self.owner_id))
        if workflow is None:
            raise NotFoundException()
        # The workflow is the owner's (checked above) and so is every execution of it (an execution takes
        # its workflow's owner): filtering on the workflow alone lets the planner use the
        # (workflow_id, created_at) index instead of scanning all of the owner's executions in the window.
        scope = (Execution.workflow_id == workflow.id, Execution.created_at >= span.since,
                 Execution.created_at < span.until)
        hourly = await self._hourly(scope, span)
        per_hour = await self._durations(scope, by_hour=True)
        for bucket in hourly:
            bucket.durations = per_hour.get(bucket.hour, NO_DURATIONS)
        overall = (await self._durations(scope)).get(None, NO_DURATIONS)
        return Overview(workflow.id, workflow.name, span, hourly, overall, await self._top_errors(scope))

    @property
    def _dialect(self) -> str:
        return self.db.get_bind().dialect.name

    async def _hourly(self, scope: tuple[ColumnElement[bool], ...], span: Window) -> list[HourBucket]:
        """Counts per hour and status, grouped in SQL (at most hours × statuses rows), zeros filled in."""
        hour = self._hour_of_created().label("hour")
        rows = await self.db.execute(select(hour, Execution.status, func.count()).where(*scope)
                                     .group_by(hour, Execution.status))
        buckets = {moment: HourBucket(moment) for moment in span.hours}
        for value, status, count in rows.all():
            bucket = buckets[_as_hour(value)]
            outcome = OUTCOME_OF.get(status, "unfinished")
            setattr(bucket, outcome, getattr(bucket, outcome) + count)
        return list(buckets.values())

    def _hour_of_created(self) -> ColumnElement[Any]:
        # Literal arguments (not bound parameters), so PostgreSQL sees the same expression in GROUP BY.
        if self._dialect == "postgresql":
            return func.date_trunc(literal_column("'hour'"), func.timezone(literal_column("'UTC'"),
                                                                            Execution.created_at))
        return func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), Execution.created_at)

    async def _durations(self, scope: tuple[ColumnElement[bool], ...], *,
                         by_hour: bool = False) -> dict[datetime | None, Durations]:
        """p50 / p95 of the ended executions: of the whole window (key ``None``) or of each hour."""
        ended = (*scope, Execution.status.in_(TERMINAL_STATUSES), Execution.started_at.is_not(None),
                 Execution.finished_at.is_not(None))
        hour = self._hour_of_created().label("hour") if by_hour else None
        if self._dialect == "postgresql":
            return await self._durations_postgres(ended, hour)
        return await self._durations_ranked(ended, hour)

    async def _durations_postgres(self, ended: tuple[ColumnElement[bool], ...],
                                  hour: ColumnElement[Any] | None) -> dict[datetime | None, Durations]:
        ms = cast(extract("epoch", Execution.finished_at - Execution.started_at) * 1000, Float)
        keys = [hour] if hour is not None else []
        query = (select(*keys, func.count(), *(func.percentile_cont(p).within_group(ms) for p in PERCENTILES))
                 .where(*ended).group_by(*keys))
        found: dict[datetime | None, Durations] = {}
        for row in (await self.db.execute(query)).all():
            key = _as_hour(row[0]) if hour is not None else None
            count, p50, p95 = row[-3:]
            if count:
                found[key] = Durations(count, _seconds(p50), _seconds(p95))
        return found

    async def _durations_ranked(self, ended: tuple[ColumnElement[bool], ...],
                                hour: ColumnElement[Any] | None) -> dict[datetime | None, Durations]:
        """Rank the durations with window functions (per hour, or over the window) and fetch only the
        rows each percentile needs: at most four per group."""
        ms = cast(func.round((func.julianday(Execution.finished_at) - func.julianday(Execution.started_at))
                             * 86_400_000), Integer)
        # Durations first, ranked after: each is computed once, not again for the window's ORDER BY.
        ended_ms = select((hour if hour is not None else literal_column("NULL")).label("hour"),
                          ms.label("ms")).where(*ended).subquery()
        group = ended_ms.c.hour if hour is not None else None
        ranked = select(ended_ms.c.hour, ended_ms.c.ms,
                        (func.row_number().over(partition_by=group, order_by=ended_ms.c.ms) - 1).label("nth"),
                        func.count().over(partition_by=group).label("n")).subquery()
        wanted = or_(*(ranked.c.nth == cast(p * (ranked.c.n - 1), Integer) + step
                       for p in PERCENTILES for step in (0, 1)))
        rows = (await self.db.execute(select(ranked.c.hour, ranked.c.ms, ranked.c.nth, ranked.c.n)
                                      .where(wanted))).all()
        groups: dict[datetime | None, tuple[int, dict[int, float]]] = {}
        for value, duration, nth, count in rows:
            group = groups.setdefault(_as_hour(value) if hour is not None else None, (count, {}))
            group[1][nth] = float(duration)
        return {k: Durations(count, *(_seconds(_interpolate(values, count, p)) for p in PERCENTILES))
                for k, (count, values) in groups.items()}

    async def _top_errors(self, scope: tuple[ColumnElement[bool], ...]) -> list[ErrorGroup]:
        """Failed executions grouped by failed node, error type and message: most frequent first."""
        failed = select(Execution.id.label("id"), Execution.error["node_name"].as_string().label("node"),
                        Execution.error["type"].as_string().label("type"),
                        func.substr(Execution.error["message"].as_string(), 1, ERROR_MESSAGE_CHARS).label("message"),
                        ).where(*scope, Execution.status.in_(FAILED_STATUSES)).subquery()
        count, newest = func.count().label("count"), func.max(failed.c.id).label("newest")
        query = (select(failed.c.node, failed.c.type, failed.c.message, count, newest)
                 .group_by(failed.c.node, failed.c.type, failed.c.message)
                 .order_by(count.desc(), newest.desc()).limit(TOP_ERRORS))
        return [ErrorGroup(node or "Workflow", kind or "Error", message or "", n, newest_id)
                for node, kind, message, n, newest_id in (await self.db.execute(query)).all()]


def _as_hour(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _interpolate(values: dict[int, float], count: int, p: float) -> float:
    """``percentile_cont``: between the values at ranks floor(p·(n−1)) and the next one."""
    position = p * (count - 1)
    low = int(position)
    fraction = position - low
    if fraction == 0:
        return values[low]
    return values[low] + fraction * (values[low + 1] - values[low])


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000
