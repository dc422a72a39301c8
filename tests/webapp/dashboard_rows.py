"""Executions written straight into the database with known times, statuses and errors, for the dashboard
tests: the statistics are then known exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine.models import Execution, User, WorkflowVersion


@dataclass(frozen=True)
class Row:
    """One execution: created at ``created``, started one second later, ended ``ms`` milliseconds after that."""

    created: datetime
    status: str
    ms: int | None = None
    error: tuple[str, str, str] | None = None
    """(node name, error type, message)."""

    def execution(self, workflow_id: int, owner_id: int, version_id: int) -> Execution:
        started = self.created + timedelta(seconds=1) if self.status != "queued" else None
        finished = started + timedelta(milliseconds=self.ms) if started and self.ms is not None else None
        error = None
        if self.error:
            node, kind, message = self.error
            error = {"node_id": None if node == "Workflow" else node.lower(), "node_name": node, "type": kind,
                     "message": message}
        return Execution(workflow_id=workflow_id, owner_id=owner_id, version_id=version_id, status=self.status,
                         trigger="manual", input={}, error=error, created_at=self.created, started_at=started,
                         finished_at=finished)


def user_id(db_call: Any, email: str) -> int:
    return db_call(lambda db: db.scalar(select(User.id).where(User.email == email)))


def add_rows(db_call: Any, workflow_id: int, owner_id: int, rows: list[Row]) -> list[int]:
    """Insert ``rows`` in order (so ids grow with them); their execution ids."""

    async def insert(db: Any) -> list[int]:
        version_id = await db.scalar(select(WorkflowVersion.id).where(WorkflowVersion.workflow_id == workflow_id)
                                     .order_by(WorkflowVersion.id).limit(1))
        if version_id is None:
            version = WorkflowVersion(workflow_id=workflow_id, number=1, graph={"nodes": [], "connections": []})
            db.add(version)
            await db.flush()
            version_id = version.id
        ids = []
        for row in rows:  # one at a time: ids follow the order of ``rows``
            execution = row.execution(workflow_id, owner_id, version_id)
            db.add(execution)
            await db.flush()
            ids.append(execution.id)
        await db.commit()
        return ids

    return db_call(insert)
