"""Creating executions: snapshot the graph, pin a version, commit, and only then enqueue."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import msgspec
from saq import Queue
from sqlalchemy import Insert, Select, bindparam, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached

from engine.errors import GraphError, WorkflowPaused
from engine.graph import ConnectionSpec, Graph, NodeSpec, NoteSpec, Position, WorkflowDocument, validate_graph
from engine.models import Connection, Execution, Node, NodeRun, Workflow, WorkflowNote, WorkflowVersion, utcnow
from engine.policy import parse_settings
from engine.registry import Registry
from engine.subworkflows import SUB_WORKFLOW_TYPE, called_workflows, check_calls

JOB_FUNCTION = "run_execution"
MANUAL_TRIGGERS = ("manual", "cli", "retry", "replay", "listen")
"""Started by a person: allowed while the circuit breaker pauses the workflow's automatic triggers.
``replay``: a logged webhook request replayed into a draft run from the editor; ``listen``: a request captured
while someone listens to an inactive workflow's webhook (it runs the draft)."""


async def load_graph(session: AsyncSession, workflow_id: int) -> Graph:
    nodes = await session.scalars(select(Node).where(Node.workflow_id == workflow_id).order_by(Node.created_at, Node.id))
    conns = await session.scalars(select(Connection).where(Connection.workflow_id == workflow_id).order_by(Connection.id))
    return Graph(
        nodes=[NodeSpec(id=n.id, type=n.type_name, version=n.type_version, name=n.name, config=n.config,
                        settings=parse_settings(n.settings), position=Position(n.pos_x, n.pos_y)) for n in nodes],
        connections=[ConnectionSpec(source=c.source_node_id, target=c.target_node_id, source_port=c.source_port,
                                    target_port=c.target_port) for c in conns],
    )


async def export_document(session: AsyncSession, workflow: Workflow) -> WorkflowDocument:
    graph = await load_graph(session, workflow.id)
    rows = await session.scalars(select(WorkflowNote).where(WorkflowNote.workflow_id == workflow.id)
                                 .order_by(WorkflowNote.id))
    notes = [NoteSpec(text=n.text, position=Position(n.pos_x, n.pos_y), width=n.width, height=n.height) for n in rows]
    return WorkflowDocument(name=workflow.name, nodes=graph.nodes, connections=graph.connections, notes=notes)


def graph_to_json(graph: Graph) -> dict[str, Any]:
    return msgspec.to_builtins(graph)


def graph_from_json(data: dict[str, Any]) -> Graph:
    return msgspec.convert(data, Graph)


class GraphCache:
    """Parsed graphs by version id, for a worker: a version is an immutable snapshot, so it is
    converted once per process, and the run loop validates the same ``Graph`` object only once."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._graphs: OrderedDict[int, Graph] = OrderedDict()

    async def load(self, sessions: async_sessionmaker[AsyncSession], version_id: int) -> Graph:
        """The version's graph; read from the database (in a session of its own) only on a miss."""
        graph = self._graphs.get(version_id)
        if graph is not None:
            self._graphs.move_to_end(version_id)
            return graph
        async with sessions() as session:
            return self.get(await session.get_one(WorkflowVersion, version_id))

    def get(self, version: WorkflowVersion) -> Graph:
        graph = self._graphs.get(version.id)
        if graph is None:
            graph = self._graphs[version.id] = graph_from_json(version.graph)
            if len(self._graphs) > self._size:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(version.id)
        return graph


async def touch_draft(session: AsyncSession, workflow_id: int) -> None:
    """Record a change of the workflow's draft graph: call it in the transaction of every change.

    One atomic ``UPDATE … + 1`` (two edits committed at once never share a revision); it leaves loaded
    ``Workflow`` objects alone, so read ``draft_revision`` from the database (``pin_version`` does).
    """
    await session.execute(update(Workflow.__table__).where(Workflow.__table__.c.id == workflow_id)
                          .values(draft_revision=Workflow.__table__.c.draft_revision + 1))


def _pinned_query() -> Select[tuple[int, int | None, bool]]:
    """The draft's revision, the version pinned for it (if any) and whether the draft calls workflows."""
    calls = exists().where(Node.workflow_id == Workflow.id, Node.type_name == SUB_WORKFLOW_TYPE)
    return (select(Workflow.draft_revision, WorkflowVersion.id, calls)
            .outerjoin(WorkflowVersion, (WorkflowVersion.workflow_id == Workflow.id)
                       & (WorkflowVersion.draft_revision == Workflow.draft_revision))
            .where(Workflow.id == bindparam("workflow_id")))


_PINNED = _pinned_query()  # built once: constructing the statement costs more than running it


