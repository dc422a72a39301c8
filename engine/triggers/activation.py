"""Activation: an active workflow's automatic triggers (webhook, schedule, poll) start it by themselves.

Activating validates and publishes the draft (as Publish does) and starts the triggers from the published
version: one ``triggers`` row per automatic trigger node of that version. Deactivating deletes the rows at
once, so nothing starts any more. While the workflow is active, every publish (and restore of a version)
calls ``sync_triggers`` again: rows of nodes that are gone are deleted, a node whose config is unchanged keeps
its row's state (a poll's cursor, a schedule's next slot, its failures), a new or changed node starts afresh.

The caller commits (one transaction with the publish), as for ``engine.executions.publish``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import parse_config
from engine.contract import AUTOMATIC_TRIGGER_KINDS, NodeType, ScheduleTriggerType
from engine.errors import ConfigError, GraphError, PatchwireError
from engine.executions import graph_from_json, load_graph, publish
from engine.graph import Graph, NodeSpec, validate_graph
from engine.models import Trigger, Workflow, WorkflowVersion
from engine.registry import Registry

NO_TRIGGER_MESSAGE = ("Add a Webhook, Schedule or polling trigger to activate this workflow: "
                      "a workflow that only starts with Run has nothing to activate.")


class ActivationError(PatchwireError):
    """The workflow cannot be activated; ``problems`` says why, one precise message each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def automatic_trigger_nodes(graph: Graph, registry: Registry) -> list[tuple[NodeSpec, type[NodeType]]]:
    """The graph's webhook, schedule and poll trigger nodes (unknown node types are left out)."""
    found = []
    for node in graph.nodes:
        if not registry.has(node.type, node.version):
            continue
        node_type = registry.get(node.type, node.version)
        if node_type.is_trigger and node_type.trigger_kind in AUTOMATIC_TRIGGER_KINDS:
            found.append((node, node_type))
    return found


def first_run_at(node_type: type[NodeType], config: dict[str, Any], now: datetime) -> datetime | None:
    """When a new (or changed) trigger first fires: a schedule's next slot after ``now``, a poll at once
    (its first poll takes the baseline), a webhook never (requests start it)."""
    if node_type.trigger_kind == "poll":
        return now
    if node_type.trigger_kind == "schedule" and issubclass(node_type, ScheduleTriggerType):
        return node_type().next_slot(parse_config(node_type.Config, config), now.astimezone(UTC))
    return None


async def activate(session: AsyncSession, workflow: Workflow, registry: Registry, *, author_id: int | None,
                   now: datetime) -> WorkflowVersion:
    """Validate and publish the draft, mark the workflow active and start its triggers from that version.
    ``ActivationError`` lists every problem (the draft's, or no automatic trigger). The caller commits."""
    graph = await load_graph(session, workflow.id)
    problems = [str(p) for p in validate_graph(graph, registry)]
    if not automatic_trigger_nodes(graph, registry):
        problems.append(NO_TRIGGER_MESSAGE)
    if problems:
        raise ActivationError(problems)
    try:
        version = await publish(session, workflow, registry, author_id)
    except GraphError as exc:  # e.g. a sub-workflow call that the draft's own check cannot see
        raise ActivationError([str(p) for p in exc.problems]) from exc
    workflow.active = True
    await sync_triggers(session, workflow, version, registry, now=now)
    return version


async def deactivate(session: AsyncSession, workflow: Workflow, *, now: datetime) -> None:
    """Mark the workflow inactive and delete its triggers' rows: nothing starts it any more. The caller commits."""
    workflow.active = False
    workflow.updated_at = now
    await session.execute(delete(Trigger).where(Trigger.workflow_id == workflow.id))
    await session.flush()


async def after_publish(session: AsyncSession, workflow: Workflow, version: WorkflowVersion, registry: Registry,
                        *, now: datetime) -> bool:
    """Keep an active workflow's triggers in step with the version just published (in its transaction).
    A published version without any automatic trigger deactivates the workflow (returns True: tell the person).
    Nothing to do for an inactive workflow. The caller commits."""
    if not workflow.active:
        return False
    if not automatic_trigger_nodes(graph_from_json(version.graph), registry):
        await deactivate(session, workflow, now=now)
        return True
    await sync_triggers(session, workflow, version, registry, now=now)
    return False


async def sync_triggers(session: AsyncSession, workflow: Workflow, version: WorkflowVersion, registry: Registry,
                        *, now: datetime) -> None:
    """Make the workflow's ``triggers`` rows those of ``version``'s automatic trigger nodes.

    A row whose node kept its type, version and config keeps its state, next run and failures (it only
    points at the new version); a new or changed node gets a fresh row (``state=None``, ``first_run_at``);
    rows of nodes no longer there are deleted. ``ActivationError`` when a schedule's config cannot give
    its first run (the draft's validation normally catches it first). The caller commits."""
    wanted = automatic_trigger_nodes(graph_from_json(version.graph), registry)
    rows = {row.node_id: row for row in await session.scalars(select(Trigger).where(Trigger.workflow_id == workflow.id))}
    keep = {node.id for node, _ in wanted}
    for node_id, row in rows.items():
        if node_id not in keep:
            await session.delete(row)
    problems: list[str] = []
    for node, node_type in wanted:
        row = rows.get(node.id)
        if row is not None and row.node_type == node.type and row.node_version == node.version \
                and row.config == node.config and row.kind == node_type.trigger_kind:
            row.version_id = version.id
            continue
        try:
            next_run = first_run_at(node_type, node.config, now)
        except (ConfigError, ValueError) as exc:
            problems.append(f"{node.name}: {exc}")
            continue
        if row is None:
            row = Trigger(workflow_id=workflow.id, owner_id=workflow.owner_id, node_id=node.id)
            session.add(row)
        row.kind, row.node_type, row.node_version = str(node_type.trigger_kind), node.type, node.version
        row.config, row.version_id, row.state, row.next_run_at = dict(node.config), version.id, None, next_run
        row.last_run_at, row.failures, row.last_error, row.last_error_at = None, 0, None, None
        row.lease_token, row.lease_until = None, None
    if problems:
        raise ActivationError(problems)
    await session.flush()
