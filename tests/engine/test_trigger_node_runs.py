"""Trigger-node runs through the real ``run_execution`` job on SQLite and PostgreSQL: an execution that records
the trigger node that fired starts only that node (the workflow's other trigger nodes, and what only they feed,
are skipped); a poll's execution starts its trigger node with the new items of ``input["items"]``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.events import MemorySink
from engine.executions import MANUAL_TRIGGERS, create_retry
from engine.migrate import upgrade_async
from engine.models import Execution, NodeRun, Workflow
from engine.worker import WorkerServices, run_execution
from tests.engine.trigger_types import registry
from tests.factories import owner_workflow_version

# manual ─→ only_manual
#    └──┐
# hook ─┼→ shared
# poll ─┘
GRAPH = {
    "nodes": [{"id": "manual", "type": "manual_trigger", "name": "Manual"},
              {"id": "hook", "type": "test_hook", "name": "Hook"},
              {"id": "poll", "type": "test_poll", "name": "Poll"},
              {"id": "only_manual", "type": "set", "name": "Only manual", "config": {"fields": []}},
              {"id": "shared", "type": "set", "name": "Shared", "config": {"fields": []}}],
    "connections": [{"source": "manual", "target": "only_manual"}, {"source": "manual", "target": "shared"},
                    {"source": "hook", "target": "shared"}, {"source": "poll", "target": "shared"}],
}


@dataclass
class Setup:
    sessions: async_sessionmaker[AsyncSession]
    ctx: dict[str, Any]
    workflow_id: int
    owner_id: int
    version_id: int

    async def run(self, *, trigger: str, input: dict[str, Any], trigger_node: str | None) -> Execution:
        async with self.sessions.begin() as db:
            execution = Execution(workflow_id=self.workflow_id, owner_id=self.owner_id, version_id=self.version_id,
                                  status="queued", trigger=trigger, input=input, trigger_node=trigger_node)
            db.add(execution)
            await db.flush()
            execution_id = execution.id
        await run_execution(self.ctx, execution_id=execution_id)
        async with self.sessions() as db:
            return await db.get_one(Execution, execution_id)

    async def runs(self, execution_id: int) -> dict[str, NodeRun]:
        async with self.sessions() as db:
            rows = await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id).order_by(NodeRun.id))
            return {row.node_id: row for row in rows}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as db:
        version = await owner_workflow_version(db, email="o@example.com", graph=GRAPH)
        ids = version.id, version.workflow_id
        owner_id = (await db.get_one(Workflow, version.workflow_id)).owner_id
    async with httpx.AsyncClient() as http:
        services = WorkerServices(sessions=sessions, sink=MemorySink(), registry=registry, http=http)
        yield Setup(sessions, {"services": services}, ids[1], owner_id, ids[0])
        await services.store.close()
    await engine.dispose()


def statuses(runs: dict[str, NodeRun]) -> dict[str, str]:
    return {node_id: run.status for node_id, run in runs.items()}


async def test_only_the_trigger_node_that_fired_starts_and_what_only_the_others_feed_is_skipped(setup: Setup) -> None:
    execution = await setup.run(trigger="webhook", input={"body": {"n": 1}}, trigger_node="hook")
    assert execution.status == "succeeded", execution.error
    runs = await setup.runs(execution.id)
    assert statuses(runs) == {"hook": "succeeded", "manual": "skipped", "poll": "skipped",
                              "only_manual": "skipped", "shared": "succeeded"}
    assert runs["shared"].input == [{"body": {"n": 1}}]  # once: from the hook only
    assert execution.output == {"Shared": [{"body": {"n": 1}}]}


async def test_without_a_trigger_node_every_trigger_node_starts_as_before(setup: Setup) -> None:
    execution = await setup.run(trigger="manual", input={"n": 2}, trigger_node=None)
    assert execution.status == "succeeded", execution.error
    runs = await setup.runs(execution.id)
    assert statuses(runs) == {node: "succeeded" for node in ("manual", "hook", "poll", "only_manual", "shared")}
    assert runs["shared"].input == [{"n": 2}] * 3


async def test_a_poll_execution_starts_its_trigger_node_with_the_new_items(setup: Setup) -> None:
    items = [{"id": "a", "title": "first"}, {"id": "b", "title": "second"}]
    execution = await setup.run(trigger="poll", input={"items": items}, trigger_node="poll")
    assert execution.status == "succeeded", execution.error
    runs = await setup.runs(execution.id)
    assert statuses(runs) == {"poll": "succeeded", "manual": "skipped", "hook": "skipped",
                              "only_manual": "skipped", "shared": "succeeded"}
    assert runs["poll"].output == {"main": items}
    assert execution.output == {"Shared": items}  # one execution, many items


async def test_items_in_a_webhook_s_input_are_data_not_start_items(setup: Setup) -> None:
    execution = await setup.run(trigger="webhook", input={"items": [{"x": 1}, {"x": 2}]}, trigger_node="hook")
    assert execution.status == "succeeded", execution.error
    assert execution.output == {"Shared": [{"items": [{"x": 1}, {"x": 2}]}]}


async def test_a_retried_poll_execution_keeps_its_trigger_node_and_items(setup: Setup) -> None:
    items = [{"id": "c"}]
    first = await setup.run(trigger="poll", input={"items": items}, trigger_node="poll")
    async with setup.sessions.begin() as db:  # as if it had failed: the retry copies what it needs
        original = await db.get_one(Execution, first.id)
        original.status = "failed"
        await db.flush()
        retry = await create_retry(db, original, from_failed_node=False)
        retry_id = retry.id
        assert (retry.trigger, retry.trigger_node) == ("retry", "poll")
    await run_execution(setup.ctx, execution_id=retry_id)
    runs = await setup.runs(retry_id)
    assert statuses(runs)["hook"] == "skipped" and runs["poll"].output == {"main": items}
    assert runs["shared"].input == items


def test_replay_and_listen_are_started_by_a_person() -> None:
    assert {"replay", "listen"} <= set(MANUAL_TRIGGERS)