async def pin_version(session: AsyncSession, workflow: Workflow, registry: Registry, author_id: int | None) -> int:
    """The id of the version the draft runs as; ``GraphError`` if the draft cannot run.

    A version records the draft revision it was pinned from, so an unchanged draft costs one read: it
    was validated when it was pinned (the worker validates its version again before running it). Only
    the call check is repeated, as it depends on other workflows' drafts. A new revision is loaded,
    validated and compared with the newest version as before.
    """
    revision, version_id, calls = (await session.execute(_PINNED, {"workflow_id": workflow.id})).one()
    if version_id is None:
        return await _pin_draft(session, workflow, registry, revision, author_id)
    if calls and (problems := await check_calls(session, workflow)):
        raise GraphError(problems)
    return version_id


async def _pin_draft(session: AsyncSession, workflow: Workflow, registry: Registry, revision: int,
                     author_id: int | None) -> int:
    # the revision is read before the graph: an edit committed in between makes the version's label
    # older than its graph, never newer, and an older revision is never looked up again
    graph = await load_graph(session, workflow.id)
    problems = validate_graph(graph, registry)
    if not problems and called_workflows(graph):
        problems = await check_calls(session, workflow)
    if problems:
        raise GraphError(problems)
    snapshot = graph_to_json(graph)
    latest = await session.scalar(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
                                  .order_by(WorkflowVersion.number.desc()).limit(1))
    try:
        async with session.begin_nested():  # two starts at once may race for the same number or revision
            if latest is not None and latest.graph == snapshot:
                if latest.draft_revision is None or latest.draft_revision < revision:
                    latest.draft_revision = revision  # e.g. a node saved unchanged: same graph, new revision
                return latest.id
            number = (latest.number if latest is not None else 0) + 1
            version = WorkflowVersion(workflow_id=workflow.id, number=number, graph=snapshot,
                                      draft_revision=revision, author_id=author_id)
            session.add(version)
    except IntegrityError:
        return await pin_version(session, workflow, registry, author_id)
    return version.id


def published_versions(query: Select[Any], workflow_id: int) -> Select[Any]:
    """``query`` narrowed to the workflow's published version: the one published last."""
    return (query.where(WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.published_at.is_not(None))
            .order_by(WorkflowVersion.published_at.desc(), WorkflowVersion.id.desc()).limit(1))


async def published_version_id(session: AsyncSession, workflow_id: int) -> int | None:
    """The id of the workflow's published version (``None``: never published)."""
    return await session.scalar(published_versions(select(WorkflowVersion.id), workflow_id))


async def publish(session: AsyncSession, workflow: Workflow, registry: Registry, author_id: int | None) -> WorkflowVersion:
    """Pin the draft (validated: ``GraphError`` if it cannot run) and mark that version published now.
    The caller commits."""
    version = await session.get_one(WorkflowVersion, await pin_version(session, workflow, registry, author_id))
    version.published_at, version.published_by_id = utcnow(), author_id
    await session.flush()
    return version


async def create_execution(session: AsyncSession, workflow: Workflow, registry: Registry, *,
                           input: dict[str, Any] | None = None, trigger: str = "manual",
                           author_id: int | None = None, trigger_node: str | None = None) -> Execution:
    """Validate the draft (``GraphError`` lists the problems), pin it, and add a queued execution.

    Started by a person (``MANUAL_TRIGGERS``) it runs the draft; started automatically (a calling
    workflow, an error workflow, later webhooks and schedules) it runs the workflow's published version,
    or the draft while nothing has been published.
    An unchanged draft that calls no workflows costs one statement (``_INSERT_PINNED``); otherwise
    ``pin_version`` first. The caller commits, then calls ``enqueue_execution`` — never the other way round.
    ``trigger_node``: the trigger node that fired (a webhook, schedule or poll); only it runs.
    """
    if trigger not in MANUAL_TRIGGERS and workflow.paused_until is not None and workflow.paused_until > datetime.now(UTC):
        raise WorkflowPaused(workflow.id, workflow.paused_until)
    values = {"workflow_id": workflow.id, "status": "queued", "trigger": trigger, "input": input or {},
              "created_at": utcnow(), "trigger_node": trigger_node}
    if trigger not in MANUAL_TRIGGERS and (published := await published_version_id(session, workflow.id)):
        row = (await session.execute(_INSERT, {**values, "owner_id": workflow.owner_id, "version_id": published})).one()
        return _persistent(session, Execution(**row._mapping, node_runs=[]))
    row = (await session.execute(_INSERT_PINNED, values)).first()
    if row is None:
        version_id = await pin_version(session, workflow, registry, author_id)
        row = (await session.execute(_INSERT, {**values, "owner_id": workflow.owner_id, "version_id": version_id})).one()
    return _persistent(session, Execution(**row._mapping, node_runs=[]))


_EXECUTIONS = Execution.__table__


