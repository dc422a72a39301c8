"""A webhook that answers with its workflow's output runs the execution **on the web process's own loop**.

Through the queue, one request cost a job row written, fetched, updated and finished, a worker loop's turn,
a change published to the hub and the output read back from the database (docs/benchmarks.md, issue 16). In
the embedded profile the worker runs in this very process anyway: ``InlineRuns`` calls the job's own body
(``engine.worker.run_claimed``) directly — the same claim and lease, the same runner and run store (its group
commit shared with the queued runs), the same live events — and the answer is the run's outcome, in memory.

Durability is the queue's: the execution row is committed before the run starts; while the run goes on its
lease is renewed; if the process dies, the lease runs out and the reconciler (engine/worker.py, ``reconcile``)
enqueues the execution, which resumes from its committed node runs as any crashed job does. A run that cannot
start here (the database refused the claim) is handed to the queue at once.

At most ``limit`` runs go on at once (the worker's concurrency); a request beyond it goes through the queue as
before, so a burst never takes more of the loop than the worker would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from saq import Queue

from engine.executions import enqueue_execution
from engine.runner import Outcome
from engine.sqlstore import Claim
from engine.worker import HEARTBEAT, LEASE, WorkerServices, job_timeout_for, run_claimed

log = logging.getLogger("patchwire.webhooks")
Result = Outcome | str
"""The run's outcome, or why it did not run here (engine/worker.py ``run_claimed``)."""


class InlineRuns:
    lease = LEASE
    """Seconds the lease of an execution inserted claimed lasts before its run renews it."""

    def __init__(self, services: WorkerServices, queue: Queue, limit: int,
                 enqueue: Callable[[int], Awaitable[None]] | None = None) -> None:
        self._ctx: dict[str, Any] = {"services": services, "queue": queue}
        self._free = limit
        self._tasks: set[asyncio.Task[Result]] = set()
        self._enqueue = enqueue or self._to_queue
        self._closed = False

    def reserve(self) -> bool:
        """Take room for one run (``False``: none; queue it). Then ``start`` it, or ``unreserve``."""
        if self._closed or self._free <= 0:
            return False
        self._free -= 1
        return True

    def unreserve(self) -> None:
        self._free += 1

    def start(self, execution_id: int, claimed: tuple[Claim, str] | None = None) -> asyncio.Task[Result]:
        """Run the committed execution now, beside the request, in the room ``reserve`` took. ``claimed``: it
        was inserted claimed (webapp/webhooks/sqlite_write.py), with this claim and lease token."""
        task = asyncio.create_task(self._run(execution_id, claimed), name=f"webhook-run-{execution_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def _run(self, execution_id: int, claimed: tuple[Claim, str] | None) -> Result:
        try:
            return await run_claimed(dict(self._ctx), execution_id, claimed)
        except asyncio.CancelledError:  # shutdown: the lease is released, the reconciler enqueues it
            raise
        except Exception:
            log.exception("execution %s could not run in the web process; handing it to the queue", execution_id)
            await self._enqueue(execution_id)
            return "queued"

    async def _to_queue(self, execution_id: int) -> None:
        services: WorkerServices = self._ctx["services"]
        await enqueue_execution(self._ctx["queue"], execution_id, timeout=job_timeout_for(services.execution_timeout),
                                heartbeat=HEARTBEAT)

    def _done(self, task: asyncio.Task[Result]) -> None:
        self._tasks.discard(task)
        self._free += 1

    async def close(self) -> None:
        """Stop taking runs; cancel the ones going on (each releases its lease: the queue resumes it)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
