"""The SAQ side: the ``run_execution`` job and the worker that runs it.

The job loads the execution and its pinned version, resumes from the node runs already
finished, and persists the outcome. A heartbeat task touches the SAQ job while it runs, so a
killed worker's job is swept and retried by another worker within ``HEARTBEAT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from saq import Queue, Worker
from saq.job import Job, Status
from saq.queue.redis import RedisQueue
from saq.utils import now, seconds
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.alerts import after_failure
from engine.errors import GraphError
from engine.events import EventSink
from engine.executions import FAILED_STATUSES, JOB_FUNCTION, GraphCache, enqueue_execution, job_key
from engine.models import TERMINAL_STATUSES, Execution, Workflow, WorkflowVersion
from engine.policy import parse_workflow_settings
from engine.publisher import notifies_in
from engine.registry import Registry
from engine.runner import Outcome, Run, execute, finish
from engine.sqlstore import SQLRunStore
from engine.subworkflows import SUB_TRIGGER, SQLSubWorkflows

HEARTBEAT = 10
GIVEN_UP = (Status.COMPLETE, Status.FAILED, Status.ABORTED)
"""Job states in which the queue will not run an execution again by itself."""
RECONCILE_EVERY = 15.0
RECONCILE_GRACE = 10.0
SHUTDOWN_GRACE = 25
log = logging.getLogger("patchwire.worker")


@dataclass
class WorkerServices:
    """What the job needs, built once per worker process (put in SAQ's ``ctx``)."""

    sessions: async_sessionmaker[AsyncSession]
    sink: EventSink
    registry: Registry
    http: httpx.AsyncClient
    execution_timeout: float = 3600.0
    inline_wait: float = 30.0
    store: SQLRunStore = field(init=False)
    """The run store all executions of this worker share (its writer groups their commits)."""
    graphs: GraphCache = field(init=False)

    def __post_init__(self) -> None:
        self.store = SQLRunStore(self.sessions, notify=notifies_in(self.sink, self.sessions.kw["bind"].url),
                                 sink=self.sink)
        self.graphs = GraphCache()


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
        graph, workflow_id, trigger_input = services.graphs.get(version), execution.workflow_id, execution.input
        owner_id, start_items = execution.owner_id, execution.input.get("items") if execution.trigger == SUB_TRIGGER else None
        workflow = await session.get_one(Workflow, workflow_id)
        execution_timeout = parse_workflow_settings(workflow.settings).execution_timeout or services.execution_timeout
    run = Run(execution_id=execution_id, workflow_id=workflow_id, graph=graph, registry=services.registry,
              store=services.store, sink=services.sink, http=services.http, trigger_input=trigger_input,
              execution_timeout=execution_timeout, start_items=start_items, inline_wait=services.inline_wait)
    run.sub_workflows = SQLSubWorkflows(run, services.sessions, owner_id, (workflow_id,))
    beat = asyncio.create_task(_heartbeat(job)) if job is not None else None
    try:
        outcome = await _execute(run, last_attempt=job is None or job.attempts >= job.retries)
    finally:
        if beat is not None:
            beat.cancel()
    if outcome.status == "waiting" and outcome.resume_at is not None:
        # committed as waiting first; now the continuation that picks the run up at resume_at
        await enqueue_execution(_queue(ctx), execution_id, timeout=job_timeout_for(execution_timeout),
                                heartbeat=HEARTBEAT, resume_at=outcome.resume_at)
    if outcome.status in FAILED_STATUSES and "worker" in ctx:
        await after_failure(services.sessions, ctx["worker"].queue, services.registry, execution_id,
                            job_timeout=job_timeout_for(services.execution_timeout), heartbeat=HEARTBEAT)
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


def _queue(ctx: dict[str, Any]) -> Queue:
    return ctx["worker"].queue


def job_timeout_for(execution_timeout: float) -> int:
    """SAQ's job timeout: beyond the engine's own execution limit, so the engine ends the run cleanly."""
    return int(execution_timeout) + 60


async def _heartbeat(job: Job) -> None:
    """Touch the job so sweeps know this worker is alive; a failed touch is retried, not fatal."""
    while True:
        await asyncio.sleep(HEARTBEAT / 4)
        try:
            await job.update()
        except Exception:
            log.warning("heartbeat of job %s failed; retrying", job.key, exc_info=True)


async def reconcile(queue: Queue, sessions: async_sessionmaker[AsyncSession], *, job_timeout: int,
                    older_than: float = RECONCILE_GRACE) -> list[int]:
    """Re-enqueue every unfinished execution whose job the queue no longer has (e.g. Redis came
    back empty) or has given up on (SAQ's retries used up by crashed workers, or a sweeper that
    died between its abort and its retry). Safe from any number of workers at once: the job key
    deduplicates. The owning job of a run that has waited is its continuation (``resume_at``)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    async with sessions() as session:
        rows = (await session.execute(select(Execution.id, Execution.status, Execution.resume_at).where(
            Execution.status.in_(("queued", "running", "waiting")), Execution.created_at < cutoff,
            Execution.trigger != SUB_TRIGGER))).all()  # sub-workflows run inside their caller's job
    restored = []
    for execution_id, _status, resume_at in rows:
        resume = resume_at.timestamp() if resume_at is not None else None
        job = await queue.job(job_key(execution_id, resume))
        if job is None or job.status in GIVEN_UP:
            # a later `scheduled` than the finished job's is what lets its key be enqueued again
            not_before = max(int(time.time()), int(job.scheduled) if job is not None else 0) + 1
            await enqueue_execution(queue, execution_id, timeout=job_timeout, heartbeat=HEARTBEAT, resume_at=resume,
                                    scheduled=not_before)
            restored.append(execution_id)
        elif await _orphaned(queue, job):
            await queue.retry(job, error="orphaned: in no Redis list since a sweep and a crash")
            restored.append(execution_id)
    if restored:
        log.warning("re-enqueued executions the queue had lost: %s", restored)
    return restored


async def _orphaned(queue: Queue, job: Job) -> bool:
    """A Redis job marked ``active`` / ``aborting`` that no list holds any more, untouched for two heartbeats.

    SAQ's Redis queue loses jobs that way: its sweep takes a job out of ``active`` (abort) and only
    retries it ``abort`` s later — a sweeper that dies in between leaves it ``aborting`` in no list; and
    a sweep that runs between a worker's BLMOVE and its ``update(status=ACTIVE)`` aborts the job being
    claimed (saq#124, #277), the worker writes it back ``active``, and if that worker dies before the
    sweep's retry the job is ``active`` in no list. No sweep walks it again; the key still exists.
    (The SQLite and PostgreSQL sweeps select ``active`` and ``aborting`` rows themselves.)"""
    if not isinstance(queue, RedisQueue) or job.status not in (Status.ACTIVE, Status.ABORTING):
        return False
    if seconds(now() - job.touched) <= 2 * HEARTBEAT:
        return False
    redis, job_id = queue.redis, queue.job_id(job.key)
    return (await redis.lpos(queue._active, job_id) is None and await redis.lpos(queue._queued, job_id) is None
            and await redis.zscore(queue._incomplete, job_id) is None)


async def _reconcile_forever(queue: Queue, services: WorkerServices) -> None:
    while True:
        await asyncio.sleep(RECONCILE_EVERY)
        try:
            await reconcile(queue, services.sessions, job_timeout=job_timeout_for(services.execution_timeout))
        except Exception:
            log.warning("reconciler pass failed; trying again in %s s", RECONCILE_EVERY, exc_info=True)


def build_worker(queue: Queue, services: WorkerServices, *, concurrency: int = 10, in_process: bool = False,
                 shutdown_grace: int = 0) -> Worker:
    """A SAQ worker for ``run_execution``, with the reconciler running beside it.

    ``shutdown_grace``: on SIGTERM, in-flight executions get that many seconds to finish (SAQ
    waits for all its tasks, so an idle worker also takes up to one upkeep interval to stop);
    what still runs then is cancelled and resumes on another worker — nodes that completed are
    not run again."""
    tasks: list[asyncio.Task[None]] = []

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = services
        tasks.append(asyncio.create_task(_reconcile_forever(queue, services)))

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in tasks:
            task.cancel()

    worker = Worker(queue, functions=[(JOB_FUNCTION, run_execution)], concurrency=concurrency, startup=startup,
                    shutdown=shutdown, timers={"sweep": 5, "abort": 1, "schedule": 1, "worker_info": 10},
                    shutdown_grace_period_s=shutdown_grace or None, dequeue_timeout=1.0)
    if in_process:
        worker.SIGNALS = []  # the web server owns SIGINT/SIGTERM
    return worker