def _insert_pinned() -> Insert:
    """INSERT … SELECT: a queued execution of the version pinned for the draft's current revision, or no
    row — none is pinned for it yet, or the draft calls workflows (their check reads other drafts)."""
    workflows, versions, nodes = Workflow.__table__, WorkflowVersion.__table__, Node.__table__
    calls = exists().where(nodes.c.workflow_id == workflows.c.id, nodes.c.type_name == SUB_WORKFLOW_TYPE)
    given = ("status", "trigger", "input", "created_at", "trigger_node")
    pinned = (select(workflows.c.id, workflows.c.owner_id, versions.c.id,
                     *(bindparam(name, type_=_EXECUTIONS.c[name].type) for name in given))
              .select_from(workflows.join(versions, (versions.c.workflow_id == workflows.c.id)
                                          & (versions.c.draft_revision == workflows.c.draft_revision)))
              .where(workflows.c.id == bindparam("workflow_id"), ~calls))
    return (insert(_EXECUTIONS).from_select(["workflow_id", "owner_id", "version_id", *given], pinned)
            .returning(*_EXECUTIONS.c))


# built once (constructing a statement costs more CPU than running it) and run as Core, not through
# the unit of work: an ORM add + flush of the row costs about as much again as the whole INSERT
_INSERT_PINNED = _insert_pinned()
_INSERT = insert(_EXECUTIONS).returning(*_EXECUTIONS.c)


def _persistent(session: AsyncSession, execution: Execution) -> Execution:
    """The inserted row as a persistent object of the session, as if it had been added and flushed."""
    make_transient_to_detached(execution)
    session.add(execution)
    return execution


FAILED_STATUSES = ("failed", "crashed")


async def create_retry(session: AsyncSession, original: Execution, *, from_failed_node: bool) -> Execution:
    """A new execution of the same pinned version and input (a dead letter's second chance).

    ``from_failed_node``: the nodes that had succeeded or were skipped are copied over as settled,
    so the run resumes at the failed node and reuses their outputs; otherwise everything re-runs.
    A test run from the editor keeps its scope, and its given nodes (pinned or earlier output) are copied
    either way (engine/testruns.py).
    The caller commits, then enqueues.
    """
    if original.status not in FAILED_STATUSES:
        raise ValueError(f"execution {original.id} is {original.status}; only failed executions are retried")
    retry = Execution(workflow_id=original.workflow_id, owner_id=original.owner_id, version_id=original.version_id,
                      status="queued", trigger="retry", input=original.input, retry_of_id=original.id,
                      scope=original.scope, trigger_node=original.trigger_node)
    session.add(retry)
    await session.flush()
    scope = set(original.scope) if original.scope is not None else None
    if from_failed_node or scope is not None:  # a test run's given nodes (outside its scope) stay given
        for run in await _settled_runs(session, original.id):
            if not from_failed_node and scope is not None and run.node_id in scope:
                continue
            session.add(NodeRun(execution_id=retry.id, node_id=run.node_id, node_name=run.node_name,
                                node_type=run.node_type, attempt=1, status=run.status, input=run.input,
                                output=run.output, started_at=run.started_at, finished_at=run.finished_at,
                                logs=run.logs))
        await session.flush()
    return retry


async def _settled_runs(session: AsyncSession, execution_id: int) -> list[NodeRun]:
    rows = await session.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id).order_by(NodeRun.attempt))
    latest = {row.node_id: row for row in rows}
    return [row for row in latest.values() if row.status in ("succeeded", "skipped")]


JOB_RETRIES = 10
"""SAQ attempts per job: each start counts (a worker killed while it claims or runs the job, an engine
error). Workers that die mid-run are also capped by ``MAX_INTERRUPTIONS`` (engine/worker.py)."""
JOB_RETRY_MAX_DELAY = 5.0
"""SAQ's back-off between attempts: up to 0.5, 1, 2, 4, then 5 s (full jitter), so a resumed run waits little."""


def job_key(execution_id: int, resume_at: float | None = None) -> str:
    """The SAQ job key: the execution id; a continuation after a wait adds its time."""
    return str(execution_id) if resume_at is None else f"{execution_id}@{int(resume_at * 1000)}"


async def enqueue_execution(queue: Queue, execution_id: int, *, timeout: int, heartbeat: int,
                            resume_at: float | None = None, scheduled: int = 0) -> None:
    """Enqueue ``run_execution`` (a continuation when ``resume_at`` is given). ``scheduled`` later
    than a finished job's lets the same key be enqueued again (how the reconciler revives it)."""
    when = max(scheduled, int(resume_at) + 1 if resume_at is not None else 0)
    await queue.enqueue(JOB_FUNCTION, key=job_key(execution_id, resume_at), execution_id=execution_id,
                        timeout=timeout, heartbeat=heartbeat, retries=JOB_RETRIES, retry_delay=0.5,
                        retry_backoff=JOB_RETRY_MAX_DELAY,
                        scheduled=when)
