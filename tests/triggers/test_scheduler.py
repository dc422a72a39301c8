"""The scheduler against a real database (SQLite and PostgreSQL) and a real SQLite queue, with an injected clock:
slots claimed once by racing schedulers, missed-slot policies, paused and inactive workflows, and polls (baseline,
new items, dedup, failures backed off and reset, leases, a source answering garbage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from saq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.models import Execution, ScheduleSlot, Trigger, Workflow
from engine.queue import queue_from_url
from engine.registry import Registry
from engine.triggers.polling import backoff
from engine.triggers.scheduler import KEEP_SLOTS, Scheduler, prune_slots
from tests.triggers.support import add_owner, registry_with_file_poll, trigger_workflow, write_source

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Env:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    queue: Queue
    registry: Registry
    http: httpx.AsyncClient
    clock: Clock
    owner_id: int
    tmp: Path
    extra: list[Any] = field(default_factory=list)

    def scheduler(self, sessions: async_sessionmaker[AsyncSession] | None = None) -> Scheduler:
        return Scheduler(sessions or self.sessions, self.queue, self.registry, http=self.http, clock=self.clock,
                         job_timeout=120, heartbeat=5, poll_timeout=5)

    async def schedule(self, config: dict[str, Any], next_run_at: datetime | None = T0, **kw: Any) -> tuple[int, int]:
        return await trigger_workflow(self.sessions, self.registry, self.owner_id, trigger_type="schedule_trigger",
                                      config=config, next_run_at=next_run_at, **kw)

    async def trigger(self, trigger_id: int) -> Trigger:
        async with self.sessions() as session:
            return await session.get_one(Trigger, trigger_id)

    async def executions(self, workflow_id: int | None = None) -> list[Execution]:
        query = select(Execution).order_by(Execution.id)
        if workflow_id is not None:
            query = query.where(Execution.workflow_id == workflow_id)
        async with self.sessions() as session:
            return list(await session.scalars(query))


@pytest.fixture
async def env(migrated_db: tuple[str, async_sessionmaker[AsyncSession]], tmp_path: Path) -> AsyncIterator[Env]:
    url, sessions = migrated_db
    queue = queue_from_url(f"sqlite:///{tmp_path / 'queue.db'}")
    await queue.connect()
    async with httpx.AsyncClient() as http:
        yield Env(url, sessions, queue, registry_with_file_poll(), http, Clock(), await add_owner(sessions), tmp_path)
    await queue.disconnect()


EVERY_10_MIN = {"mode": "interval", "every": 10, "unit": "minutes"}


async def test_a_due_slot_starts_one_execution_commits_its_slot_and_enqueues(env: Env) -> None:
    workflow_id, trigger_id = await env.schedule({**EVERY_10_MIN, "timezone": "Europe/Berlin"})
    env.clock.advance(seconds=0.4)
    assert await env.scheduler().tick() == 1
    [execution] = await env.executions()
    assert (execution.workflow_id, execution.trigger, execution.status) == (workflow_id, "schedule", "queued")
    assert execution.trigger_node == (await env.trigger(trigger_id)).node_id
    assert execution.input == {"timestamp": "2026-12-04T12:00:00Z", "scheduled_for": "2026-12-04T13:00:00+01:00",
                               "timezone": "Europe/Berlin", "missed": False}
    async with env.sessions() as session:
        slot = (await session.scalars(select(ScheduleSlot))).one()
    assert (slot.slot_at, slot.execution_id) == (T0, execution.id)
    assert (await env.trigger(trigger_id)).next_run_at == T0 + timedelta(minutes=10)
    assert await env.queue.job(str(execution.id)) is not None
    assert await env.scheduler().tick() == 0  # nothing is due any more
    env.clock.advance(minutes=10)
    assert await env.scheduler().tick() == 1
    assert [e.input["timestamp"] for e in await env.executions()] == ["2026-12-04T12:00:00Z", "2026-12-04T12:10:00Z"]


async def test_racing_schedulers_start_each_slot_exactly_once(env: Env) -> None:
    """Five schedulers, each with its own connection pool, tick at the same instants over 3 slots of 12 triggers."""
    workflows = [(await env.schedule(EVERY_10_MIN, name=f"w{i}"))[0] for i in range(12)]
    engines = [make_engine(env.url) for _ in range(5)]
    try:
        schedulers = [env.scheduler(make_sessionmaker(engine)) for engine in engines]
        started = []
        for _ in range(3):
            env.clock.advance(seconds=1)
            started.append(sum(await asyncio.gather(*(s.tick() for s in schedulers))))
            env.clock.advance(minutes=10)
    finally:
        for engine in engines:
            await engine.dispose()
    assert started == [12, 12, 12]
    executions = await env.executions()
    assert len(executions) == 36
    per_slot = {(e.workflow_id, e.input["timestamp"]) for e in executions}
    assert len(per_slot) == 36 and {w for w, _ in per_slot} == set(workflows)
    async with env.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ScheduleSlot)) == 36


async def test_the_slot_row_refuses_a_second_execution_of_the_same_slot(env: Env) -> None:
    """A worker that read a stale ``next_run_at`` (the compare-and-set would pass) still cannot start the slot twice."""
    _, trigger_id = await env.schedule(EVERY_10_MIN)
    assert await env.scheduler().tick() == 1
    async with env.sessions.begin() as session:  # as if the advance had never been seen
        await session.execute(update(Trigger).where(Trigger.id == trigger_id).values(next_run_at=T0))
    assert await env.scheduler().tick() == 0
    assert len(await env.executions()) == 1
    assert (await env.trigger(trigger_id)).next_run_at == T0  # rolled back with the refused slot


async def test_missed_slots_are_skipped_by_default(env: Env) -> None:
    workflow_id, trigger_id = await env.schedule(EVERY_10_MIN)
    env.clock.advance(hours=1, minutes=3)  # downtime: seven slots passed
    assert await env.scheduler().tick() == 0
    assert await env.executions() == []
    assert (await env.trigger(trigger_id)).next_run_at == T0 + timedelta(hours=1, minutes=10)
    env.clock.advance(minutes=7)
    assert await env.scheduler().tick() == 1
    [execution] = await env.executions(workflow_id)
    assert execution.input["missed"] is False


async def test_policy_latest_runs_the_latest_missed_slot_once(env: Env) -> None:
    _, trigger_id = await env.schedule({**EVERY_10_MIN, "missed": "latest"})
    env.clock.advance(hours=1, minutes=3)
    assert await env.scheduler().tick() == 1
    assert await env.scheduler().tick() == 0
    [execution] = await env.executions()
    assert execution.input["timestamp"] == "2026-12-04T13:00:00Z" and execution.input["missed"] is True
    assert (await env.trigger(trigger_id)).next_run_at == T0 + timedelta(hours=1, minutes=10)


async def test_a_slot_seen_within_the_grace_is_not_missed(env: Env) -> None:
    await env.schedule(EVERY_10_MIN)
    env.clock.advance(seconds=50)  # a restart that took 50 s: the slot still runs, on time
    assert await env.scheduler().tick() == 1
    assert (await env.executions())[0].input["missed"] is False


async def test_latest_policy_after_a_long_downtime_of_a_daily_cron(env: Env) -> None:
    await env.schedule({"mode": "cron", "cron": "30 2 * * *", "timezone": "America/New_York", "missed": "latest"},
                       next_run_at=datetime(2026, 11, 20, 7, 30, tzinfo=UTC))
    env.clock.now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert await env.scheduler().tick() == 1
    [execution] = await env.executions()
    assert execution.input["scheduled_for"] == "2026-12-04T02:30:00-05:00"


async def test_paused_and_inactive_workflows_start_nothing(env: Env) -> None:
    paused, paused_trigger = await env.schedule(EVERY_10_MIN, name="paused")
    inactive, inactive_trigger = await env.schedule(EVERY_10_MIN, name="inactive")
    async with env.sessions.begin() as session:
        await session.execute(update(Workflow).where(Workflow.id == paused).values(
            paused_until=datetime.now(UTC) + timedelta(days=3650)))
        await session.execute(update(Workflow).where(Workflow.id == inactive).values(active=False))
    env.clock.advance(seconds=1)
    assert await env.scheduler().tick() == 0
    assert await env.executions() == []
    assert (await env.trigger(paused_trigger)).next_run_at == T0  # untouched: it fires when the pause ends


async def test_a_one_time_date_fires_once(env: Env) -> None:
    _, trigger_id = await env.schedule({"mode": "once", "at": "2026-12-04T13:00", "timezone": "Europe/Berlin"})
    env.clock.advance(seconds=1)
    assert await env.scheduler().tick() == 1
    assert (await env.trigger(trigger_id)).next_run_at is None
    env.clock.advance(days=400)
    assert await env.scheduler().tick() == 0
    assert len(await env.executions()) == 1


async def test_a_broken_trigger_config_is_recorded_and_the_others_still_fire(env: Env) -> None:
    _, broken = await env.schedule(EVERY_10_MIN, name="broken")
    async with env.sessions.begin() as session:  # e.g. a stored expression a newer croniter refuses
        await session.execute(update(Trigger).where(Trigger.id == broken).values(
            config={"mode": "cron", "cron": "not cron at all"}))
    await env.schedule(EVERY_10_MIN, name="fine")
    env.clock.advance(seconds=1)
    assert await env.scheduler().tick() == 1
    row = await env.trigger(broken)
    assert row.failures == 1 and "cron" in (row.last_error or "")
    assert row.next_run_at == env.clock.now + timedelta(minutes=1)


async def test_old_slot_rows_are_pruned(env: Env) -> None:
    await env.schedule(EVERY_10_MIN)
    assert await env.scheduler().tick() == 1
    assert await prune_slots(env.sessions, datetime.now(UTC) - KEEP_SLOTS) == 0
    assert await prune_slots(env.sessions, datetime.now(UTC) + timedelta(seconds=1)) == 1


# -- polls ---------------------------------------------------------------------------------------------


async def poll_trigger(env: Env, items: list[dict[str, Any]], interval: float = 60.0) -> tuple[int, int, Path]:
    source = env.tmp / "source.json"
    write_source(source, items)
    workflow_id, trigger_id = await trigger_workflow(
        env.sessions, env.registry, env.owner_id, trigger_type="test_file_poll", next_run_at=T0,
        config={"path": str(source), "interval_seconds": interval})
    return workflow_id, trigger_id, source


async def test_first_poll_takes_a_baseline_then_new_items_start_one_execution_once(env: Env) -> None:
    workflow_id, trigger_id, source = await poll_trigger(env, [{"id": "a"}, {"id": "b"}])
    assert await env.scheduler().tick() == 0  # baseline: the old items do not flood the workflow
    row = await env.trigger(trigger_id)
    assert row.state == {"seen": ["a", "b"]} and row.next_run_at == T0 + timedelta(seconds=60)
    assert row.lease_token is None and row.lease_until is None
    write_source(source, [{"id": "a"}, {"id": "b"}, {"id": "c", "n": 1}, {"id": "d", "n": 2}])
    assert await env.scheduler().tick() == 0  # not due yet
    env.clock.advance(seconds=60)
    assert await env.scheduler().tick() == 1
    [execution] = await env.executions(workflow_id)
    assert execution.trigger == "poll" and execution.input == {"items": [{"id": "c", "n": 1}, {"id": "d", "n": 2}]}
    assert execution.trigger_node == row.node_id
    assert await env.queue.job(str(execution.id)) is not None
    env.clock.advance(seconds=60)
    assert await env.scheduler().tick() == 0  # the same items are not new any more
    assert (await env.trigger(trigger_id)).state == {"seen": ["a", "b", "c", "d"]}


async def test_racing_pollers_poll_once_per_interval(env: Env) -> None:
    workflow_id, trigger_id, source = await poll_trigger(env, [])
    assert await env.scheduler().tick() == 0
    write_source(source, [{"id": "x"}])
    env.clock.advance(seconds=60)
    schedulers = [env.scheduler() for _ in range(4)]
    assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 1
    assert len(await env.executions(workflow_id)) == 1


async def test_a_failing_source_is_backed_off_shown_and_reset_by_the_next_success(env: Env) -> None:
    _, trigger_id, source = await poll_trigger(env, [{"id": "a"}])
    assert await env.scheduler().tick() == 0
    write_source(source, [{"id": "a"}, {"id": "b"}], error="HTTP 503 from the feed")
    delays = []
    for failures in (1, 2, 3):
        env.clock.now = (await env.trigger(trigger_id)).next_run_at or T0
        assert await env.scheduler().tick() == 0
        row = await env.trigger(trigger_id)
        assert row.failures == failures and row.last_error == "NodeError: HTTP 503 from the feed"
        assert row.last_error_at == env.clock.now and row.lease_token is None
        assert row.state == {"seen": ["a"]}  # the cursor did not move
        delays.append(((row.next_run_at or T0) - env.clock.now).total_seconds())
    assert delays == [120.0, 240.0, 480.0] == [backoff(60, n) for n in (1, 2, 3)]
    assert backoff(60, 12) == 3600.0 and backoff(7200, 3) == 7200.0
    write_source(source, [{"id": "a"}, {"id": "b"}])
    env.clock.now = (await env.trigger(trigger_id)).next_run_at or T0
    assert await env.scheduler().tick() == 1  # b was not lost while the source failed
    row = await env.trigger(trigger_id)
    assert (row.failures, row.last_error, row.last_error_at) == (0, None, None)
    assert (await env.executions())[0].input == {"items": [{"id": "b"}]}


async def test_a_source_answering_garbage_is_a_failure_not_a_crash(env: Env) -> None:
    _, trigger_id, source = await poll_trigger(env, [{"id": "a"}])
    assert await env.scheduler().tick() == 0
    write_source(source, [1, 2, 3])  # type: ignore[list-item]
    env.clock.advance(seconds=60)
    assert await env.scheduler().tick() == 0
    row = await env.trigger(trigger_id)
    assert row.failures == 1 and (row.last_error or "").startswith("TypeError:")
    assert await env.executions() == []


async def test_a_live_lease_is_respected_and_an_expired_one_taken_over(env: Env) -> None:
    """A worker that died mid-poll leaves its lease: nobody polls until it runs out, then the poll runs as if the
    dead one had never polled (its state was never committed)."""
    workflow_id, trigger_id, source = await poll_trigger(env, [{"id": "a"}])
    assert await env.scheduler().tick() == 0
    write_source(source, [{"id": "a"}, {"id": "b"}])
    env.clock.advance(seconds=60)
    async with env.sessions.begin() as session:
        await session.execute(update(Trigger).where(Trigger.id == trigger_id).values(
            lease_token="dead-worker", lease_until=env.clock.now.timestamp() + 30))
    assert await env.scheduler().tick() == 0
    assert (await env.trigger(trigger_id)).lease_token == "dead-worker"
    env.clock.advance(seconds=31)
    assert await env.scheduler().tick() == 1
    [execution] = await env.executions(workflow_id)
    assert execution.input == {"items": [{"id": "b"}]}
    assert (await env.trigger(trigger_id)).lease_token is None


async def test_a_poll_cancelled_between_poll_and_commit_loses_and_repeats_nothing(env: Env) -> None:
    workflow_id, trigger_id, source = await poll_trigger(env, [{"id": "a"}])
    assert await env.scheduler().tick() == 0
    write_source(source, [{"id": "a"}, {"id": "b"}], hang=True)
    env.clock.advance(seconds=60)
    tick = asyncio.create_task(env.scheduler().tick())
    marker = Path(f"{source}.polled")
    while not marker.exists():  # the poll has read the source and not answered
        await asyncio.sleep(0.01)
    tick.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tick
    row = await env.trigger(trigger_id)
    assert row.state == {"seen": ["a"]} and row.lease_token is None  # released on the way out, nothing stored
    write_source(source, [{"id": "a"}, {"id": "b"}])
    assert await env.scheduler().tick() == 1
    assert [e.input for e in await env.executions(workflow_id)] == [{"items": [{"id": "b"}]}]


def test_the_poll_timeout_setting_must_be_positive(tmp_path: Path) -> None:
    from engine.settings import load_settings

    base = {"PATCHWIRE_DATA_DIR": str(tmp_path), "PATCHWIRE_SECRET_KEY": "k" * 40}
    assert load_settings(base).poll_timeout == 60.0
    assert load_settings({**base, "PATCHWIRE_POLL_TIMEOUT": "2.5"}).poll_timeout == 2.5
    with pytest.raises(ValueError, match="PATCHWIRE_POLL_TIMEOUT must be more than 0, not 0"):
        load_settings({**base, "PATCHWIRE_POLL_TIMEOUT": "0"})
