"""Sub-workflows: a node runs another workflow of the same owner, inline, as its own execution.

The called workflow's draft is pinned and recorded as an execution (trigger ``sub_workflow``) so
it shows in the history; it runs in the calling job (no queue round trip, so a full worker cannot
deadlock waiting for itself). Calls that would loop are refused before the run starts
(``check_calls``) and, as a backstop, at run time through the call stack.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import GraphError, NodeError, WorkflowPaused
from engine.graph import Graph, Problem
from engine.limits import MAX_ID, is_id
from engine.models import Workflow, utcnow

if TYPE_CHECKING:
    from engine.runner import Run

SUB_WORKFLOW_TYPE = "sub_workflow"
SUB_TRIGGER = "sub_workflow"
MAX_DEPTH = 10
SUB_LEASE = 5.0
"""The first lease of a sub-execution (engine.worker.LEASE); the caller's heartbeat renews it."""


def called_workflows(graph: Graph) -> list[tuple[str, str, Any]]:
    """(node id, node name, workflow id) of every Sub-workflow node in a graph."""
    return [(n.id, n.name, n.config.get("workflow_id")) for n in graph.nodes if n.type == SUB_WORKFLOW_TYPE]


async def check_calls(session: AsyncSession, workflow: Workflow) -> list[Problem]:
    """Problems with the workflows this one calls: missing, someone else's, or calling back."""
    from engine.executions import load_graph

    problems: list[Problem] = []

    async def visit(current: Workflow, path: tuple[int, ...]) -> None:
        for node_id, node_name, target_id in called_workflows(await load_graph(session, current.id)):
            # A config stored before ids were bounded must not reach the database (an OverflowError there).
            target = await session.get(Workflow, target_id) if is_id(target_id) else None
            where = node_id if current.id == workflow.id else None
            if target is None or target.owner_id != workflow.owner_id:
                problems.append(Problem(f"{node_name}: workflow_id: there is no workflow {target_id} of yours.",
                                        where, "workflow_id"))
            elif target.id in path:
                chain = " → ".join(str(i) for i in (*path, target.id))
                problems.append(Problem(f"{node_name}: workflow_id: workflow {target.id} would call itself ({chain}).",
                                        where or node_id, "workflow_id"))
            elif len(path) < MAX_DEPTH:
                await visit(target, (*path, target.id))

    await visit(workflow, (workflow.id,))
    return problems


class SQLSubWorkflows:
    def __init__(self, parent: Run, sessions: async_sessionmaker[AsyncSession], owner_id: int,
                 call_stack: tuple[int, ...], *, lease_token: str | None = None, active: set[int] | None = None) -> None:
        self._parent, self._sessions, self._owner_id, self._stack = parent, sessions, owner_id, call_stack
        self._lease_token = lease_token
        """The calling job's lease: the sub-execution is renewed with its caller and orphaned with it."""
        self.active: set[int] = set() if active is None else active
        """Sub-executions running now, at any depth (the job's heartbeat renews their lease)."""

    async def run(self, workflow_id: int, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from engine.executions import create_execution, graph_from_json
        from engine.models import WorkflowVersion
        from engine.runner import Run, execute

        if workflow_id in self._stack:
            raise NodeError(f"workflow {workflow_id} would call itself ({' → '.join(map(str, self._stack))})")
        if not is_id(workflow_id):
            raise NodeError(f"there is no workflow {workflow_id} of yours (ids are whole numbers from 1 to {MAX_ID})")
        async with self._sessions() as session:
            target = await session.get(Workflow, workflow_id)
            if target is None or target.owner_id != self._owner_id:
                raise NodeError(f"there is no workflow {workflow_id} of yours")
            try:
                execution = await create_execution(session, target, self._parent.registry, trigger=SUB_TRIGGER,
                                                   input={"items": items})
            except (GraphError, WorkflowPaused) as exc:
                raise NodeError(f"sub-workflow {target.name!r} cannot run: {exc}") from None
            version = await session.get_one(WorkflowVersion, execution.version_id)
            execution.status, execution.started_at = "running", utcnow()
            if self._lease_token is not None:
                execution.lease_token, execution.lease_until = self._lease_token, time.time() + SUB_LEASE
            await session.commit()
            graph, execution_id, name = graph_from_json(version.graph), execution.id, target.name
            created_at, started_at = execution.created_at.timestamp(), execution.started_at.timestamp()
        child = Run(execution_id=execution_id, workflow_id=workflow_id, graph=graph, registry=self._parent.registry,
                    store=self._parent.store, sink=self._parent.sink, http=self._parent.http,
                    start_items=items, execution_timeout=self._parent.execution_timeout,
                    # the same owner: the caller's credentials, and its redactor (the items it gets back are
                    # the caller's data too)
                    credentials=self._parent.credentials, redactor=self._parent.redactor,
                    resume=False,  # created just now: nothing of it is stored yet
                    owner_id=self._owner_id, started_at=started_at,
                    # its first change announces the new row (no extra publish on the hot path)
                    announce={"created": True, "workflow_name": name, "trigger": SUB_TRIGGER, "created_at": created_at})
        child.sub_workflows = SQLSubWorkflows(child, self._sessions, self._owner_id, (*self._stack, workflow_id),
                                              lease_token=self._lease_token, active=self.active)
        self.active.add(execution_id)
        try:
            outcome = await execute(child)
        finally:
            self.active.discard(execution_id)
        if outcome.status != "succeeded":
            message = (outcome.error or {}).get("message", outcome.status)
            raise NodeError(f"sub-workflow {name!r} (execution {execution_id}) failed: {message}",
                            data={"execution_id": execution_id})
        return [item for node_items in outcome.output.values() for item in node_items]
