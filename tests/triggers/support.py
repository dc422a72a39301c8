"""Workflows with automatic triggers for the scheduler tests, and a poll node type driven by a JSON file.

``trigger_workflow`` activates a ``trigger → Set`` workflow as the Active switch does (engine/triggers/activation.py),
then sets its trigger's ``next_run_at`` to the instant the test wants.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.contract import Item, NodeContext, NodeResult, PollContext, PollResult, PollTriggerType
from engine.errors import NodeError
from engine.models import Connection, Node, Trigger, User, Workflow
from engine.registry import Registry
from engine.triggers.activation import activate
from nodes import NODE_TYPES


class FilePollConfig(msgspec.Struct, forbid_unknown_fields=True):
    path: Annotated[str, msgspec.Meta(title="Source file")]
    interval_seconds: float = 60.0


class FilePoll(PollTriggerType):
    """A poll over a JSON file ``{"items": [{"id": …}, …], "error": null | "…", "hang": false}``: new items are
    those whose ``id`` the state has not seen. ``hang``: the poll writes ``<path>.polled`` and never answers
    (a worker killed now dies between its poll and its commit)."""

    type_name = "test_file_poll"
    title = "File poll (tests)"
    description = "Test poll trigger."
    Config = FilePollConfig

    def interval(self, config: FilePollConfig) -> float:
        return config.interval_seconds

    async def poll(self, ctx: PollContext, config: FilePollConfig, state: dict[str, Any] | None) -> PollResult:
        source = json.loads(Path(config.path).read_text())
        if source.get("error"):
            raise NodeError(source["error"])
        if source.get("hang"):
            Path(config.path + ".polled").write_text(ctx.now.isoformat())
            await asyncio.Event().wait()
        ids = [item["id"] for item in source["items"]]
        if state is None:
            return PollResult([], {"seen": ids})
        seen = set(state["seen"])
        return PollResult([i for i in source["items"] if i["id"] not in seen], {"seen": [*state["seen"], *(
            i for i in ids if i not in seen)][-500:]})

    async def run(self, ctx: NodeContext, config: FilePollConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)


def registry_with_file_poll() -> Registry:
    return Registry((*NODE_TYPES, FilePoll))


def write_source(path: Path, items: list[dict[str, Any]], *, error: str | None = None, hang: bool = False) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"items": items, "error": error, "hang": hang}))
    tmp.replace(path)  # atomic: a poll in another process never reads half a file


async def add_owner(sessions: async_sessionmaker[AsyncSession], email: str = "owner@example.com") -> int:
    async with sessions.begin() as session:
        user = User(email=email, password_hash="x")
        session.add(user)
        await session.flush()
        return user.id


async def trigger_workflow(sessions: async_sessionmaker[AsyncSession], registry: Registry, owner_id: int, *,
                           trigger_type: str, config: dict[str, Any], next_run_at: datetime | None,
                           name: str = "scheduled") -> tuple[int, int]:
    """A workflow ``trigger → Set``, published and active, with its ``triggers`` row: (workflow id, trigger id)."""
    async with sessions.begin() as session:
        workflow = Workflow(owner_id=owner_id, name=name, active=True)
        session.add(workflow)
        await session.flush()
        trigger = Node(id=f"t{workflow.id:031d}", workflow_id=workflow.id, type_name=trigger_type, name="Trigger",
                       config=config)
        after = Node(id=f"s{workflow.id:031d}", workflow_id=workflow.id, type_name="set", name="Set",
                     config={"fields": [{"name": "done", "value": "yes"}], "keep_existing": True})
        session.add_all([trigger, after])
        await session.flush()
        session.add(Connection(workflow_id=workflow.id, source_node_id=trigger.id, source_port="main",
                               target_node_id=after.id, target_port="main"))
        await session.flush()
        await activate(session, workflow, registry, author_id=owner_id, now=datetime.now(UTC))
        row = (await session.scalars(select(Trigger).where(Trigger.workflow_id == workflow.id))).one()
        row.next_run_at = next_run_at
        await session.flush()
        return workflow.id, row.id
