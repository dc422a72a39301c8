"""The SAQ side: the ``run_execution`` job and the worker that runs it.

The job loads the execution and its pinned version, resumes from the node runs already
finished, and persists the outcome. A heartbeat task touches the SAQ job while it runs, so a
killed worker's job is swept and retried by another worker within ``HEARTBEAT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from saq import Queue, Worker
from saq.job import Job, Status
from saq.queue.redis import RedisQueue
from saq.types import WorkerInfo
from saq.utils import cancel_tasks, now, seconds
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import metrics
from engine.alerts import after_failure
from engine.credentials.oauth_upkeep import refresh_forever
from engine.credentials.redaction import Redactor
from engine.errors import GraphError
from engine.events import EventSink, publish_all
from engine.executions import FAILED_STATUSES, JOB_FUNCTION, GraphCache, enqueue_execution, job_key
from engine.logs import execution_id_var
from engine.models import TERMINAL_STATUSES, Execution
from engine.policy import parse_workflow_settings
from engine.publisher import notifies_in
from engine.registry import Registry
from engine.retention import RetentionPolicy, prune_forever
from engine.runner import Outcome, Run, execute, finish
from engine.sqlstore import Claim, SQLRunStore
from engine.subworkflows import SUB_TRIGGER, SQLSubWorkflows
from engine.triggers.scheduler import Scheduler

if TYPE_CHECKING:
    from engine.credentials.registry import CredentialRegistry
    from engine.credentials.sealing import KeyRing
    from engine.credentials.vault import Vault
    from engine.graph import Graph
    from engine.settings import Settings

HEARTBEAT = 5
"""SAQ's job heartbeat: a job untouched this long is stuck, and the next sweep hands it to another worker."""
BEAT = 1.0
"""Seconds between touches of the job and renewals of the execution's lease."""
LEASE = HEARTBEAT
"""Seconds an execution's lease lasts without renewal: a dead worker's execution is free again by
the time SAQ's sweep hands its job to another worker."""
SWEEP_EVERY = 2
GIVEN_UP = (Status.COMPLETE, Status.FAILED, Status.ABORTED)
"""Job states in which the queue will not run an execution again by itself."""
RECONCILE_EVERY = 15.0
RECONCILE_GRACE = 10.0
SHUTDOWN_GRACE = 25
CANCEL_DEADLINE = 5.0
"""Seconds a cancelled job (an abort, a shutdown) gets to unwind before SAQ warns that it may be stuck (SAQ's
default, 1 s, is short of what a busy machine needs to roll back a node's transaction)."""
STOP_DEADLINE = 2 * CANCEL_DEADLINE
"""Seconds the cancelled loops get at shutdown: a loop running a job cancels it and puts it back in the queue."""
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
    retention: RetentionPolicy | None = None
    """Prune finished executions while the worker runs (``None``: this worker does not prune)."""
    retention_every: float = 600.0
    vault: Vault | None = None
    """Opens credentials for the runs (``ctx.credentials``) and keeps OAuth tokens fresh (the periodic refresh
    pass, engine/credentials/oauth_upkeep.py); ``None``: nodes get no credentials."""
    poll_timeout: float = 60.0
    """Seconds one poll may take (a poll that takes longer counts as a failure)."""
    scheduler_every: float | None = 0.25
    """Seconds between the scheduler's passes (schedule slots and polls, engine/triggers/); ``None``: this
    worker runs no scheduler."""
    store: SQLRunStore = field(init=False)
    """The run store all executions of this worker share (its writer groups their commits)."""
    graphs: GraphCache = field(init=False)

    def __post_init__(self) -> None:
        self.store = SQLRunStore(self.sessions, notify=notifies_in(self.sink, self.sessions.kw["bind"].url),
                                 sink=self.sink)
        self.graphs = GraphCache()


async def run_execution(ctx: dict[str, Any], *, execution_id: int) -> str:
    result = await run_claimed(ctx, execution_id)
    return result if isinstance(result, str) else result.status


