"""The data model (SQLAlchemy 2). Migrations in ``migrations/`` must match it (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionRow(Base):
    """Server-side web sessions (Litestar store)."""

    __tablename__ = "sessions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (Index("ix_workflows_owner_name", "owner_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=False)
    paused_until: Mapped[datetime | None]
    """Set by the circuit breaker: automatic triggers do not start executions before this time."""
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    draft_revision: Mapped[int] = mapped_column(default=0, server_default="0")
    """Counts the changes of the draft graph (its nodes and connections): every change bumps it in the
    same transaction (``engine.executions.touch_draft``), so an execution reuses the version pinned
    for the current revision instead of comparing the draft again. Read it from the database, not
    from a loaded row: it is bumped with an UPDATE that does not refresh objects in a session."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    nodes: Mapped[list[Node]] = relationship(back_populates="workflow", cascade="all, delete-orphan",
                                             passive_deletes=True, order_by="Node.created_at")
    connections: Mapped[list[Connection]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                         order_by="Connection.id")


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("workflow_id", "name", name="uq_nodes_workflow_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    type_name: Mapped[str] = mapped_column(String(100))
    type_version: Mapped[int] = mapped_column(default=1)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    pos_x: Mapped[float] = mapped_column(default=0.0)
    pos_y: Mapped[float] = mapped_column(default=0.0)
    version: Mapped[int] = mapped_column(default=1)
    pinned_output: Mapped[dict[str, Any] | None]
    """Test data pinned in the editor (output port → items): test runs from the editor use it instead of
    running the node. Not part of the versioned graph; production triggers never see it (engine/testruns.py)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    workflow: Mapped[Workflow] = relationship(back_populates="nodes")
    __mapper_args__ = {"version_id_col": version}


class Connection(Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("source_node_id", "source_port", "target_node_id", "target_port", name="uq_connections_ends"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    source_node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    source_port: Mapped[str] = mapped_column(String(100))
    target_node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    target_port: Mapped[str] = mapped_column(String(100))


class WorkflowNote(Base):
    """A sticky note on the canvas (markdown source). Notes are for people: they never run."""

    __tablename__ = "workflow_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    pos_x: Mapped[float] = mapped_column(default=0.0)
    pos_y: Mapped[float] = mapped_column(default=0.0)
    width: Mapped[float] = mapped_column(default=240.0)
    height: Mapped[float] = mapped_column(default=160.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WorkflowVersion(Base):
    """An immutable snapshot of a graph; every execution pins one."""

    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_number"),
        UniqueConstraint("workflow_id", "draft_revision", name="uq_workflow_versions_draft_revision"),
        Index("ix_workflow_versions_published", "workflow_id", "published_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    graph: Mapped[dict[str, Any]]
    draft_revision: Mapped[int | None]
    """The draft revision this snapshot is the graph of (the newest one pinned to it); none for versions
    pinned before revisions existed, or made elsewhere (tests)."""
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    """When this version was last published; the workflow's published version is the one published last.
    Executions started by automatic triggers (a calling workflow, an error workflow) run it; manual runs
    run the draft."""
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_owner_created", "owner_id", "created_at"),
        Index("ix_executions_workflow_created", "workflow_id", "created_at"),
        Index("ix_executions_status", "status"),
        Index("ix_executions_finished_at", "finished_at"),
        Index("ix_executions_retry_of_id", "retry_of_id"),
        # the executions table's keyset pages, one per filter (migration 0012_exec_indexes)
        Index("ix_executions_owner_id", "owner_id", "id"),
        Index("ix_executions_owner_status_id", "owner_id", "status", "id"),
        Index("ix_executions_owner_trigger_id", "owner_id", "trigger", "id"),
        Index("ix_executions_workflow_id", "workflow_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_versions.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    trigger: Mapped[str] = mapped_column(String(50), default="manual")
    retry_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("executions.id", ondelete="SET NULL", name="fk_executions_retry_of_id"))
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    resume_at: Mapped[datetime | None]
    """A waiting execution continues at this time (its continuation job is scheduled for it)."""
    lease_token: Mapped[str | None] = mapped_column(String(32))
    """The job that runs this execution now; another job may take over only after ``lease_until``."""
    lease_until: Mapped[float | None]
    """Epoch seconds (the workers' clock, like SAQ's): the holder renews it with every heartbeat."""
    scope: Mapped[list[Any] | None]
    """A test run from the editor: the ids of the nodes it may run (the others are settled beforehand or left
    alone). ``None``: every node, as for every trigger other than the editor's test buttons."""
    interruptions: Mapped[int] = mapped_column(default=0, server_default="0")
    """Job starts that found the execution ``running``: its previous worker died or was stopped mid-run."""
    trigger_node: Mapped[str | None] = mapped_column(String(32))
    """The trigger node that started this execution (a webhook, a schedule, a poll): only it runs, the
    workflow's other trigger nodes are skipped. ``None``: every trigger node runs (a manual run)."""

    node_runs: Mapped[list[NodeRun]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                    order_by="NodeRun.id")


class NodeRun(Base):
    __tablename__ = "node_runs"
    __table_args__ = (UniqueConstraint("execution_id", "node_id", "attempt", name="uq_node_runs_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(String(32))
    node_name: Mapped[str] = mapped_column(String(200))
    node_type: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(20))
    input: Mapped[list[Any] | None]
    output: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    resume_at: Mapped[datetime | None]
    logs: Mapped[list[Any] | None]
    """What the node logged through ``ctx.logger`` during this attempt (engine/nodelogs.py): bounded."""


class ExecutionEvent(Base):
    """Every published event, numbered per execution, so a reconnecting client catches up exactly."""

    __tablename__ = "execution_events"
    __table_args__ = (UniqueConstraint("execution_id", "seq", name="uq_execution_events_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    seq: Mapped[int]
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


TERMINAL_STATUSES = ("succeeded", "failed", "crashed", "cancelled")


class LoginThrottle(Base):
    """Log-in attempts per account and per client address (webapp/accounts/throttle.py), shared by every web
    process through the database. ``key`` is a SHA-256 of the normalised e-mail or of the address, so the
    table names no one; the ``failed*`` / ``refused`` columns are what the account's owner is told."""

    __tablename__ = "login_throttle"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(default=0)
    """Attempts counted for the delay (reserved before the password is checked)."""
    last_attempt_at: Mapped[datetime] = mapped_column(index=True)
    failed: Mapped[int] = mapped_column(default=0)
    refused: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime | None]
    last_failed_address: Mapped[str | None] = mapped_column(String(64))


class Credential(Base):
    """A stored credential (engine/credentials/, docs/credentials.md). ``secret`` is the AES-256-GCM blob of
    the secret fields, sealed with key ``key_id`` and bound to this row's owner, id and type; ``public``
    holds the non-secret fields in clear."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_credentials_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    type_name: Mapped[str] = mapped_column(String(100))
    type_version: Mapped[int] = mapped_column(default=1)
    name: Mapped[str] = mapped_column(String(200))
    public: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="ok")
    """``ok`` / ``needs_reconnect`` / ``error`` (with ``status_message``)."""
    status_message: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    """OAuth: when the access token expires (in clear, so the periodic refresh pass can find it)."""
    refresh_lock_until: Mapped[float | None]
    """Epoch seconds: the per-credential refresh lock, taken by compare-and-set (engine/credentials/oauth.py)."""
    refresh_lock_token: Mapped[str | None] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(default=1)
    """Bumped with every write of ``secret``: rotation and refresh write by compare-and-set on it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_used_at: Mapped[datetime | None]


class Trigger(Base):
    """The running state of one automatic trigger node (webhook, schedule, poll) of an active workflow
    (engine/triggers/, docs/triggers.md). Rows are made from the published version when the workflow is
    activated or published while active, and deleted when it is deactivated."""

    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("workflow_id", "node_id", name="uq_triggers_node"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    """``webhook`` / ``schedule`` / ``poll`` (the node type's ``trigger_kind``)."""
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_versions.id", ondelete="CASCADE"))
    """The published version the trigger was started from; its executions run it."""
    node_type: Mapped[str] = mapped_column(String(100))
    node_version: Mapped[int] = mapped_column(default=1)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The node's config in that version."""
    state: Mapped[dict[str, Any] | None]
    """A poll's cursor (``None``: the next poll takes a baseline); a schedule's last slot."""
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the scheduler next fires it (a schedule's next slot, a poll's next poll); ``None``: never (webhooks)."""
    last_run_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(default=0)
    """Consecutive failed polls (backed off, never silently disabled)."""
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[float | None]
    """Epoch seconds: a worker polling this trigger holds it until then (compare-and-set)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ScheduleSlot(Base):
    """One claimed slot of a schedule trigger: the unique key makes a slot start exactly one execution,
    whatever the number of workers and restarts (inserted in the transaction that creates it)."""

    __tablename__ = "schedule_slots"
    __table_args__ = (UniqueConstraint("workflow_id", "node_id", "slot_at", name="uq_schedule_slots_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(32))
    slot_at: Mapped[datetime]
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Webhook(Base):
    """The address of one webhook node: ``/webhook/<token>`` (unguessable) or ``/webhook/<path>`` (chosen by the
    owner, unique per instance). Made with the node, kept while it exists, active or not."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(32), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str | None] = mapped_column(String(200), unique=True)
    listening_until: Mapped[float | None]
    """Epoch seconds: someone listens in the editor; requests are captured (and run as drafts) until then."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookRequest(Base):
    """The short request log of a webhook (headers with secrets masked): shown in the node's panel, replayable."""

    __tablename__ = "webhook_requests"
    __table_args__ = (Index("ix_webhook_requests_webhook_id", "webhook_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(10))
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The trigger's item as made from the request (headers masked, files as binary references)."""
    status: Mapped[int]
    """The HTTP status answered."""
    outcome: Mapped[str] = mapped_column(String(30))
    """``ran`` / ``captured`` / ``refused`` / ``rejected`` / ``error``."""
    message: Mapped[str | None] = mapped_column(Text)
    response: Mapped[dict[str, Any] | None]
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"))


class WebhookEvent(Base):
    """Signed events already accepted (Stripe / Slack / GitHub delivery ids): a replayed one is refused."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("webhook_id", "event_id", name="uq_webhook_events_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(200))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class BinaryData(Base):
    """Binary data of items (a webhook's uploaded file, later PDFs, attachments), stored by reference: an item
    holds ``{"$binary": id, ...}``, never the bytes (engine/binary/, docs/triggers.md "Binary data")."""

    __tablename__ = "binary_data"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"), index=True)
    file_name: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(10))
    """``file`` (under the data directory) or ``db`` (in ``data``)."""
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
