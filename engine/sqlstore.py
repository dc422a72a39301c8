"""The run store on SQL: ``node_runs`` rows, committed before any event is published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import Execution, ExecutionEvent, NodeRun
from engine.store import NodeRunRecord


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def to_record(row: NodeRun) -> NodeRunRecord:
    return NodeRunRecord(
        node_id=row.node_id, node_name=row.node_name, node_type=row.node_type, attempt=row.attempt,
        status=row.status, input=row.input, output=row.output, error=row.error,
        started_at=_epoch(row.started_at), finished_at=_epoch(row.finished_at), resume_at=_epoch(row.resume_at),
    )


class SQLRunStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def latest_runs(self, execution_id: int) -> dict[str, NodeRunRecord]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(NodeRun).where(NodeRun.execution_id == execution_id).order_by(NodeRun.attempt))
            return {row.node_id: to_record(row) for row in rows}  # later attempts overwrite earlier

    async def node_started(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        await self._upsert(execution_id, record, event)

    async def node_finished(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None = None) -> None:
        await self._upsert(execution_id, record, event)

    async def execution_finished(self, execution_id: int, status: str, output: dict[str, Any] | None,
                                 error: dict[str, Any] | None) -> None:
        async with self._sessions.begin() as session:
            execution = await session.get_one(Execution, execution_id)
            execution.status, execution.output, execution.error = status, output, error
            execution.finished_at, execution.resume_at = datetime.now(UTC), None

    async def execution_waiting(self, execution_id: int, resume_at: float) -> None:
        async with self._sessions.begin() as session:
            execution = await session.get_one(Execution, execution_id)
            execution.status, execution.resume_at = "waiting", _dt(resume_at)

    async def record_event(self, execution_id: int, seq: int, data: dict[str, Any]) -> None:
        async with self._sessions.begin() as session:
            session.add(ExecutionEvent(execution_id=execution_id, seq=seq, data=data))

    async def last_seq(self, execution_id: int) -> int:
        async with self._sessions() as session:
            found = await session.scalar(select(func.max(ExecutionEvent.seq))
                                         .where(ExecutionEvent.execution_id == execution_id))
        return found or 0

    async def _upsert(self, execution_id: int, record: NodeRunRecord, event: dict[str, Any] | None) -> None:
        """One row per (execution, node, attempt); a re-run after a crash overwrites its attempt."""
        async with self._sessions.begin() as session:
            row = await session.scalar(select(NodeRun).where(
                NodeRun.execution_id == execution_id, NodeRun.node_id == record.node_id,
                NodeRun.attempt == record.attempt))
            if row is None:
                row = NodeRun(execution_id=execution_id, node_id=record.node_id, attempt=record.attempt)
                session.add(row)
            _fill(row, record)
            if event is not None:
                session.add(ExecutionEvent(execution_id=execution_id, seq=event["seq"], data=event))


def _fill(row: NodeRun, record: NodeRunRecord) -> None:
    values: dict[str, Any] = {
        "node_name": record.node_name, "node_type": record.node_type, "status": record.status,
        "input": record.input, "output": record.output, "error": record.error,
        "started_at": _dt(record.started_at), "finished_at": _dt(record.finished_at),
        "resume_at": _dt(record.resume_at),
    }
    for key, value in values.items():
        setattr(row, key, value)
