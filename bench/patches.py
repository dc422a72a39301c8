"""Experimental versions of the fixes proposed in docs/benchmarks.md, applied by monkeypatching.

They exist to *measure* the proposals (bench/experiments.py) without touching engine/ or webapp/;
they are not the patches themselves and are not meant for production.

| name | what it changes (in this process only) | proposal |
| --- | --- | --- |
| ``pool`` | ``make_engine`` gets ``pool_size = worker concurrency + 5`` (PostgreSQL) | engine/database.py ``make_engine`` |
| ``config`` | ``msgspec.structs.fields`` is memoised per type | engine/config.py ``parse_config`` |
| ``store`` | the worker's run store writes each node transition and its event in one Core transaction (``INSERT … ON CONFLICT DO UPDATE`` + event insert), and the outcome with ``workflow.finished`` | engine/sqlstore.py + engine/runner.py |
| ``pure`` | ``store``, and a node without side effects (Set, If, Switch, Merge, Manual Trigger) gets one transaction, at its outcome | engine/contract.py + engine/runner.py |
| ``batch`` | ``pure``, and the transitions of all executions in flight share transactions (group commit, executemany) | engine/sqlstore.py |
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

import engine.database
import engine.worker
from engine.models import Execution, ExecutionEvent, NodeRun
from engine.sqlstore import SQLRunStore, _dt, _fill
from engine.store import NodeRunRecord

NAMES = ("pool", "config", "store", "pure", "batch")


# -- store -------------------------------------------------------------------------------------

PURE_TYPES = frozenset({"manual_trigger", "set", "if", "if_v2", "switch", "merge"})
"""Node types without side effects (re-running them after a crash is harmless) — for ``pure``."""

_STATEMENTS: dict[str, dict[str, Any]] = {}


def _statements(dialect: str) -> dict[str, Any]:
    """Built once per dialect; executed with parameter dicts, so SQLAlchemy's compiled cache hits."""
    if dialect not in _STATEMENTS:
        make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
        row = SimpleNamespace()
        _fill(row, NodeRunRecord("", "", "", 1, ""))
        columns = list(vars(row))  # the same columns as today's ORM write, whatever they become
        upsert = make_insert(NodeRun)
        upsert = upsert.on_conflict_do_update(index_elements=["execution_id", "node_id", "attempt"],
                                              set_={c: getattr(upsert.excluded, c) for c in columns})
        _STATEMENTS[dialect] = {
            "upsert": upsert,
            "event": insert(ExecutionEvent),
            "finished": update(Execution).where(Execution.id == bindparam("eid")).values(
                status=bindparam("status"), output=bindparam("output"), error=bindparam("error"),
                finished_at=bindparam("finished_at"), resume_at=None),
            "waiting": update(Execution).where(Execution.id == bindparam("eid")).values(
                status="waiting", resume_at=bindparam("resume_at")),
        }
    return _STATEMENTS[dialect]


class CoalescingStore(SQLRunStore):
    """``SQLRunStore`` with the same commit-before-publish order and half the transactions.

    A node run's write is held until the store's next call — in the run loop that is always the
    ``record_event`` of the event that announces it (``node.started`` right before the node runs,
    ``node.completed`` / ``node.failed`` / ``node.skipped`` / ``node.retrying``), or the execution's
    outcome. Both are then committed together, with prebuilt Core statements (an upsert instead of
    SELECT + INSERT/UPDATE through the ORM), before the event is published. The outcome is held the
    same way until ``workflow.finished`` is recorded.

    With ``pure=True`` (patch ``pure``), the start of a node without side effects (``PURE_TYPES``)
    is not committed on its own: its row and ``node.started`` event go into the transaction of its
    outcome — one transaction per such node; ``node.started`` is then published before it is committed.
    """

    pure = False

    def __init__(self, sessions: Any) -> None:
        super().__init__(sessions)
        self._engine = sessions.kw["bind"]
        self._sql = _statements(self._engine.dialect.name)
        self._pending: list[tuple[Any, dict[str, Any]]] = []
        self._defer_started = False

    def _upsert_params(self, execution_id: int, record: NodeRunRecord) -> tuple[Any, dict[str, Any]]:
        row = SimpleNamespace()
        _fill(row, record)
        return self._sql["upsert"], {"execution_id": execution_id, "node_id": record.node_id,
                                     "attempt": record.attempt, **vars(row)}

    async def _flush(self, *more: tuple[Any, dict[str, Any]]) -> None:
        statements, self._pending = [*self._pending, *more], []
        if statements:
            async with self._engine.begin() as conn:
                for statement, params in statements:
                    await conn.execute(statement, params)

    async def node_started(self, execution_id: int, record: NodeRunRecord) -> None:
        self._pending.append(self._upsert_params(execution_id, record))
        self._defer_started = self.pure and record.node_type in PURE_TYPES

    async def node_finished(self, execution_id: int, record: NodeRunRecord) -> None:
        self._pending.append(self._upsert_params(execution_id, record))

    async def record_event(self, execution_id: int, seq: int, data: dict[str, Any]) -> None:
        event = (self._sql["event"], {"execution_id": execution_id, "seq": seq, "data": data,
                                      "created_at": datetime.now(UTC)})
        if self._defer_started and data.get("type") == "node.started":
            self._defer_started = False
            self._pending.append(event)
            return
        await self._flush(event)

    async def execution_finished(self, execution_id: int, status: str, output: dict[str, Any] | None,
                                 error: dict[str, Any] | None) -> None:
        self._pending.append((self._sql["finished"], {"eid": execution_id, "status": status, "output": output,
                                                      "error": error, "finished_at": datetime.now(UTC)}))

    async def execution_waiting(self, execution_id: int, resume_at: float) -> None:
        await self._flush((self._sql["waiting"], {"eid": execution_id, "resume_at": _dt(resume_at)}))

    async def latest_runs(self, execution_id: int) -> dict[str, NodeRunRecord]:
        await self._flush()
        return await super().latest_runs(execution_id)

    async def last_seq(self, execution_id: int) -> int:
        await self._flush()
        return await super().last_seq(execution_id)


