"""Executions seen from the web: start one (commit, then enqueue), read them, scoped to the owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.exceptions import NotFoundException
from saq import Queue
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from engine.changes import Announce, announce_created
from engine.executions import FAILED_STATUSES, create_execution, create_retry, enqueue_execution, graph_from_json
from engine.graph import Graph
from engine.models import Execution, ExecutionEvent, NodeRun, Workflow, WorkflowVersion
from engine.registry import Registry
from engine.worker import HEARTBEAT, job_timeout_for
from webapp.errors import Invalid
from webapp.executions.filters import Cursor, ExecutionFilter
from webapp.executions.listing import Page, read_page, read_rows
from webapp.executions.rows import ExecutionRow


@dataclass
class ExecutionService:
    db: AsyncSession
    owner_id: int

    async def get(self, execution_id: int) -> Execution:
        execution = await self.db.scalar(select(Execution).where(Execution.id == execution_id,
                                                                 Execution.owner_id == self.owner_id))
        if execution is None:
            raise NotFoundException()
        return execution

    async def node_runs(self, execution_id: int) -> list[NodeRun]:
        await self.get(execution_id)
        return list(await self.db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)
                                          .order_by(NodeRun.started_at, NodeRun.id)))

    async def run_summaries(self, execution_id: int) -> list[NodeRun]:
        """Every attempt without its data (input, output, logs): what the timeline and the tables need,
        read again on every live refresh, so megabytes of payload are not loaded each time."""
        await self.get(execution_id)
        return list(await self.db.scalars(
            select(NodeRun).where(NodeRun.execution_id == execution_id)
            .options(defer(NodeRun.input, raiseload=True), defer(NodeRun.output, raiseload=True),
                     defer(NodeRun.logs, raiseload=True))
            .order_by(NodeRun.started_at, NodeRun.id)))

    async def node_attempts(self, execution_id: int, node_id: str) -> list[NodeRun]:
        """The attempts of one node, with their data, oldest first."""
        await self.get(execution_id)
        return list(await self.db.scalars(select(NodeRun).where(
            NodeRun.execution_id == execution_id, NodeRun.node_id == node_id).order_by(NodeRun.attempt)))

    async def pinned_version(self, execution: Execution) -> tuple[int, Graph]:
        """The number and graph of the version the execution ran (not the workflow's current draft)."""
        row = (await self.db.execute(select(WorkflowVersion.number, WorkflowVersion.graph).where(
            WorkflowVersion.id == execution.version_id, WorkflowVersion.workflow_id == execution.workflow_id))).first()
        if row is None:
            return 0, Graph()
        return row.number, graph_from_json(row.graph)

    async def node_run(self, execution_id: int, node_id: str, attempt: int) -> NodeRun:
        """One attempt of one node of one of the owner's executions; 404 otherwise."""
        await self.get(execution_id)
        run = await self.db.scalar(select(NodeRun).where(NodeRun.execution_id == execution_id,
                                                         NodeRun.node_id == node_id, NodeRun.attempt == attempt))
        if run is None:
            raise NotFoundException("This execution has no such node run.")
        return run

    async def last_seq(self, execution_id: int) -> int:
        await self.get(execution_id)
        found = await self.db.scalar(select(func.max(ExecutionEvent.seq))
                                     .where(ExecutionEvent.execution_id == execution_id))
        return found or 0

    async def events_after(self, execution_id: int, after: int, limit: int = 10_000) -> list[dict[str, Any]]:
        await self.get(execution_id)
        rows = await self.db.scalars(select(ExecutionEvent.data).where(
            ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after)
            .order_by(ExecutionEvent.seq).limit(limit))
        return list(rows)

    async def failed(self, limit: int = 200) -> list[tuple[Execution, str]]:
        """The dead letters: executions that ended failed or crashed, newest first."""
        query = (select(Execution, Workflow.name).join(Workflow, Workflow.id == Execution.workflow_id)
                 .where(Execution.owner_id == self.owner_id, Execution.status.in_(FAILED_STATUSES))
                 .order_by(Execution.id.desc()).limit(limit))
        return [(e, name) for e, name in (await self.db.execute(query)).all()]

    async def retry(self, queue: Queue, execution_ids: list[int], *, from_failed_node: bool,
                    timeout: int = 3600, announce: Announce | None = None) -> list[Execution]:
        """Retry failed executions (in bulk): all are checked first, then created, committed, enqueued."""
        originals = [await self.get(execution_id) for execution_id in execution_ids]
        not_failed = [f"#{e.id} is {e.status}" for e in originals if e.status not in FAILED_STATUSES]
        if not_failed:
            raise Invalid("Only failed executions can be retried: " + ", ".join(not_failed) + ".")
        retries = [await create_retry(self.db, e, from_failed_node=from_failed_node) for e in originals]
        await self.db.commit()
        for retry in retries:
            await enqueue_execution(queue, retry.id, timeout=job_timeout_for(timeout), heartbeat=HEARTBEAT)
        if announce is not None:
            names = {id_: name for id_, name in (await self.db.execute(select(Workflow.id, Workflow.name).where(
                Workflow.id.in_({r.workflow_id for r in retries})))).all()}
            await announce_created(announce, [(r, names.get(r.workflow_id, "")) for r in retries])
        return retries

    async def page(self, filters: ExecutionFilter, cursor: Cursor) -> Page:
        """A page of the executions table (``NotFoundException`` for a workflow filter that is not theirs)."""
        if filters.workflow_id is not None:
            await self.check_workflow(filters.workflow_id)
        return await read_page(self.db, self.owner_id, filters, cursor)

    async def check_workflow(self, workflow_id: int) -> None:
        found = await self.db.scalar(select(Workflow.id).where(Workflow.id == workflow_id,
                                                               Workflow.owner_id == self.owner_id))
        if found is None:
            raise NotFoundException(f"There is no workflow {workflow_id} of yours.")

    async def rows(self, execution_ids: list[int]) -> list[ExecutionRow]:
        return await read_rows(self.db, self.owner_id, execution_ids)

    async def workflow_choices(self) -> list[tuple[int, str]]:
        """The owner's workflows (id, name) for the filter, by name."""
        rows = await self.db.execute(select(Workflow.id, Workflow.name).where(Workflow.owner_id == self.owner_id)
                                     .order_by(Workflow.name, Workflow.id))
        return [(id_, name) for id_, name in rows.all()]

    async def recent(self, limit: int = 50, workflow_id: int | None = None) -> list[tuple[Execution, str]]:
        query = (select(Execution, Workflow.name).join(Workflow, Workflow.id == Execution.workflow_id)
                 .where(Execution.owner_id == self.owner_id).order_by(Execution.id.desc()).limit(limit))
        if workflow_id is not None:
            query = query.where(Execution.workflow_id == workflow_id)
        return [(e, name) for e, name in (await self.db.execute(query)).all()]


async def start(db: AsyncSession, queue: Queue, registry: Registry, workflow: Workflow, *,
                input: dict[str, Any] | None = None, trigger: str = "manual", author_id: int | None = None,
                timeout: int = 3600, announce: Announce | None = None) -> Execution:
    """Create the execution, **commit**, then enqueue ``run_execution`` keyed by its id; then ``announce``
    the new row to the live executions table (engine/changes.py)."""
    name = workflow.name
    execution = await create_execution(db, workflow, registry, input=input, trigger=trigger, author_id=author_id)
    await db.commit()
    await enqueue_execution(queue, execution.id, timeout=job_timeout_for(timeout), heartbeat=HEARTBEAT)
    await announce_created(announce, [(execution, name)])
    return execution
