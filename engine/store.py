"""The run store seam: where the run loop persists what happened.

``SQLRunStore`` (engine/sqlstore.py) writes ``executions`` and ``node_runs``;
``MemoryRunStore`` keeps the same records in memory for engine tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

NodeStatus = str  # running | succeeded | failed | skipped


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


class RunStore(Protocol):
    async def latest_runs(self, execution_id: int) -> dict[str, NodeRunRecord]:
        """The newest attempt of each node that has run (a resumed run starts from these)."""
        ...

    async def node_started(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        """Store the node run — and its event, when given, in the same transaction."""
        ...

    async def node_finished(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        ...

    async def execution_finished(self, execution_id: int, status: str, output: dict[str, Any] | None,
                                 error: dict[str, Any] | None) -> None: ...

    async def execution_waiting(self, execution_id: int, resume_at: float) -> None:
        """The run is suspended until ``resume_at`` (a continuation job is enqueued by the caller)."""
        ...

    async def record_event(self, execution_id: int, seq: int, data: dict[str, Any]) -> None:
        """Keep a published event (numbered per execution) for clients that reconnect."""
        ...

    async def last_seq(self, execution_id: int) -> int: ...


@dataclass
class MemoryRunStore:
    runs: dict[int, dict[tuple[str, int], NodeRunRecord]] = field(default_factory=dict)
    outcomes: dict[int, tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = field(default_factory=dict)
    events: dict[int, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    waiting: dict[int, float] = field(default_factory=dict)

    async def execution_waiting(self, execution_id: int, resume_at: float) -> None:
        self.waiting[execution_id] = resume_at

    async def record_event(self, execution_id: int, seq: int, data: dict[str, Any]) -> None:
        self.events.setdefault(execution_id, []).append((seq, data))

    async def last_seq(self, execution_id: int) -> int:
        return max((seq for seq, _ in self.events.get(execution_id, [])), default=0)

    async def execution_finished(self, execution_id: int, status: str, output: dict[str, Any] | None,
                                 error: dict[str, Any] | None) -> None:
        self.outcomes[execution_id] = (status, output, error)

    async def latest_runs(self, execution_id: int) -> dict[str, NodeRunRecord]:
        latest: dict[str, NodeRunRecord] = {}
        for record in self.runs.get(execution_id, {}).values():
            if record.node_id not in latest or record.attempt > latest[record.node_id].attempt:
                latest[record.node_id] = record
        return latest

    async def node_started(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        await self.node_finished(execution_id, record, event)

    async def node_finished(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        self.runs.setdefault(execution_id, {})[(record.node_id, record.attempt)] = replace(record)
        if event is not None:
            await self.record_event(execution_id, event["seq"], event)

    def status_of(self, execution_id: int, node_id: str) -> str | None:
        found = sorted((r for (n, _), r in self.runs.get(execution_id, {}).items() if n == node_id),
                       key=lambda r: r.attempt)
        return found[-1].status if found else None

    def attempts(self, execution_id: int, node_id: str) -> list[NodeRunRecord]:
        return sorted((r for (n, _), r in self.runs.get(execution_id, {}).items() if n == node_id),
                      key=lambda r: r.attempt)