async def run_claimed(ctx: dict[str, Any], execution_id: int, claimed: tuple[Claim, str] | None = None) -> Outcome | str:
    """Claim the execution, run it under its lease and persist the outcome: the ``Outcome``, or why it did
    not run here (``BUSY``, ``LEASE_LOST``, a status it already ended with). The SAQ job's body; a webhook that
    answers with the run's output calls it directly on the web process's loop (webapp/webhooks/inline.py),
    with no ``job`` in ``ctx`` — and ``claimed``, the claim and lease token its row was inserted with (no
    claim statement then)."""
    services: WorkerServices = ctx["services"]
    job: Job | None = ctx.get("job")
    execution_id_var.set(execution_id)  # SAQ runs each job in its own task: its log records carry the id
    if claimed is not None:
        claim, token = claimed
        lease = _Lease(services.store, execution_id, token)
    else:
        lease = _Lease(services.store, execution_id, uuid.uuid4().hex)
        claim = await services.store.claim(execution_id, lease.token, lease=LEASE)
        if claim is None:
            return await _not_claimed(services.sessions, execution_id)
    try:
        run = await _prepare(services, execution_id, claim, lease, job)
    except BaseException:  # e.g. the database went away reading a graph: the next job may start at once
        await asyncio.shield(lease.release())
        raise
    if claim.interruptions > MAX_INTERRUPTIONS:
        _, run._seq = await services.store.resume_state(execution_id)  # workflow.finished numbers on
        outcome = await finish(run, Outcome("crashed", error=_poison_error(claim.interruptions)))
    else:
        held = await lease.hold(_execute(run, last_attempt=job is None or job.attempts >= job.retries), job)
        if held is None:
            log.warning("execution %s: another job took its lease over; this run stopped", execution_id)
            return LEASE_LOST
        outcome = held
    if outcome.status == "waiting" and outcome.resume_at is not None:
        # committed as waiting first; now the continuation that picks the run up at resume_at
        await lease.release()
        await enqueue_execution(_queue(ctx), execution_id, timeout=job_timeout_for(run.execution_timeout or services.execution_timeout),
                                heartbeat=HEARTBEAT, resume_at=outcome.resume_at)
    if outcome.status in FAILED_STATUSES and ("worker" in ctx or "queue" in ctx):
        await after_failure(services.sessions, _queue(ctx), services.registry, execution_id,
                            job_timeout=job_timeout_for(services.execution_timeout), heartbeat=HEARTBEAT,
                            announce=lambda changes: publish_all(services.sink, changes))
    _log_outcome(outcome)
    return outcome


def _log_outcome(outcome: Outcome) -> None:
    if outcome.status in FAILED_STATUSES:
        log.warning("execution %s: %s", outcome.status, (outcome.error or {}).get("message", ""))
    else:
        log.debug("execution %s", outcome.status)


async def _not_claimed(sessions: async_sessionmaker[AsyncSession], execution_id: int) -> str:
    """Why the claim failed: the execution ended (or is missing), or another live job holds it."""
    async with sessions() as session:
        execution = await session.get(Execution, execution_id)
    if execution is None or execution.status in TERMINAL_STATUSES:
        return execution.status if execution else "missing"
    log.warning("execution %s is leased by another live job until %s; not running it twice",
                execution_id, execution.lease_until)
    return BUSY


async def _prepare(services: WorkerServices, execution_id: int, claim: Claim, lease: _Lease, job: Job | None) -> Run:
    """The run of a claimed execution: its graph (read only on a cache miss) and workflow settings."""
    graph = await services.graphs.load(services.sessions, claim.version_id)
    execution_timeout = parse_workflow_settings(claim.settings).execution_timeout or services.execution_timeout
    start_items = _start_items(services.registry, graph, claim)
    redactor = Redactor()
    run = Run(execution_id=execution_id, workflow_id=claim.workflow_id, graph=graph, registry=services.registry,
              store=services.store, sink=services.sink, http=services.http, trigger_input=claim.input,
              execution_timeout=execution_timeout, start_items=start_items, inline_wait=services.inline_wait,
              trigger_node=claim.trigger_node,
              scope=frozenset(claim.scope) if claim.scope is not None else None,
              owner_id=claim.owner_id, started_at=claim.started_at, redactor=redactor,
              credentials=services.vault.for_run(claim.owner_id, redactor) if services.vault is not None else None,
              # the first change carries the row's fixed part: the hub needs no read for a row it has not seen
              announce={"workflow_name": claim.workflow_name, "trigger": claim.trigger, "created_at": claim.created_at})
    run.sub_workflows = SQLSubWorkflows(run, services.sessions, claim.owner_id, (claim.workflow_id,),
                                        lease_token=lease.token, active=lease.children)
    # nothing stored yet: the run starts from nothing without reading it. A retried job, or one that took
    # over a dead holder's lease, reads what is there, as does a continuation or a retry from a failed node.
    run.resume = claim.has_history or claim.interruptions > 0 or (job is not None and job.attempts > 1)
    return run


