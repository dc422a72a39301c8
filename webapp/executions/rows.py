"""One row of the executions table: read from the database, or kept up to date from live changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.changes import ExecutionChange
from engine.models import TERMINAL_STATUSES


@dataclass
class ExecutionRow:
    id: int
    owner_id: int
    workflow_id: int
    status: str
    workflow_name: str | None = None
    trigger: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    node: str | None = None
    """A node running now."""
    failed_node: str | None = None
    error: str | None = None
    seq: int = -1
    """The last event seq this state covers (-1: read from the database, any change is newer)."""
    html: str | None = None
    """The row rendered once for every client that shows it; cleared by each change."""

    @property
    def complete(self) -> bool:
        """Whether the fixed part is known (a row announced by its producer, or read from the database)."""
        return self.workflow_name is not None and self.created_at is not None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at) * 1000)

    @classmethod
    def from_change(cls, change: ExecutionChange) -> ExecutionRow:
        row = cls(change.execution_id, change.owner_id, change.workflow_id, change.status)
        row.apply(change)
        return row

    def apply(self, change: ExecutionChange) -> bool:
        """Merge a change; ``False`` (nothing changed) for one older than the state already known."""
        if change.workflow_name is not None:  # the fixed part (a producer's announcement, a job's first change)
            self.workflow_name, self.trigger, self.created_at = change.workflow_name, change.trigger, change.created_at
            self.html = None
        if change.created and change.seq == 0:  # a producer's status is never newer than a worker's
            return True
        if change.seq <= self.seq:
            return change.workflow_name is not None
        self.status, self.seq, self.node = change.status, change.seq, change.node
        self.started_at = change.started_at or self.started_at
        self.finished_at = change.finished_at
        self.failed_node, self.error = change.failed_node, change.error
        self.html = None
        return True

    def merge_fixed(self, other: ExecutionRow) -> None:
        """Take the fixed part of a row read from the database (the live state stays)."""
        self.workflow_name, self.trigger, self.created_at = other.workflow_name, other.trigger, other.created_at
        self.html = None


def epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None
