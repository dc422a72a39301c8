"""Activation (engine/triggers/activation.py) on SQLite and PostgreSQL: activating validates and publishes
the draft and makes one ``triggers`` row per automatic trigger node of the published version; publishing
again while active keeps the rows of unchanged nodes (their state) and resets changed ones; deactivating
deletes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.executions import publish, published_version_id, touch_draft
from engine.models import Connection, Node, Trigger, User, Workflow, WorkflowVersion
from engine.triggers import NO_TRIGGER_MESSAGE, ActivationError, activate, deactivate, sync_triggers
from tests.engine.trigger_types import registry

NOW = datetime(2026, 3, 7, 10, 2, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


def spec(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "config": config}


async def make_workflow(sessions: Sessions, nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> int:
    async with sessions.begin() as db:
        user = User(email="owner@example.com", password_hash="x")
        db.add(user)
        await db.flush()
        workflow = Workflow(owner_id=user.id, name="w")
        db.add(workflow)
        await db.flush()
        await set_draft(db, workflow.id, nodes, edges)
        return workflow.id


async def set_draft(db: AsyncSession, workflow_id: int, nodes: list[dict[str, Any]],
                    edges: list[tuple[str, str]]) -> None:
    """Replace the draft's nodes and connections (as the editor's saves do, one revision more)."""
    for old in await db.scalars(select(Node).where(Node.workflow_id == workflow_id)):
        await db.delete(old)
    await db.flush()
    for n in nodes:
        db.add(Node(id=f"{workflow_id}-{n['id']}", workflow_id=workflow_id, type_name=n["type"], name=n["id"],
                    config=n["config"]))
    await db.flush()
    for a, b in edges:
        db.add(Connection(workflow_id=workflow_id, source_node_id=f"{workflow_id}-{a}", source_port="main",
                          target_node_id=f"{workflow_id}-{b}", target_port="main"))
    await touch_draft(db, workflow_id)
    await db.flush()


async def triggers(sessions: Sessions, workflow_id: int) -> dict[str, Trigger]:
    async with sessions() as db:
        rows = await db.scalars(select(Trigger).where(Trigger.workflow_id == workflow_id))
        return {row.node_id.split("-", 1)[1]: row for row in rows}


ALL_KINDS = [spec("hook", "test_hook"), spec("every", "test_every", minutes=15), spec("poll", "test_poll"),
             spec("set", "set", fields=[])]
ALL_EDGES = [("hook", "set"), ("every", "set"), ("poll", "set")]


async def test_activating_publishes_the_draft_and_starts_one_trigger_per_automatic_trigger_node(
        migrated_db: tuple[str, Sessions]) -> None:
    _, sessions = migrated_db
    workflow_id = await make_workflow(sessions, [*ALL_KINDS, spec("manual", "manual_trigger")],
                                      [*ALL_EDGES, ("manual", "set")])
    async with sessions.begin() as db:
        workflow = await db.get_one(Workflow, workflow_id)
        version = await activate(db, workflow, registry, author_id=workflow.owner_id, now=NOW)
    async with sessions() as db:
        workflow = await db.get_one(Workflow, workflow_id)
        assert workflow.active
        assert await published_version_id(db, workflow_id) == version.id
        assert (await db.get_one(WorkflowVersion, version.id)).published_by_id == workflow.owner_id
    rows = await triggers(sessions, workflow_id)
    assert sorted(rows) == ["every", "hook", "poll"]  # the manual trigger is not an automatic one
    assert {name: (r.kind, r.node_type, r.version_id, r.state, r.owner_id) for name, r in rows.items()} == {
        "hook": ("webhook", "test_hook", version.id, None, workflow.owner_id),
        "every": ("schedule", "test_every", version.id, None, workflow.owner_id),
        "poll": ("poll", "test_poll", version.id, None, workflow.owner_id)}
    assert rows["hook"].next_run_at is None
    assert rows["every"].next_run_at == datetime(2026, 3, 7, 10, 15, tzinfo=UTC)  # its next slot after now
    assert rows["poll"].next_run_at == NOW  # the first poll (the baseline) is due at once
    assert rows["every"].config == {"minutes": 15}


async def test_a_workflow_without_an_automatic_trigger_is_refused_and_nothing_is_published(
        migrated_db: tuple[str, Sessions]) -> None:
    _, sessions = migrated_db
    workflow_id = await make_workflow(sessions, [spec("manual", "manual_trigger"), spec("set", "set", fields=[])],
                                      [("manual", "set")])
    async with sessions.begin() as db:
        workflow = await db.get_one(Workflow, workflow_id)
        with pytest.raises(ActivationError) as refused:
            await activate(db, workflow, registry, author_id=None, now=NOW)
        assert refused.value.problems == [NO_TRIGGER_MESSAGE]
        assert not workflow.active
        assert await published_version_id(db, workflow_id) is None
    assert await triggers(sessions, workflow_id) == {}


async def test_an_invalid_draft_is_refused_with_each_problem(migrated_db: tuple[str, Sessions]) -> None:
    _, sessions = migrated_db
    workflow_id = await make_workflow(sessions, [spec("every", "test_every", minutes=0), spec("gone", "no_such_type")],
                                      [("every", "gone")])
    async with sessions.begin() as db:
        workflow = await db.get_one(Workflow, workflow_id)
        with pytest.raises(ActivationError) as refused:
            await activate(db, workflow, registry, author_id=None, now=NOW)
    problems = refused.value.problems
    assert any("minutes" in p and "at least 1" in p for p in problems), problems
    assert any("no_such_type" in p for p in problems), problems
    assert NO_TRIGGER_MESSAGE not in problems
    async with sessions() as db:
        assert not (await db.get_one(Workflow, workflow_id)).active
        assert await published_version_id(db, workflow_id) is None


async def test_publishing_while_active_keeps_unchanged_triggers_and_resets_changed_or_new_ones(
        migrated_db: tuple[str, Sessions]) -> None:
    _, sessions = migrated_db
    workflow_id = await make_workflow(sessions, ALL_KINDS, ALL_EDGES)
    async with sessions.begin() as db:
        first = await activate(db, await db.get_one(Workflow, workflow_id), registry, author_id=None, now=NOW)
    async with sessions.begin() as db:  # the scheduler ran: the poll has a cursor and a failure, the schedule a state
        for row in await db.scalars(select(Trigger).where(Trigger.workflow_id == workflow_id)):
            row.state, row.failures, row.last_error = {"cursor": row.node_id}, 2, "the feed answered 500"
            row.next_run_at = NOW + timedelta(minutes=7)
    later = NOW + timedelta(hours=1)
    async with sessions.begin() as db:  # the schedule changes, the hook goes, a second poll comes
        await set_draft(db, workflow_id, [spec("every", "test_every", minutes=5), spec("poll", "test_poll"),
                                          spec("poll2", "test_poll", interval_minutes=5), spec("set", "set", fields=[])],
                        [("every", "set"), ("poll", "set"), ("poll2", "set")])
        workflow = await db.get_one(Workflow, workflow_id)
        second = await publish(db, workflow, registry, None)
        await sync_triggers(db, workflow, second, registry, now=later)
    assert second.id != first.id
    rows = await triggers(sessions, workflow_id)
    assert sorted(rows) == ["every", "poll", "poll2"]
    poll, every, poll2 = rows["poll"], rows["every"], rows["poll2"]
    assert (poll.version_id, poll.state, poll.failures, poll.last_error, poll.next_run_at) == (
        second.id, {"cursor": poll.node_id}, 2, "the feed answered 500", NOW + timedelta(minutes=7))
    assert (every.version_id, every.state, every.failures, every.last_error, every.config) == (
        second.id, None, 0, None, {"minutes": 5})
    assert every.next_run_at == datetime(2026, 3, 7, 11, 5, tzinfo=UTC)
    assert (poll2.state, poll2.next_run_at, poll2.config) == (None, later, {"interval_minutes": 5})


async def test_deactivating_deletes_the_triggers_and_activating_again_starts_afresh(
        migrated_db: tuple[str, Sessions]) -> None:
    _, sessions = migrated_db
    workflow_id = await make_workflow(sessions, ALL_KINDS, ALL_EDGES)
    async with sessions.begin() as db:
        await activate(db, await db.get_one(Workflow, workflow_id), registry, author_id=None, now=NOW)
    async with sessions.begin() as db:
        await deactivate(db, await db.get_one(Workflow, workflow_id), now=NOW)
    async with sessions() as db:
        assert not (await db.get_one(Workflow, workflow_id)).active
    assert await triggers(sessions, workflow_id) == {}
    async with sessions.begin() as db:
        again = await activate(db, await db.get_one(Workflow, workflow_id), registry, author_id=None, now=NOW)
    rows = await triggers(sessions, workflow_id)
    assert sorted(rows) == ["every", "hook", "poll"] and {r.version_id for r in rows.values()} == {again.id}