def _start_items(registry: Registry, graph: Graph, claim: Claim) -> list[Any] | None:
    """The items the starting trigger node emits, when the input carries them: a sub-workflow's caller's
    items, a poll's new items (also when a poll's execution is retried: its trigger node is a poll)."""
    items = claim.input.get("items")
    if not isinstance(items, list):
        return None
    if claim.trigger in (SUB_TRIGGER, "poll"):
        return items
    node = next((n for n in graph.nodes if n.id == claim.trigger_node), None) if claim.trigger_node else None
    if node is not None and registry.has(node.type, node.version) \
            and registry.get(node.type, node.version).trigger_kind == "poll":
        return items
    return None


BUSY = "busy"
"""What a job returns when another live job holds the execution's lease (e.g. SAQ handed one job to two workers)."""
LEASE_LOST = "lease-lost"
MAX_INTERRUPTIONS = 5
"""An execution whose job has died this often while holding its lease (a poison pill that kills its
worker every time, e.g. by running out of memory) ends ``crashed`` instead of being retried forever.
A run handed back on shutdown or after an engine error releases its lease and is not counted."""


def credentials_vault(settings: Settings, sessions: async_sessionmaker[AsyncSession], registry: CredentialRegistry,
                      http: httpx.AsyncClient, env: Mapping[str, str] | None = None, *,
                      ring: KeyRing | None = None) -> Vault:
    """The worker process's vault: ``ring`` (the start-up-checked key ring), else the keys read now from
    ``PATCHWIRE_CREDENTIALS_KEY`` or the key file. ``env``: where the OAuth endpoint and client settings are
    read (default: the environment the settings came from)."""
    from engine.credentials.keys import load_keyring
    from engine.credentials.vault import Vault

    keys = ring if ring is not None else load_keyring(settings)
    return Vault(sessions, keys, registry, http, settings.provider_env if env is None else env)


def _poison_error(interruptions: int) -> dict[str, Any]:
    message = (f"the execution was interrupted {interruptions} times (its worker died while running it); "
               f"given up after {MAX_INTERRUPTIONS} so it cannot take workers down forever")
    return {"type": "Crashed", "message": message, "node_name": "Workflow", "node_id": None}


@dataclass
class _Lease:
    """The execution's lease, held by this job while it runs the execution."""

    store: SQLRunStore
    execution_id: int
    token: str
    children: set[int] = field(default_factory=set)
    """Sub-workflow executions running inside this run now; they hold the same lease."""
    lost: bool = False

    async def hold(self, execution: Coroutine[Any, Any, Outcome], job: Job | None) -> Outcome | None:
        """Run ``execution`` while a heartbeat touches the job and renews the lease; ``None`` when another
        job took the lease over (this run is cancelled). A run that does not end (cancelled on shutdown
        or abort, or crashed) releases the lease, so the job that resumes it can start at once."""
        work = asyncio.create_task(execution)
        beat = asyncio.create_task(self._beat(job, work))
        ended = False
        try:
            outcome = await work
            ended = True
            return outcome
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.lost and not (current and current.cancelling()):
                return None
            raise
        finally:
            beat.cancel()
            if not ended:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)  # its nodes are cancelled first
                await asyncio.shield(self.release())

    async def _beat(self, job: Job | None, work: asyncio.Task[Outcome]) -> None:
        """Touch the job (so sweeps know this worker is alive) and renew the lease every ``BEAT`` s; a
        failure is logged and retried (the lease outlives a few missed beats)."""
        while True:
            await asyncio.sleep(BEAT)
            try:
                if job is not None:
                    await job.update()
                if not await self.renew():
                    self.lost = True  # another job took over after our lease ran out (this loop stalled)
                    work.cancel()
                    return
            except Exception:
                log.warning("heartbeat of execution %s failed; retrying", self.execution_id, exc_info=True)

    async def renew(self) -> bool:
        """Extend the lease of the execution and of the sub-workflow executions it runs (they share the
        token); ``False`` when another job holds the execution now."""
        return await self.store.renew_lease(self.execution_id, self.children, self.token, lease=LEASE)

    async def release(self) -> None:
        try:
            await self.store.release_lease([self.execution_id, *self.children], self.token)
        except Exception:  # it expires by itself after LEASE seconds
            log.warning("could not release the lease of execution %s", self.execution_id, exc_info=True)


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
    return ctx["queue"] if "queue" in ctx else ctx["worker"].queue


