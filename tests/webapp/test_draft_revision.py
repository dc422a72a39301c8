"""The draft revision, on real SQLite and PostgreSQL: every change of a workflow's nodes or connections
bumps it, a start pins a new version only for a revision it has not pinned yet, and an unchanged
draft reuses its version without loading, validating or comparing the graph again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.errors import GraphError
from engine.executions import create_execution, graph_to_json, load_graph
from engine.graph import ConnectionSpec, NodeSpec, Position, WorkflowDocument
from engine.migrate import upgrade_async
from engine.models import Execution, User, Workflow, WorkflowVersion
from nodes import registry
from webapp.workflows.services import WorkflowService

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    await engine.dispose()


DOCUMENT = WorkflowDocument(
    name="Draft",
    nodes=[NodeSpec(id="t", type="manual_trigger", name="Trigger", position=Position(0, 0)),
           NodeSpec(id="a", type="set", name="A", config={"fields": [{"name": "x", "value": "1"}]},
                    position=Position(200, 0)),
           NodeSpec(id="b", type="set", name="B", position=Position(200, 200))],
    connections=[ConnectionSpec(source="t", target="a"), ConnectionSpec(source="t", target="b")],
)


async def setup(sessions: Sessions, document: WorkflowDocument = DOCUMENT) -> tuple[int, int]:
    """An owner and a workflow imported from ``document``: (owner id, workflow id)."""
    async with sessions() as db:
        user = User(email=f"draft{time.monotonic_ns()}@example.com", password_hash="x")
        db.add(user)
        await db.commit()
        workflow = await WorkflowService(db, user.id, registry).import_document(document)
        return user.id, workflow.id


async def node_ids(db: AsyncSession, workflow_id: int) -> dict[str, str]:
    return {n.name: n.id for n in (await load_graph(db, workflow_id)).nodes}


async def revision(sessions: Sessions, workflow_id: int) -> int:
    async with sessions() as db:
        return await db.scalar(select(Workflow.draft_revision).where(Workflow.id == workflow_id))


async def start(sessions: Sessions, workflow_id: int) -> Execution:
    async with sessions() as db:
        execution = await create_execution(db, await db.get_one(Workflow, workflow_id), registry)
        await db.commit()
        return execution


async def versions(sessions: Sessions, workflow_id: int) -> list[WorkflowVersion]:
    async with sessions() as db:
        return list(await db.scalars(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
                                     .order_by(WorkflowVersion.number)))


async def draft(sessions: Sessions, workflow_id: int) -> dict[str, Any]:
    async with sessions() as db:
        return graph_to_json(await load_graph(db, workflow_id))


Edit = Callable[[WorkflowService, int, dict[str, str]], Awaitable[Any]]
SETTINGS = {"retry": {"max_attempts": 3}}
EDITS: dict[str, Edit] = {
    "add node": lambda s, w, ids: s.add_node(w, "set", 400, 0),
    "move node": lambda s, w, ids: s.move_node(w, ids["A"], 10, 20),
    "reconfigure node": lambda s, w, ids: s.update_node(w, ids["A"], "A", {"fields": [{"name": "x", "value": "2"}]}),
    "rename node": lambda s, w, ids: s.update_node(w, ids["A"], "A renamed", {"fields": [{"name": "x", "value": "1"}]}),
    "node settings": lambda s, w, ids: s.update_node(w, ids["A"], "A", {"fields": [{"name": "x", "value": "1"}]},
                                                     SETTINGS),
    "delete node": lambda s, w, ids: s.delete_node(w, ids["B"]),
    "add connection": lambda s, w, ids: s.add_connection(w, ids["A"], "main", ids["B"], "main"),
    "delete connection": lambda s, w, ids: s.delete_connection(w, ids["Trigger"], "main", ids["B"], "main"),
}


@pytest.mark.parametrize("edit", EDITS)
async def test_every_change_of_the_draft_bumps_its_revision_and_the_next_start_pins_the_edited_graph(
        sessions: Sessions, edit: str) -> None:
    owner_id, workflow_id = await setup(sessions)
    first = await start(sessions, workflow_id)
    before, graph_before = await revision(sessions, workflow_id), await draft(sessions, workflow_id)
    async with sessions() as db:
        await EDITS[edit](WorkflowService(db, owner_id, registry), workflow_id, await node_ids(db, workflow_id))
    assert await revision(sessions, workflow_id) == before + 1
    edited = await draft(sessions, workflow_id)
    assert edited != graph_before

    second = await start(sessions, workflow_id)
    assert second.version_id != first.version_id
    old, new = await versions(sessions, workflow_id)
    assert (old.id, new.id) == (first.version_id, second.version_id)
    assert new.graph == edited and new.number == 2 and new.draft_revision == before + 1
    assert old.graph == graph_before


async def test_an_import_starts_with_a_bumped_revision(sessions: Sessions) -> None:
    _, workflow_id = await setup(sessions)
    assert await revision(sessions, workflow_id) == 1


async def test_an_unchanged_draft_reuses_its_version_without_a_new_row(sessions: Sessions) -> None:
    owner_id, workflow_id = await setup(sessions)
    starts = [await start(sessions, workflow_id) for _ in range(3)]
    (version,) = await versions(sessions, workflow_id)
    assert {e.version_id for e in starts} == {version.id}
    assert version.draft_revision == await revision(sessions, workflow_id)
    assert len({e.id for e in starts}) == 3 and all(e.status == "queued" and e.input == {} for e in starts)

    # saved unchanged: a new revision whose graph equals the version's, which is reused and relabelled
    async with sessions() as db:
        ids = await node_ids(db, workflow_id)
        await WorkflowService(db, owner_id, registry).move_node(workflow_id, ids["A"], 200, 0)
    again = await start(sessions, workflow_id)
    (relabelled,) = await versions(sessions, workflow_id)
    assert again.version_id == version.id and relabelled.draft_revision == await revision(sessions, workflow_id)


async def test_the_returned_execution_is_the_stored_row_and_belongs_to_the_session(sessions: Sessions) -> None:
    owner_id, workflow_id = await setup(sessions)
    for _ in range(2):  # the first pins a version, the second reuses it (the one-statement path)
        async with sessions() as db:
            execution = await create_execution(db, await db.get_one(Workflow, workflow_id), registry,
                                               input={"n": 1}, trigger="cli")
            execution.status = "running"  # callers change it in the same session (sub-workflows do)
            await db.commit()
        async with sessions() as db:
            stored = await db.get_one(Execution, execution.id)
        assert (stored.status, stored.trigger, stored.input, stored.owner_id) == ("running", "cli", {"n": 1}, owner_id)
        assert stored.created_at == execution.created_at and execution.node_runs == []


async def test_a_draft_made_invalid_by_an_edit_is_refused_at_start(sessions: Sessions) -> None:
    owner_id, workflow_id = await setup(sessions)
    await start(sessions, workflow_id)
    async with sessions() as db:
        ids = await node_ids(db, workflow_id)
        await WorkflowService(db, owner_id, registry).delete_node(workflow_id, ids["Trigger"])
    with pytest.raises(GraphError, match="trigger"):
        await start(sessions, workflow_id)
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(Execution)) == 1
    assert len(await versions(sessions, workflow_id)) == 1


async def test_an_unchanged_caller_is_still_refused_when_its_callee_starts_calling_it_back(sessions: Sessions) -> None:
    owner_id, callee = await setup(sessions)
    call = NodeSpec(id="c", type="sub_workflow", name="Call", config={"workflow_id": callee}, position=Position(400, 0))
    async with sessions() as db:
        caller = (await WorkflowService(db, owner_id, registry).import_document(WorkflowDocument(
            name="Caller", nodes=[*DOCUMENT.nodes, call],
            connections=[*DOCUMENT.connections, ConnectionSpec(source="a", target="c")]))).id
    await start(sessions, caller)
    await start(sessions, caller)  # its version is reused
    unchanged = await revision(sessions, caller)
    async with sessions() as db:
        service = WorkflowService(db, owner_id, registry)
        back = await service.add_node(callee, "sub_workflow", 400, 0)
        await service.update_node(callee, back.id, "Back", {"workflow_id": caller})
    assert await revision(sessions, caller) == unchanged
    with pytest.raises(GraphError, match="would call itself"):
        await start(sessions, caller)


async def _wait_until_blocked(db: AsyncSession) -> None:
    """PostgreSQL: until a session waits for a lock (the second start, on the first one's new version).
    SQLite needs no wait: the second start's first statement waits for the first one's write lock."""
    if db.bind.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + 10
    while not await db.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
        assert time.monotonic() < deadline, "the second start never waited for the first"
        await db.rollback()  # a fresh snapshot of pg_locks on the next read
        await asyncio.sleep(0.01)  # between polls of the condition


async def test_two_concurrent_starts_of_the_same_draft_pin_one_version(sessions: Sessions) -> None:
    _, workflow_id = await setup(sessions)
    async with sessions() as first, sessions() as second, sessions() as observer:
        one = await create_execution(first, await first.get_one(Workflow, workflow_id), registry)
        workflow = await second.get_one(Workflow, workflow_id)
        await second.commit()  # the second start reads nothing before it races
        other = asyncio.create_task(create_execution(second, workflow, registry))
        await _wait_until_blocked(observer)
        await first.commit()
        two = await other
        await second.commit()
    (version,) = await versions(sessions, workflow_id)
    assert one.version_id == two.version_id == version.id and one.id != two.id