class PureCoalescingStore(CoalescingStore):
    pure = True


class GroupCommitter:
    """One writer per engine: the transitions of all running executions that arrive while a commit
    is in flight are committed together in the next transaction (statements grouped and sent with
    executemany). Every caller still awaits its own commit before it publishes."""

    _instances: dict[int, GroupCommitter] = {}

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.pending: list[tuple[list[tuple[Any, dict[str, Any]]], asyncio.Future[None]]] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    @classmethod
    def for_engine(cls, engine: Any) -> GroupCommitter:
        key = id(engine)
        if key not in cls._instances:
            cls._instances[key] = cls(engine)
        return cls._instances[key]

    async def commit(self, statements: list[tuple[Any, dict[str, Any]]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((statements, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        self.wakeup.set()
        await future

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.pending = self.pending, []
            if batch:
                await self._commit_batch(batch)

    @staticmethod
    def _grouped(batch: list[tuple[list[tuple[Any, dict[str, Any]]], Any]]) -> list[tuple[Any, list[dict[str, Any]]]]:
        """Statements in first-seen order, each with all its parameter sets (for executemany)."""
        groups: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        for statements, _ in batch:
            for statement, params in statements:
                groups.setdefault(id(statement), (statement, []))[1].append(params)
        return list(groups.values())

    async def _commit_batch(self, batch: list[tuple[list[tuple[Any, dict[str, Any]]], Any]]) -> None:
        try:
            async with self.engine.begin() as conn:
                for statement, params in self._grouped(batch):
                    await conn.execute(statement, params if len(params) > 1 else params[0])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            self.batches += 1
            self.items += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


class GroupCommitStore(PureCoalescingStore):
    """``store`` + ``pure`` + group commit across executions (patch ``batch``)."""

    async def _flush(self, *more: tuple[Any, dict[str, Any]]) -> None:
        statements, self._pending = [*self._pending, *more], []
        if statements:
            await GroupCommitter.for_engine(self._engine).commit(statements)


# -- apply -------------------------------------------------------------------------------------

def _pool_make_engine(original: Any) -> Any:
    def make_engine(url: str, **kwargs: Any) -> Any:
        if not url.startswith("sqlite") and "pool_size" not in kwargs:
            kwargs["pool_size"] = int(os.environ.get("PATCHWIRE_WORKER_CONCURRENCY", "10")) + 5
        return original(url, **kwargs)
    return make_engine


def _cached_fields(original: Any) -> Any:
    cache: dict[Any, Any] = {}

    def fields(type_: Any) -> Any:
        found = cache.get(type_)
        if found is None:
            found = cache[type_] = original(type_)
        return found
    return fields


@contextmanager
def applied(names: tuple[str, ...] | list[str]) -> Iterator[None]:
    """Apply the named patches in this process; undo them on exit."""
    import sys

    undo: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, value: Any) -> None:
        undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    unknown = set(names) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown patches {sorted(unknown)}; known: {', '.join(NAMES)}")
    try:
        if "pool" in names:
            wrapped = _pool_make_engine(engine.database.make_engine)
            for module_name in ("engine.database", "webapp.worker", "webapp.runtime", "webapp.headless", "common"):
                module = sys.modules.get(module_name)
                if module is not None and hasattr(module, "make_engine"):
                    patch(module, "make_engine", wrapped)
        if "config" in names:
            patch(msgspec.structs, "fields", _cached_fields(msgspec.structs.fields))
        if "batch" in names:
            patch(engine.worker, "SQLRunStore", GroupCommitStore)
        elif "store" in names or "pure" in names:
            patch(engine.worker, "SQLRunStore", PureCoalescingStore if "pure" in names else CoalescingStore)
        yield
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)