def job_timeout_for(execution_timeout: float) -> int:
    """SAQ's job timeout: beyond the engine's own execution limit, so the engine ends the run cleanly."""
    return int(execution_timeout) + 60


async def reconcile(queue: Queue, sessions: async_sessionmaker[AsyncSession], *, job_timeout: int,
                    older_than: float = RECONCILE_GRACE) -> list[int]:
    """Re-enqueue every unfinished execution whose job the queue no longer has (e.g. Redis came
    back empty) or has given up on (SAQ's retries used up by crashed workers, or a sweeper that
    died between its abort and its retry); an execution whose lease a live job renews is left alone.
    Safe from any number of workers at once: the job key deduplicates. The owning job of a run that has waited is its continuation (``resume_at``)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    async with sessions() as session:
        rows = (await session.execute(select(Execution.id, Execution.status, Execution.resume_at).where(
            Execution.status.in_(("queued", "running", "waiting")), Execution.created_at < cutoff,
            Execution.trigger != SUB_TRIGGER,  # sub-workflows run inside their caller's job
            or_(Execution.lease_until.is_(None), Execution.lease_until < time.time())))).all()  # a live job runs it
    await _end_orphaned_sub_workflows(sessions, cutoff)
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


ORPHANED_SUB_WORKFLOW = ("the worker running its calling execution stopped while it ran; the caller's node "
                         "runs the sub-workflow again as a new execution when the caller resumes")


async def _end_orphaned_sub_workflows(sessions: async_sessionmaker[AsyncSession], cutoff: datetime) -> list[int]:
    """Sub-workflow executions run inside their caller's job and share its lease; one whose lease has
    run out (or was released when the caller was handed back) is not running anywhere: it ends
    ``crashed``, with that reason, instead of showing ``running`` forever."""
    error = {"type": "Crashed", "message": ORPHANED_SUB_WORKFLOW, "node_name": "Workflow", "node_id": None}
    async with sessions.begin() as session:
        ids = list((await session.scalars(
            update(Execution)
            .where(Execution.trigger == SUB_TRIGGER, Execution.status.in_(("queued", "running", "waiting")),
                   Execution.created_at < cutoff,
                   or_(Execution.lease_until.is_(None), Execution.lease_until < time.time()))
            .values(status="crashed", error=error, finished_at=datetime.now(UTC), lease_token=None, lease_until=None)
            .returning(Execution.id).execution_options(synchronize_session=False))).all())
    if ids:
        metrics.count_finished("crashed", len(ids))
        log.warning("ended sub-workflow executions whose caller's worker stopped: %s", ids)
    return ids


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


class PatchwireWorker(Worker):
    """SAQ's worker, reporting its load with its worker info (every ``worker_info`` timer tick):
    ``metadata`` carries the host, the pid, the concurrency and the jobs running now. The home
    dashboard reads it back through ``queue.info()``."""

    async def worker_info(self, ttl: int = 60) -> WorkerInfo:
        return await self.queue.worker_info(self.id, queue_key=self.queue.name, metadata=self.load(), ttl=ttl)

    def load(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "concurrency": self.concurrency,
                "active": len(self.job_task_contexts)}

    async def stop(self) -> None:
        """Stop as SAQ does, except that the grace period is spent on jobs only.

        SAQ waits the grace period for *all* its tasks, its upkeep timers included, which never finish by
        themselves: the in-process worker (grace 0) logged "Some tasks did not finish within the shutdown
        grace period" on every Ctrl-C, and an idle separate worker waited for its timers. Here the timers
        are cancelled at once, the dequeue loops get the grace period (at least one dequeue timeout) to
        finish the job they run or to come back empty, and what still runs then is cancelled: SAQ puts its
        job back in the queue and the execution resumes on the next worker, its completed nodes not run
        again. SAQ's own stop then finds nothing left to wait for."""
        self.event.set()
        async with self._stop_lock:
            if not self._stopped:
                await self._end_tasks()
        await super().stop()

    async def _end_tasks(self) -> None:
        loops = [task for task in self.tasks if task.get_name() == "process"]
        await cancel_tasks([task for task in self.tasks if task not in loops], timeout=STOP_DEADLINE)
        if not loops:
            return
        grace = max(self._shutdown_grace_period_s or 0, self.dequeue_timeout) + 1
        _, running = await asyncio.wait(loops, timeout=grace)
        if self.job_task_contexts:
            log.info("stopping: %d execution(s) interrupted; they resume when a worker runs again",
                     len(self.job_task_contexts))
        await cancel_tasks(running, timeout=STOP_DEADLINE)

