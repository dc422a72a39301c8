"""Execution-level changes: the owner-scoped stream behind the live executions table.

Besides its per-execution events (``pw_execution_<id>``), every commit of a run publishes **one**
compact ``ExecutionChange`` on the single channel ``pw_executions``: the execution's status, the node
running now, the failed node, its start and end — everything a row of the executions table shows,
and the owner it belongs to, so the web process can route it to that owner's browsers only. It
travels in the same publish call (or the same ``pg_notify`` statement) as the events of that commit:
no extra round trip on the worker's hot path.

Producers announce a new execution with a ``created`` change right after their commit (the row can
be shown while it is still queued). The records are not stored: the database stays the truth, and a
(re)connecting browser is sent a fresh snapshot of its page first.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from engine.models import Execution
    from engine.store import Transition

EXECUTIONS_CHANNEL = "pw_executions"


class ExecutionChange(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An execution's state after one commit (``seq``: the last event it covers; 0 for ``created``)."""

    execution_id: int
    owner_id: int
    workflow_id: int
    status: str
    at: float
    seq: int = 0
    node: str | None = None
    """The name of a node running now."""
    failed_node: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    created: bool = False
    """Announced by the producer right after its commit: the row's fixed part follows."""
    workflow_name: str | None = None
    trigger: str | None = None
    created_at: float | None = None

    @property
    def channel(self) -> str:
        return EXECUTIONS_CHANNEL

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> ExecutionChange:
        return msgspec.json.decode(data, type=cls)


Announce = Callable[[list[ExecutionChange]], Awaitable[None]]
"""Publishes changes onto ``EXECUTIONS_CHANNEL`` (the web process: its channels; the CLI: a sink)."""


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def created(execution: Execution, workflow_name: str) -> ExecutionChange:
    """The announcement of an execution just committed (by its producer)."""
    return ExecutionChange(execution_id=execution.id, owner_id=execution.owner_id, workflow_id=execution.workflow_id,
                           status=execution.status, at=time.time(), created=True, workflow_name=workflow_name,
                           trigger=execution.trigger, created_at=_epoch(execution.created_at),
                           started_at=_epoch(execution.started_at))


async def announce_created(announce: Announce | None, executions: list[tuple[Execution, str]]) -> None:
    """Announce committed executions (with their workflow's name); best effort, like every live update."""
    if announce is not None and executions:
        await announce([created(execution, name) for execution, name in executions])


def status_of(transition: Transition) -> str:
    """The execution's status once ``transition`` is committed: its new state, else running."""
    return transition.execution.status if transition.execution is not None else "running"


def change_for(transition: Transition, *, execution_id: int, owner_id: int, workflow_id: int,
               running_node: str | None, error: dict[str, Any] | None, started_at: float | None,
               extra: dict[str, Any] | None = None) -> ExecutionChange:
    """The change one commit of a run makes (the run loop adds it to the transition)."""
    state = transition.execution
    failed = (state.error if state is not None and state.error else error) or {}
    return ExecutionChange(
        execution_id=execution_id, owner_id=owner_id, workflow_id=workflow_id, status=status_of(transition),
        at=time.time(), seq=transition.events[-1].seq if transition.events else 0,
        node=running_node if state is None else None, failed_node=failed.get("node_name"),
        error=(str(failed.get("message"))[:200] if failed.get("message") else None), started_at=started_at,
        finished_at=state.finished_at if state is not None else None, **(extra or {}))
