"""The execution lease: one job runs an execution at a time, and a poison pill ends ``crashed``.

These call the real ``run_execution`` job on a real database (SQLite and PostgreSQL), the way a
worker does, with another job's lease written into the row the way that job would have written it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import worker as worker_module
from engine.database import make_engine, make_sessionmaker
from engine.events import MemorySink
from engine.migrate import upgrade_async
from engine.models import Execution, ExecutionEvent, NodeRun, Workflow
from engine.worker import BUSY, LEASE, LEASE_LOST, MAX_INTERRUPTIONS, WorkerServices, run_execution
from nodes import registry
from tests.factories import owner_workflow_version


@dataclass
class Setup:
    sessions: async_sessionmaker[AsyncSession]
    ctx: dict[str, Any]
    version_id: int
    workflow_id: int
    owner_id: int

    async def execution(self, **fields: Any) -> int:
        async with self.sessions.begin() as db:
            execution = Execution(workflow_id=self.workflow_id, owner_id=self.owner_id, version_id=self.version_id,
                                  **{"status": "queued", **fields})
            db.add(execution)
            await db.flush()
            return execution.id

    async def row(self, execution_id: int) -> Execution:
        async with self.sessions() as db:
            return await db.get_one(Execution, execution_id)

    async def start_until_paused(self) -> tuple[int, asyncio.Task[str]]:
        """A new execution, its job running in a task, polled until its Delay node runs."""
        execution_id = await self.execution()
        job = asyncio.create_task(run_execution(self.ctx, execution_id=execution_id))
        deadline = time.monotonic() + 10
        while ("Pause", "running") not in await self.node_statuses(execution_id):
            assert time.monotonic() < deadline and not job.done(), "the Delay node never started"
            await asyncio.sleep(0.02)
        return execution_id, job

    async def node_statuses(self, execution_id: int) -> list[tuple[str, str]]:
        async with self.sessions() as db:
            rows = await db.execute(select(NodeRun.node_name, NodeRun.status).where(NodeRun.execution_id == execution_id)
                                    .order_by(NodeRun.id))
            return [tuple(r) for r in rows.all()]


def graph(seconds: float) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "manual_trigger", "name": "Start"},
                      {"id": "d", "type": "delay", "name": "Pause", "config": {"seconds": seconds}}],
            "connections": [{"source": "t", "target": "d"}]}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as db:
        version = await owner_workflow_version(db, email="lease@example.com", name="Lease", graph=graph(1.5))
        ids = (version.id, version.workflow_id, (await db.get_one(Workflow, version.workflow_id)).owner_id)
    async with httpx.AsyncClient() as http:
        services = WorkerServices(sessions=sessions, sink=MemorySink(), registry=registry, http=http)
        yield Setup(sessions, {"services": services}, *ids)
        await services.store.close()
    await engine.dispose()


async def test_a_second_job_does_not_run_an_execution_another_live_job_holds(setup: Setup) -> None:
    execution_id = await setup.execution(status="running", lease_token="a" * 32, lease_until=time.time() + 60)
    assert await run_execution(setup.ctx, execution_id=execution_id) == BUSY
    row = await setup.row(execution_id)
    assert (row.status, row.lease_token, row.interruptions) == ("running", "a" * 32, 0)
    assert await setup.node_statuses(execution_id) == [], "no node ran"


async def test_two_jobs_at_once_run_the_execution_once(setup: Setup) -> None:
    execution_id = await setup.execution()
    first, second = await asyncio.gather(run_execution(setup.ctx, execution_id=execution_id),
                                         run_execution(setup.ctx, execution_id=execution_id))
    assert sorted([first, second]) == sorted([BUSY, "succeeded"])
    assert await setup.node_statuses(execution_id) == [("Start", "succeeded"), ("Pause", "succeeded")], "one row each"


async def test_an_expired_lease_is_taken_over_and_counted_as_an_interruption(setup: Setup) -> None:
    execution_id = await setup.execution(status="running", lease_token="dead" * 8, lease_until=time.time() - 1)
    assert await run_execution(setup.ctx, execution_id=execution_id) == "succeeded"
    row = await setup.row(execution_id)
    assert (row.status, row.interruptions) == ("succeeded", 1)


async def test_a_run_that_loses_its_lease_stops(setup: Setup) -> None:
    execution_id, job = await setup.start_until_paused()
    async with setup.sessions.begin() as db:  # what another job's _take_lease does once ours has expired
        await db.execute(update(Execution).where(Execution.id == execution_id)
                         .values(lease_token="b" * 32, lease_until=time.time() + LEASE))
    assert await asyncio.wait_for(job, timeout=5) == LEASE_LOST
    assert ("Pause", "succeeded") not in await setup.node_statuses(execution_id), "the Delay was cancelled"
    assert (await setup.row(execution_id)).lease_token == "b" * 32, "the new holder keeps its lease"


async def test_a_cancelled_run_hands_its_lease_back(setup: Setup) -> None:
    execution_id, job = await setup.start_until_paused()
    assert (await setup.row(execution_id)).lease_token is not None
    job.cancel()  # what SAQ does on shutdown after the grace period
    with pytest.raises(asyncio.CancelledError):
        await job
    row = await setup.row(execution_id)
    assert (row.status, row.lease_token) == ("running", None), "the next job may start at once"
    assert await run_execution(setup.ctx, execution_id=execution_id) == "succeeded"
    assert (await setup.row(execution_id)).interruptions == 0, "handed back, not interrupted by a death"


async def test_a_poison_pill_ends_crashed_instead_of_killing_workers_forever(setup: Setup) -> None:
    execution_id = await setup.execution(status="running", interruptions=MAX_INTERRUPTIONS, lease_token="dead" * 8,
                                         lease_until=time.time() - 1)  # its last job died holding the lease
    assert await run_execution(setup.ctx, execution_id=execution_id) == "crashed"
    row = await setup.row(execution_id)
    assert row.status == "crashed" and row.interruptions == MAX_INTERRUPTIONS + 1
    assert row.error is not None and f"interrupted {MAX_INTERRUPTIONS + 1} times" in row.error["message"]
    assert await setup.node_statuses(execution_id) == [], "no node ran"
    assert worker_module.MAX_INTERRUPTIONS >= 3, "a few crashes are survived"


async def test_a_poison_pill_that_had_run_numbers_its_last_event_on(setup: Setup) -> None:
    execution_id = await setup.execution(status="running", interruptions=MAX_INTERRUPTIONS, lease_token="dead" * 8,
                                         lease_until=time.time() - 1)
    async with setup.sessions.begin() as db:  # what its earlier jobs stored before they died
        db.add_all(ExecutionEvent(execution_id=execution_id, seq=seq, data={"type": "node.started"})
                   for seq in (1, 2, 3))
    assert await run_execution(setup.ctx, execution_id=execution_id) == "crashed"
    assert (await setup.row(execution_id)).status == "crashed"
    async with setup.sessions() as db:
        stored = list(await db.scalars(select(ExecutionEvent.seq).where(ExecutionEvent.execution_id == execution_id)
                                       .order_by(ExecutionEvent.seq)))
    assert stored == [1, 2, 3, 4], "workflow.finished took the next seq, not one already stored"


async def test_a_queued_or_released_execution_is_not_counted_as_interrupted(setup: Setup) -> None:
    execution_id = await setup.execution(status="running")  # e.g. an engine error: the lease was released
    assert await run_execution(setup.ctx, execution_id=execution_id) == "succeeded"
    assert (await setup.row(execution_id)).interruptions == 0


async def test_the_reconciler_ends_sub_workflow_executions_whose_caller_stopped(setup: Setup) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.worker import ORPHANED_SUB_WORKFLOW, _end_orphaned_sub_workflows

    old = datetime.now(UTC) - timedelta(minutes=5)
    orphan = await setup.execution(status="running", trigger="sub_workflow", created_at=old, lease_token="c" * 32,
                                   lease_until=time.time() - 1)
    released = await setup.execution(status="running", trigger="sub_workflow", created_at=old)
    alive = await setup.execution(status="running", trigger="sub_workflow", created_at=old, lease_token="d" * 32,
                                  lease_until=time.time() + 60)
    young = await setup.execution(status="running", trigger="sub_workflow")
    top_level = await setup.execution(status="running", created_at=old)
    ended = await _end_orphaned_sub_workflows(setup.sessions, datetime.now(UTC) - timedelta(seconds=10))
    assert sorted(ended) == sorted([orphan, released])
    row = await setup.row(orphan)
    assert row.status == "crashed" and row.finished_at is not None and row.error["message"] == ORPHANED_SUB_WORKFLOW
    for untouched in (alive, young, top_level):
        assert (await setup.row(untouched)).status == "running"


async def test_only_a_job_that_finds_something_stored_reads_the_node_runs_first(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    store = setup.ctx["services"].store
    reads: list[int] = []
    resume_state = store.resume_state

    async def counted(execution_id: int) -> Any:
        reads.append(execution_id)
        return await resume_state(execution_id)

    monkeypatch.setattr(store, "resume_state", counted)
    fresh = await setup.execution()
    copied = await setup.execution()  # a retry from the failed node: settled runs copied over, no events
    async with setup.sessions.begin() as db:
        db.add(NodeRun(execution_id=copied, node_id="t", node_name="Start", node_type="manual_trigger",
                       status="succeeded", input=[{}], output={"main": [{"copied": True}]}))
    taken_over = await setup.execution(status="running", lease_token="dead" * 8, lease_until=time.time() - 1)
    for execution_id in (fresh, copied, taken_over):
        assert await run_execution(setup.ctx, execution_id=execution_id) == "succeeded"
    assert reads == [copied, taken_over], "a fresh claim starts from nothing; the others resume"
    assert await setup.node_statuses(copied) == [("Start", "succeeded"), ("Pause", "succeeded")], "Start not rerun"
    async with setup.sessions() as db:
        pause_input = await db.scalar(select(NodeRun.input).where(NodeRun.execution_id == copied,
                                                                  NodeRun.node_id == "d"))
    assert pause_input == [{"copied": True}], "the copied output was passed on"