def scheduler_for(queue: Queue, services: WorkerServices) -> Scheduler:
    """The worker's scheduler: every worker process runs one, the database decides who fires a slot."""
    return Scheduler(services.sessions, queue, services.registry, http=services.http, vault=services.vault,
                     job_timeout=job_timeout_for(services.execution_timeout), heartbeat=HEARTBEAT,
                     announce=lambda changes: publish_all(services.sink, changes),
                     poll_timeout=services.poll_timeout)


def build_worker(queue: Queue, services: WorkerServices, *, concurrency: int = 10, in_process: bool = False,
                 shutdown_grace: int = 0) -> Worker:
    """A SAQ worker for ``run_execution``, with the reconciler and the scheduler of automatic triggers (and,
    with a retention policy, the upkeep pass: pruning, expired sessions; with ``services.vault``, the OAuth
    refresh pass) running beside it.

    ``shutdown_grace``: on SIGTERM, in-flight executions get that many seconds to finish (SAQ
    waits for all its tasks, so an idle worker also takes up to one upkeep interval to stop);
    what still runs then is cancelled and resumes on another worker — nodes that completed are
    not run again."""
    tasks: list[asyncio.Task[None]] = []

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = services
        tasks.append(asyncio.create_task(_reconcile_forever(queue, services)))
        if services.retention is not None:  # also when it prunes no executions: it deletes expired sessions
            tasks.append(asyncio.create_task(prune_forever(services.sessions, services.retention,
                                                           services.retention_every)))
        if services.scheduler_every is not None:
            tasks.append(asyncio.create_task(scheduler_for(queue, services).run_forever(services.scheduler_every)))
        if services.vault is not None:
            tasks.append(asyncio.create_task(refresh_forever(
                services.vault, queue, services.registry, job_timeout=job_timeout_for(services.execution_timeout),
                heartbeat=HEARTBEAT, announce=lambda changes: publish_all(services.sink, changes))))

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in tasks:
            task.cancel()
        await services.store.close()  # it keeps its database connection between commits

    worker = PatchwireWorker(queue, functions=[(JOB_FUNCTION, run_execution)], concurrency=concurrency,
                             startup=startup, shutdown=shutdown,
                             timers={"sweep": SWEEP_EVERY, "abort": 1, "schedule": 1, "worker_info": 10},
                             shutdown_grace_period_s=shutdown_grace or None, dequeue_timeout=1.0,
                             cancellation_hard_deadline_s=CANCEL_DEADLINE)
    if in_process:
        worker.SIGNALS = []  # the web server owns SIGINT/SIGTERM
    return worker
