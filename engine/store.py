"""The run store seam: where the run loop persists what happened.

``SQLRunStore`` (engine/sqlstore.py) writes ``executions``, ``node_runs`` and ``execution_events``;
``MemoryRunStore`` keeps the same records in memory for engine tests.

The run loop hands the store *transitions*: the node run rows, the numbered events that announce
them and, at the end (or a suspension), the execution's new state — everything one commit must
make durable before any of those events is published.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from engine.events import Event

NodeStatus = str  # running | succeeded | failed | skipped | waiting


@dataclass
class NodeRunRecord:
    node_id: str
    node_name: str
    node_type: str
    attempt: int
    status: NodeStatus
    input: list[dict[str, Any]] | None = None
    output: dict[str, list[dict[str, Any]]] | None = None
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    resume_at: float | None = None
    """A waiting node (or a retry back-off) continues at this time (epoch seconds)."""
    logs: list[dict[str, Any]] | None = None
    """What the node logged through ``ctx.logger`` during this attempt (engine/nodelogs.py), bounded."""


@dataclass
class ExecutionState:
    """The ``executions`` row's new state: final (``finished_at`` set, ``resume_at`` cleared) or
    ``waiting`` until ``resume_at`` (output, error and ``finished_at`` untouched)."""

    status: str
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    finished_at: float | None = None
    resume_at: float | None = None


@dataclass
class Transition:
    """One atomic commit: node run rows (upserted by execution, node and attempt), their events
    (in ``seq`` order) and maybe the execution's new state."""

    runs: list[NodeRunRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    execution: ExecutionState | None = None
    changes: list[Any] = field(default_factory=list)
    """``ExecutionChange`` records (engine/changes.py): published with the events, never stored."""


class RunStore(Protocol):
    async def resume_state(self, execution_id: int) -> tuple[dict[str, NodeRunRecord], int]:
        """The newest attempt of each node that has run, and the last event ``seq`` stored
        (a resumed run starts from these)."""
        ...

    async def commit(self, execution_id: int, transition: Transition) -> bool:
        """Make ``transition`` durable in one transaction. True when the store also delivered its
        events to the live channels (PostgreSQL ``NOTIFY`` in the same transaction), so the caller
        does not publish them again."""
        ...


@dataclass
class MemoryRunStore:
    runs: dict[int, dict[tuple[str, int], NodeRunRecord]] = field(default_factory=dict)
    outcomes: dict[int, tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = field(default_factory=dict)
    events: dict[int, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    waiting: dict[int, float] = field(default_factory=dict)

    async def resume_state(self, execution_id: int) -> tuple[dict[str, NodeRunRecord], int]:
        return await self.latest_runs(execution_id), await self.last_seq(execution_id)

    async def commit(self, execution_id: int, transition: Transition) -> bool:
        for record in transition.runs:
            await self.node_finished(execution_id, record)
        for event in transition.events:
            self.events.setdefault(execution_id, []).append((event.seq, event.to_builtins()))
        state = transition.execution
        if state is not None and state.status == "waiting":
            assert state.resume_at is not None
            self.waiting[execution_id] = state.resume_at
        elif state is not None:
            self.outcomes[execution_id] = (state.status, state.output, state.error)
        return False

    async def last_seq(self, execution_id: int) -> int:
        return max((seq for seq, _ in self.events.get(execution_id, [])), default=0)

    async def latest_runs(self, execution_id: int) -> dict[str, NodeRunRecord]:
        latest: dict[str, NodeRunRecord] = {}
        for record in self.runs.get(execution_id, {}).values():
            if record.node_id not in latest or record.attempt > latest[record.node_id].attempt:
                latest[record.node_id] = record
        return latest

    async def node_finished(self, execution_id: int, record: NodeRunRecord) -> None:
        """Store one node run as it is (tests use it to set up a run to resume)."""
        self.runs.setdefault(execution_id, {})[(record.node_id, record.attempt)] = replace(record)

    def status_of(self, execution_id: int, node_id: str) -> str | None:
        found = sorted((r for (n, _), r in self.runs.get(execution_id, {}).items() if n == node_id),
                       key=lambda r: r.attempt)
        return found[-1].status if found else None

    def attempts(self, execution_id: int, node_id: str) -> list[NodeRunRecord]:
        return sorted((r for (n, _), r in self.runs.get(execution_id, {}).items() if n == node_id),
                      key=lambda r: r.attempt)
