"""What happens after an execution fails: the circuit breaker and the error workflow.

Both run in the worker right after the failed outcome is committed. The breaker counts the
workflow's executions that finished inside its window; when more than ``failure_ratio`` of at
least ``min_executions`` failed, the workflow is paused until ``now + cooldown`` (automatic
triggers refuse to start it; the editor shows it and offers to resume). The error workflow
("when this fails, run that one") gets the failure as its input.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from saq import Queue
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.changes import Announce, announce_created
from engine.errors import GraphError, WorkflowPaused
from engine.executions import FAILED_STATUSES, create_execution, enqueue_execution
from engine.models import Execution, Workflow
from engine.policy import BreakerSettings, parse_workflow_settings
from engine.registry import Registry

log = logging.getLogger("patchwire.alerts")
ERROR_TRIGGER = "error_workflow"


async def breaker_trips(session: AsyncSession, workflow: Workflow, breaker: BreakerSettings, now: datetime) -> bool:
    """True when the failure share in the window crosses the threshold."""
    if not breaker.enabled:
        return False
    since = now - timedelta(seconds=breaker.window_seconds)
    rows = (await session.execute(
        select(Execution.status, func.count()).where(Execution.workflow_id == workflow.id,
                                                     Execution.finished_at >= since)
        .group_by(Execution.status))).all()
    total = sum(count for _, count in rows)
    failed = sum(count for status, count in rows if status in FAILED_STATUSES)
    return total >= breaker.min_executions and failed / total > breaker.failure_ratio


async def after_failure(sessions: async_sessionmaker[AsyncSession], queue: Queue, registry: Registry,
                        execution_id: int, *, job_timeout: int, heartbeat: int,
                        announce: Announce | None = None) -> int | None:
    """Trip the breaker if due, then start the error workflow; returns the error execution's id."""
    now = datetime.now(UTC)
    async with sessions() as session:
        execution = await session.get_one(Execution, execution_id)
        workflow = await session.get_one(Workflow, execution.workflow_id)
        settings = parse_workflow_settings(workflow.settings)
        opened = False
        if (workflow.paused_until is None or workflow.paused_until <= now) and \
                await breaker_trips(session, workflow, settings.breaker, now):
            workflow.paused_until = now + timedelta(seconds=settings.breaker.cooldown_seconds)
            opened = True
            log.warning("circuit breaker opened for workflow %s until %s", workflow.id, workflow.paused_until)
        error_run = await _start_error_workflow(session, registry, execution, workflow,
                                                settings.error_workflow_id, opened)
        await session.commit()
    if error_run is None:
        return None
    await enqueue_execution(queue, error_run[0].id, timeout=job_timeout, heartbeat=heartbeat)
    await announce_created(announce, [error_run])
    return error_run[0].id


async def _start_error_workflow(session: AsyncSession, registry: Registry, execution: Execution, workflow: Workflow,
                                error_workflow_id: int | None, circuit_opened: bool) -> tuple[Execution, str] | None:
    if error_workflow_id is None or execution.trigger == ERROR_TRIGGER:
        return None  # an error workflow's own failure does not start another (no loops)
    target = await session.get(Workflow, error_workflow_id)
    if target is None or target.owner_id != workflow.owner_id:
        log.warning("workflow %s names error workflow %s, which is not the owner's", workflow.id, error_workflow_id)
        return None
    try:
        error_run = await create_execution(session, target, registry, trigger=ERROR_TRIGGER,
                                           input=failure_input(execution, workflow, circuit_opened))
    except (GraphError, WorkflowPaused) as exc:
        log.warning("error workflow %s cannot run: %s", target.id, exc)
        return None
    return error_run, target.name


def failure_input(execution: Execution, workflow: Workflow, circuit_opened: bool) -> dict[str, Any]:
    error = execution.error or {}
    return {
        "execution_id": execution.id, "workflow_id": workflow.id, "workflow_name": workflow.name,
        "url": f"/executions/{execution.id}", "status": execution.status,
        "failed_node": error.get("node_name"), "error": error.get("message"), "error_type": error.get("type"),
        "circuit_opened": circuit_opened,
        "paused_until": workflow.paused_until.isoformat() if workflow.paused_until else None,
    }
