"""The SAQ side: the ``run_execution`` job and the worker that runs it.

The job loads the execution and its pinned version, resumes from the node runs already
finished, and persists the outcome. A heartbeat task touches the SAQ job while it runs, so a
killed worker's job is swept and retried by another worker within ``HEARTBEAT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from saq import Queue, Worker
from saq.job import Job
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import GraphError
from engine.events import EventSink
from engine.executions import JOB_FUNCTION, graph_from_json
from engine.models import TERMINAL_STATUSES, Execution, WorkflowVersion
from engine.registry import Registry
from engine.runner import Outcome, Run, execute, finish
from engine.sqlstore import SQLRunStore

HEARTBEAT = 10
log = logging.getLogger("patchwire.worker")


@dataclass
class WorkerServices:
    """What the job needs, built once per worker process (put in SAQ's ``ctx``)."""

    sessions: async_sessionmaker[AsyncSession]
    sink: EventSink
    registry: Registry
    http: httpx.AsyncClient


async def run_execution(ctx: dict[str, Any], *, execution_id: int) -> str:
    services: WorkerServices = ctx["services"]
    job: Job | None = ctx.get("job")
    async with services.sessions.begin() as session:
        execution = await session.get(Execution, execution_id)
        if execution is None or execution.status in TERMINAL_STATUSES:
            return execution.status if execution else "missing"
        version = await session.get_one(WorkflowVersion, execution.version_id)
        execution.status = "running"
        execution.started_at = execution.started_at or datetime.now(UTC)
        graph, workflow_id, trigger_input = graph_from_json(version.graph), execution.workflow_id, execution.input
    run = Run(execution_id=execution_id, workflow_id=workflow_id, graph=graph, registry=services.registry,
              store=SQLRunStore(services.sessions), sink=services.sink, http=services.http, trigger_input=trigger_input)
    beat = asyncio.create_task(_heartbeat(job)) if job is not None else None
    try:
        outcome = await _execute(run, last_attempt=job is None or job.attempts >= job.retries)
    finally:
        if beat is not None:
            beat.cancel()
    return outcome.status


async def _execute(run: Run, *, last_attempt: bool) -> Outcome:
    try:
        return await execute(run)
    except GraphError as exc:  # a version that no longer validates (e.g. a node type was removed)
        error = {"type": "GraphError", "message": str(exc), "node_name": "Workflow", "node_id": None}
        return await finish(run, Outcome("failed", error=error))
    except Exception as exc:
        # "crashed", not "failed": the engine or its store broke, not the node's own code.
        # SAQ retries the job (the run resumes); after the last attempt the execution ends.
        log.exception("execution %s crashed", run.execution_id)
        if not last_attempt:
            raise
        error = {"type": "Crashed", "message": f"{type(exc).__name__}: {exc}", "node_name": "Workflow", "node_id": None}
        return await finish(run, Outcome("crashed", error=error))


async def _heartbeat(job: Job) -> None:
    """Touch the job so sweeps know this worker is alive; a failed touch is retried, not fatal."""
    while True:
        await asyncio.sleep(HEARTBEAT / 4)
        try:
            await job.update()
        except Exception:
            log.warning("heartbeat of job %s failed; retrying", job.key, exc_info=True)


def build_worker(queue: Queue, services: WorkerServices, *, concurrency: int = 10, in_process: bool = False) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = services

    worker = Worker(queue, functions=[(JOB_FUNCTION, run_execution)], concurrency=concurrency, startup=startup,
                    timers={"sweep": 5, "abort": 1, "schedule": 1, "worker_info": 10})
    if in_process:
        worker.SIGNALS = []  # the web server owns SIGINT/SIGTERM
    return worker
