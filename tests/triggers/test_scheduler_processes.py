"""The scheduler across real processes: several workers racing for the same slots, a worker SIGKILLed around a
slot, and a worker SIGKILLed between a poll and its commit — on the embedded profile (``patchwire serve``
processes sharing the SQLite database and queue) and on PostgreSQL (``patchwire worker`` processes, PostgreSQL
queue). Real time, no injected clock: the slots are due a couple of seconds after the workers are ready."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.models import TERMINAL_STATUSES, Execution, Trigger, User
from nodes import registry
from tests.durability.harness import ROOT, Deployment, Rows, WorkerProcess
from tests.triggers.support import FilePoll, trigger_workflow, write_source

pytestmark = pytest.mark.timeout(240)
EVERY_10_S = {"mode": "interval", "every": 10, "unit": "seconds"}


class TriggerDeployment(Deployment):
    """A deployment whose processes have the test poll node type registered."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.env["PYTHONPATH"] = str(ROOT)
        self.env["PATCHWIRE_POLL_TIMEOUT"] = "2"

    def worker_argv(self) -> tuple[list[str], str]:
        argv, ready = super().worker_argv()
        return [sys.executable, "-m", "tests.triggers.file_poll_cli", *argv[1:]], ready


@dataclass
class Site:
    deployment: TriggerDeployment
    rows: Rows
    owner_id: int


PROFILES = ["embedded", pytest.param("postgres", marks=pytest.mark.postgres)]
WITH_REDIS = [*PROFILES, pytest.param("redis", marks=[pytest.mark.postgres, pytest.mark.redis])]


@pytest.fixture(params=PROFILES)
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    """A deployment of the profile: embedded (SQLite database and queue), postgres (PostgreSQL database and
    queue), redis (PostgreSQL database, Redis queue and channels)."""
    if request.param == "embedded":
        data = tmp_path / "data"
        database_url, queue_url = f"sqlite:///{data / 'patchwire.db'}", f"sqlite:///{data / 'queue.db'}"
    else:
        database_url = queue_url = request.getfixturevalue("postgres_url")
    if request.param == "redis":
        queue_url = request.getfixturevalue("redis_url")
    deployment = TriggerDeployment(request.param, tmp_path, database_url, queue_url)
    deployment.cli("migrate")
    deployment.cli("createuser", "owner@example.com", "--password-stdin", stdin="a long enough password\n")
    rows = Rows(database_url)
    async with rows.sessions() as session:
        owner_id = (await session.scalars(select(User.id))).one()
    registry.register(FilePoll)  # the test process publishes workflows that use it
    try:
        yield Site(deployment, rows, owner_id)
    finally:
        registry.unregister(FilePoll)
        await rows.close()


async def start_workers(site: Site, count: int, first_life: int = 0) -> list[WorkerProcess]:
    workers = [WorkerProcess(site.deployment, first_life + i) for i in range(count)]
    await asyncio.gather(*(w.wait_ready() for w in workers))
    return workers


def stop_all(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop()


async def schedules(site: Site, count: int, slot: datetime) -> list[int]:
    return [(await trigger_workflow(site.rows.sessions, registry, site.owner_id, trigger_type="schedule_trigger",
                                    config=EVERY_10_S, next_run_at=slot, name=f"every 10 s #{i}"))[0]
            for i in range(count)]


async def slot_executions(site: Site, workflows: list[int], slot: datetime, *, timeout: float = 90) -> list[Execution]:
    """Wait until every workflow has a finished execution for ``slot``; all executions of those workflows."""
    stamp = slot.isoformat().replace("+00:00", "Z")
    deadline = time.monotonic() + timeout
    while True:
        async with site.rows.sessions() as session:
            found = list(await session.scalars(select(Execution).where(Execution.workflow_id.in_(workflows))))
        done = {e.workflow_id for e in found if e.input.get("timestamp") == stamp and e.status in TERMINAL_STATUSES}
        if done == set(workflows):
            return found
        assert time.monotonic() < deadline, f"after {timeout} s only {len(done)} of {len(workflows)} slots ran"
        await asyncio.sleep(0.1)


def soon(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(time.time() + seconds), UTC)


def once_per_slot(executions: list[Execution]) -> Counter[tuple[int, str]]:
    return Counter((e.workflow_id, e.input["timestamp"]) for e in executions)


@pytest.mark.parametrize("site", WITH_REDIS, indirect=True)
async def test_three_workers_race_for_the_same_slots_and_each_runs_once(site: Site) -> None:
    workers = await start_workers(site, 3)
    try:
        slot = soon(2.5)
        workflows = await schedules(site, 30, slot)  # thirty slots due at the same second
        executions = await slot_executions(site, workflows, slot)
    finally:
        stop_all(workers)
    counts = once_per_slot(executions)
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}
    first = [e for e in executions if e.input["timestamp"] == slot.isoformat().replace("+00:00", "Z")]
    assert len(first) == 30 and {e.status for e in first} == {"succeeded"}
    assert {e.trigger for e in executions} == {"schedule"}


async def test_a_worker_killed_around_a_slot_restarts_and_the_slot_runs_once(site: Site) -> None:
    [worker] = await start_workers(site, 1)
    slot = soon(2.5)
    workflows = await schedules(site, 10, slot)
    await asyncio.sleep(max(0.0, slot.timestamp() - time.time() + random.uniform(-0.05, 0.3)))
    worker.kill()
    [worker] = await start_workers(site, 1, first_life=1)
    try:
        executions = await slot_executions(site, workflows, slot)
    finally:
        stop_all([worker])
    counts = once_per_slot(executions)
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}
    assert {e.status for e in executions} == {"succeeded"}


async def test_a_worker_killed_between_its_poll_and_the_commit_loses_and_repeats_nothing(site: Site,
                                                                                         tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    write_source(source, [{"id": "a"}])
    workflow_id, trigger_id = await trigger_workflow(
        site.rows.sessions, registry, site.owner_id, trigger_type="test_file_poll",
        config={"path": str(source), "interval_seconds": 1}, next_run_at=datetime.now(UTC))
    [worker] = await start_workers(site, 1)
    await until(site, trigger_id, lambda t: t.state is not None)  # the baseline
    write_source(source, [{"id": "a"}, {"id": "b"}], hang=True)
    marker = Path(f"{source}.polled")
    deadline = time.monotonic() + 30
    while not marker.exists():  # the poll read the new item and has not committed
        assert time.monotonic() < deadline, "the poll never ran"
        await asyncio.sleep(0.02)
    worker.kill()
    assert (await until(site, trigger_id, lambda t: True)).state == {"seen": ["a"]}
    write_source(source, [{"id": "a"}, {"id": "b"}])
    [worker] = await start_workers(site, 1, first_life=1)
    try:
        row = await until(site, trigger_id, lambda t: t.state == {"seen": ["a", "b"]}, timeout=60)
        polled_at = row.last_run_at
        await until(site, trigger_id, lambda t: t.last_run_at != polled_at)  # and one more poll after it
    finally:
        stop_all([worker])
    async with site.rows.sessions() as session:
        executions = list(await session.scalars(select(Execution).where(Execution.workflow_id == workflow_id)))
    assert [(e.trigger, e.input) for e in executions] == [("poll", {"items": [{"id": "b"}]})]


async def until(site: Site, trigger_id: int, condition, timeout: float = 30) -> Trigger:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        async with site.rows.sessions() as session:
            row = await session.get_one(Trigger, trigger_id)
        if condition(row):
            return row
        assert time.monotonic() < deadline, f"trigger {trigger_id} never got there: {row.state} {row.last_error}"
        await asyncio.sleep(0.05)

