"""The scheduler: every worker process runs one; the database decides who fires a slot or runs a poll.

Each ``tick`` reads the due ``triggers`` rows (``next_run_at <= now``, schedule or poll, of an active workflow
that the circuit breaker has not paused) with one indexed query, then:

- **a schedule slot** is fired in one transaction: a compare-and-set advances ``next_run_at`` from the value
  read (a racing worker updates nothing and stops), the ``schedule_slots`` row for (workflow, node, slot) is
  inserted (its unique key: a second insert of the same slot fails, whatever raced), the execution is
  created (``trigger="schedule"``, ``trigger_node``); commit, then enqueue. A slot whose execution was
  committed but not enqueued (the worker died in between) is enqueued by the reconciler: it runs once.
- **a slot older than** ``GRACE`` when first seen was missed (no worker ran, or the workflow was paused):
  the trigger's policy says ``skip`` (advance past now, run nothing) or ``latest`` (run the latest missed
  slot once, with ``missed: true``).
- **a poll** is handed to ``engine/triggers/polling.py`` (lease, poll outside any transaction, commit the
  new state with the execution).

Old ``schedule_slots`` rows are pruned every ``PRUNE_EVERY`` seconds (kept ``KEEP_SLOTS``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from saq import Queue
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.changes import Announce, announce_created
from engine.config import parse_config
from engine.contract import ScheduleTriggerType
from engine.errors import GraphError, WorkflowPaused
from engine.executions import create_execution, enqueue_execution
from engine.models import Execution, ScheduleSlot, Trigger, Workflow
from engine.registry import Registry
from engine.triggers.polling import PollRunner

if TYPE_CHECKING:
    from engine.credentials.vault import Vault

log = logging.getLogger("patchwire.scheduler")
GRACE = timedelta(seconds=60)
"""A slot first seen later than this after its time was missed (the missed-slot policy applies)."""
KEEP_SLOTS = timedelta(days=3)
PRUNE_EVERY = 600.0
DUE_BATCH = 200
FIRE_BATCH = 50
"""Slots fired in one transaction (a slot refused by its unique key makes the batch go again one by one)."""
SCHEDULE_TRIGGER = "schedule"
FAILED_START_RETRY = timedelta(minutes=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DueTrigger:
    """One due ``triggers`` row, as read by the tick (the values the compare-and-sets check)."""

    id: int
    kind: str
    workflow_id: int
    owner_id: int
    node_id: str
    node_type: str
    node_version: int
    config: dict[str, Any]
    state: dict[str, Any] | None
    next_run_at: datetime
    failures: int
    version_id: int


_DUE_COLUMNS = (Trigger.id, Trigger.kind, Trigger.workflow_id, Trigger.owner_id, Trigger.node_id, Trigger.node_type,
                Trigger.node_version, Trigger.config, Trigger.state, Trigger.next_run_at, Trigger.failures,
                Trigger.version_id)


class Scheduler:
    """Fires due schedule slots and polls (one per worker process; many may run at once)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: Queue, registry: Registry, *,
                 http: httpx.AsyncClient, vault: Vault | None = None, clock: Callable[[], datetime] = utc_now,
                 job_timeout: int, heartbeat: int, announce: Announce | None = None,
                 poll_timeout: float = 60.0) -> None:
        self.sessions, self.queue, self.registry, self.clock = sessions, queue, registry, clock
        self.job_timeout, self.heartbeat, self.announce = job_timeout, heartbeat, announce
        self.polls = PollRunner(self, http=http, vault=vault, timeout=poll_timeout)
        self._last_prune: datetime | None = None

    async def tick(self) -> int:
        """One pass: fire every due schedule slot, then run every due poll (awaited); executions started."""
        now = self.clock()
        due = await self.due(now)
        started = await self.fire_schedules([t for t in due if t.kind == "schedule"], now)
        polls = [t for t in due if t.kind == "poll"]
        if polls:
            started += sum(await asyncio.gather(*(self.polls.run(t) for t in polls)))
        await self._maybe_prune(now)
        return started

    async def run_forever(self, every: float = 0.25) -> None:
        """Look every ``every`` seconds, and wake exactly when a slot seen coming within that time is due.
        Polls run in tasks of their own, so a slow source never delays a slot."""
        while True:
            pause = every
            try:
                now = self.clock()
                upcoming = await self.due(now, horizon=timedelta(seconds=every))
                due = [t for t in upcoming if t.next_run_at <= now]
                await self.fire_schedules([t for t in due if t.kind == "schedule"], now)
                self.polls.start_in_background([t for t in due if t.kind == "poll"])
                await self._maybe_prune(now)
                if later := [t.next_run_at for t in upcoming if t.next_run_at > now]:
                    pause = min(every, max(0.0, (min(later) - self.clock()).total_seconds()))
            except asyncio.CancelledError:
                await self.polls.cancel()
                raise
            except Exception:
                log.warning("scheduler pass failed; trying again", exc_info=True)
            await asyncio.sleep(pause)

    async def due(self, now: datetime, horizon: timedelta = timedelta(0)) -> list[DueTrigger]:
        """The schedule and poll triggers due at ``now`` (or within ``horizon`` after it) of active, unpaused
        workflows, not leased by a poll."""
        query = (select(*_DUE_COLUMNS).join(Workflow, Workflow.id == Trigger.workflow_id)
                 .where(Trigger.next_run_at <= now + horizon, Trigger.kind.in_(("schedule", "poll")),
                        Workflow.active.is_(True),
                        or_(Workflow.paused_until.is_(None), Workflow.paused_until <= now),
                        or_(Trigger.lease_until.is_(None), Trigger.lease_until < now.timestamp()))
                 .order_by(Trigger.next_run_at, Trigger.id).limit(DUE_BATCH))  # one lock order for every worker
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [DueTrigger(*row) for row in rows]

    async def fire_schedules(self, due: list[DueTrigger], now: datetime) -> int:
        """Fire the due slots, up to ``FIRE_BATCH`` in one transaction: one commit for a burst of slots due in the
        same second."""
        started = 0
        for first in range(0, len(due), FIRE_BATCH):
            batch = due[first:first + FIRE_BATCH]
            try:
                started += await self._fire_batch(batch, now)
            except Exception:  # e.g. the database went away: the next pass tries again
                log.exception("schedule triggers %s failed to fire", [t.id for t in batch])
        return started

    async def _fire_batch(self, due: list[DueTrigger], now: datetime) -> int:
        try:
            started = await self._fire_together(due, now)
        except IntegrityError:  # a slot row already there (all rolled back): one transaction per slot now
            started = []
            for trigger in due:
                try:
                    started += await self._fire_together([trigger], now)
                except IntegrityError:
                    log.info("schedule trigger %s: slot %s was claimed already", trigger.id, trigger.next_run_at)
        await self.enqueue(started)
        return len(started)

    async def _fire_together(self, due: list[DueTrigger], now: datetime) -> list[tuple[Execution, str]]:
        started: list[tuple[Execution, str]] = []
        async with self.sessions() as session:
            for trigger in due:
                if (run := await self.fire(session, trigger, now)) is not None:
                    started.append(run)
            await session.commit()
        return started

    async def fire(self, session: AsyncSession, trigger: DueTrigger, now: datetime) -> tuple[Execution, str] | None:
        """Fire one due schedule slot in ``session`` (or apply the missed-slot policy): the execution it started."""
        try:
            plan = self._plan(trigger, now)
        except Exception as exc:  # a config that no longer reads, a node type gone, a calendar the code refuses
            await self._record_failure(session, trigger, f"cannot compute the trigger's slots: "
                                       f"{type(exc).__name__}: {exc}", now, next_run_at=now + FAILED_START_RETRY)
            return None
        slot, missed, following, zone = plan
        if slot is None:  # missed slots skipped
            if await self._advance(session, trigger, following, now):
                log.info("schedule trigger %s: missed slots since %s skipped (next: %s)", trigger.id,
                         trigger.next_run_at.isoformat(), following.isoformat() if following else "none")
            return None
        return await self._start_slot(session, trigger, slot, slot_item(slot, zone, missed=missed), following, now)

    def _plan(self, trigger: DueTrigger, now: datetime) -> tuple[datetime | None, bool, datetime | None, str]:
        """(the slot to run — ``None``: skip the missed ones —, whether it was missed, the slot after, the zone)."""
        node_type, config = self.node_and_config(trigger)
        if not isinstance(node_type, ScheduleTriggerType):
            raise TypeError(f"node type {trigger.node_type!r} is not a schedule")
        zone = str(getattr(config, "timezone", "UTC"))
        if now - trigger.next_run_at <= GRACE:
            return trigger.next_run_at, False, node_type.next_slot(config, trigger.next_run_at), zone
        latest = latest_slot(node_type, config, trigger.next_run_at, now)
        if node_type.missed_policy(config) != "latest" or latest is None:
            return None, True, node_type.next_slot(config, now), zone
        return latest, True, node_type.next_slot(config, latest), zone

    def node_and_config(self, trigger: DueTrigger) -> tuple[Any, Any]:
        node_type = self.registry.get(trigger.node_type, trigger.node_version)()
        return node_type, parse_config(node_type.Config, trigger.config)

    async def _start_slot(self, session: AsyncSession, trigger: DueTrigger, slot: datetime, item: dict[str, Any],
                          following: datetime | None, now: datetime) -> tuple[Execution, str] | None:
        """Advance (CAS), create the execution, claim the slot row (``IntegrityError`` when it is taken)."""
        if not await self._advance(session, trigger, following, now):
            return None  # another worker fired it
        workflow = await session.get_one(Workflow, trigger.workflow_id)
        try:
            execution = await create_execution(session, workflow, self.registry, input=item,
                                               trigger=SCHEDULE_TRIGGER, trigger_node=trigger.node_id)
        except (GraphError, WorkflowPaused) as exc:
            message = f"the slot {slot.isoformat()} could not start: {exc}"
            log.warning("trigger %s of workflow %s: %s", trigger.id, trigger.workflow_id, message)
            await session.execute(update(Trigger).where(Trigger.id == trigger.id).values(
                failures=Trigger.failures + 1, last_error=message[:2000], last_error_at=now)
                .execution_options(synchronize_session=False))
            return None
        # the slot's unique key: whatever raced, a second claim of this slot fails here
        await session.execute(insert(ScheduleSlot).values(workflow_id=trigger.workflow_id, node_id=trigger.node_id,
                                                          slot_at=slot, execution_id=execution.id, created_at=now))
        return execution, workflow.name

    async def _advance(self, session: AsyncSession, trigger: DueTrigger, following: datetime | None,
                       now: datetime) -> bool:
        """Compare-and-set ``next_run_at`` from the value this tick read; False: another worker moved it first."""
        result = await session.execute(
            update(Trigger).where(Trigger.id == trigger.id, Trigger.next_run_at == trigger.next_run_at)
            .values(next_run_at=following, last_run_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _record_failure(self, session: AsyncSession, trigger: DueTrigger, message: str, now: datetime, *,
                              next_run_at: datetime | None) -> None:
        """A trigger that could not start its execution: ``failures``, ``last_error`` (shown on the workflow)."""
        log.warning("trigger %s of workflow %s: %s", trigger.id, trigger.workflow_id, message)
        await session.execute(
            update(Trigger).where(Trigger.id == trigger.id, Trigger.next_run_at == trigger.next_run_at)
            .values(failures=Trigger.failures + 1, last_error=message[:2000], last_error_at=now,
                    next_run_at=next_run_at, updated_at=now)
            .execution_options(synchronize_session=False))

    async def enqueue(self, started: list[tuple[Execution, str]]) -> None:
        """After the commit: enqueue each execution and announce it (the reconciler enqueues what a crash lost)."""
        await asyncio.gather(*(enqueue_execution(self.queue, execution.id, timeout=self.job_timeout,
                                                 heartbeat=self.heartbeat) for execution, _ in started))
        try:
            await announce_created(self.announce, started)
        except Exception:  # a live update is best effort
            log.warning("could not announce executions %s", [e.id for e, _ in started], exc_info=True)

    async def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and (now - self._last_prune).total_seconds() < PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            await prune_slots(self.sessions, now - KEEP_SLOTS)
        except Exception:
            log.warning("could not prune old schedule slots", exc_info=True)


def latest_slot(node_type: ScheduleTriggerType, config: Any, first: datetime, now: datetime) -> datetime | None:
    """The last slot at or before ``now``, from ``first`` (a missed slot) on. Looks back from now in growing
    windows rather than walking every missed slot (a week of 10-second slots)."""
    back = timedelta(seconds=60)
    start = first
    while now - back > first:
        candidate = node_type.next_slot(config, now - back)
        if candidate is not None and candidate <= now:
            start = candidate
            break
        back *= 2
    slot: datetime | None = start
    while slot is not None and (following := node_type.next_slot(config, slot)) is not None and following <= now:
        slot = following
    return slot if slot is not None and slot <= now else None


def slot_item(slot: datetime, timezone: str, *, missed: bool) -> dict[str, Any]:
    """What a slot's execution starts with: its one item (``executions.input``)."""
    from zoneinfo import ZoneInfo

    try:
        zone: Any = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone, timezone = UTC, "UTC"
    return {"timestamp": slot.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "scheduled_for": slot.astimezone(zone).isoformat(), "timezone": timezone, "missed": missed}


async def prune_slots(sessions: async_sessionmaker[AsyncSession], before: datetime) -> int:
    """Delete claimed slot rows made before ``before`` (the slots themselves are long past)."""
    async with sessions.begin() as session:
        result = await session.execute(delete(ScheduleSlot).where(ScheduleSlot.created_at < before)
                                       .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
