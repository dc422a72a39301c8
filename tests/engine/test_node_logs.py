"""Node logs: what a node emits through ``ctx.logger`` is kept with its node run, bounded, in the
same commit as the attempt's outcome — in the memory store and in the SQL store (SQLite, PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.database import make_engine, make_sessionmaker
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.migrate import upgrade_async
from engine.models import NodeRun
from engine.nodelogs import MAX_MESSAGE_CHARS, MAX_RECORDS
from engine.policy import NodeSettings, RetryPolicy
from engine.registry import Registry
from engine.runner import Run, execute
from engine.sqlstore import SQLRunStore
from engine.store import MemoryRunStore
from nodes import NODE_TYPES
from tests.engine.test_sqlstore import execution


class ChattyConfig(msgspec.Struct):
    lines: int = 2
    fail_attempts: int = 0
    long: bool = False


class Chatty(NodeType):
    """Logs ``lines`` lines per attempt; its first ``fail_attempts`` attempts raise after logging."""

    type_name = "chatty"
    title = "Chatty"
    Config = ChattyConfig

    async def run(self, ctx: NodeContext, config: ChattyConfig, items: list[Item]) -> NodeResult:
        for n in range(config.lines):
            ctx.logger.info("attempt %d line %d <b>", ctx.attempt, n)
        if config.long:
            ctx.logger.warning("x" * (MAX_MESSAGE_CHARS + 500))
        ctx.logger.debug("debug detail")
        if ctx.attempt <= config.fail_attempts:
            try:
                raise ValueError("inner")
            except ValueError:
                ctx.logger.exception("about to fail")
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return NodeResult.main(items)


registry = Registry([*NODE_TYPES, Chatty])


def graph(**config: Any) -> Graph:
    retry = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=["other"])
    chatty = NodeSpec(id="c", type="chatty", name="Chatty", config=config, settings=NodeSettings(retry=retry))
    return Graph(nodes=[NodeSpec(id="t", type="manual_trigger", name="Start"), chatty],
                 connections=[ConnectionSpec(source="t", target="c")])


async def run_with(store: Any, graph: Graph, execution_id: int = 1) -> str:
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(execution_id, 1, graph, registry, store, MemorySink(), http))
    return outcome.status


async def test_each_attempt_keeps_its_own_records_with_level_and_time() -> None:
    store = MemoryRunStore()
    assert await run_with(store, graph(lines=2, fail_attempts=1)) == "succeeded"
    first, second = store.attempts(1, "c")
    assert [e["message"] for e in first.logs[:2]] == ["attempt 1 line 0 <b>", "attempt 1 line 1 <b>"]
    assert first.logs[2]["level"] == "DEBUG" and first.logs[3]["level"] == "ERROR"
    assert "Traceback" in first.logs[3]["message"] and "ValueError: inner" in first.logs[3]["message"]
    assert [e["message"] for e in second.logs] == ["attempt 2 line 0 <b>", "attempt 2 line 1 <b>", "debug detail"]
    assert all(isinstance(e["at"], float) for e in second.logs)
    assert store.attempts(1, "t")[0].logs == [], "a node that logs nothing has an empty list"


async def test_records_are_bounded_per_attempt() -> None:
    store = MemoryRunStore()
    assert await run_with(store, graph(lines=MAX_RECORDS + 50, long=True)) == "succeeded"
    logs = store.attempts(1, "c")[0].logs
    assert len(logs) == MAX_RECORDS + 1
    assert logs[-1]["dropped"] == 52 and "52 later records not kept" in logs[-1]["message"]


async def test_a_long_message_is_cut() -> None:
    store = MemoryRunStore()
    assert await run_with(store, graph(lines=0, long=True)) == "succeeded"
    message = store.attempts(1, "c")[0].logs[0]["message"]
    assert len(message) < MAX_MESSAGE_CHARS + 40 and message.endswith("(500 more characters)")


async def test_records_go_to_the_process_log_with_ids(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="patchwire.node"):
        await run_with(MemoryRunStore(), graph(lines=1), execution_id=7)
    records = [r for r in caplog.records if r.name == "patchwire.node"]
    assert [r.getMessage() for r in records] == ["attempt 1 line 0 <b>"], "DEBUG stays out of the process log"
    assert (records[0].execution_id, records[0].node_id, records[0].attempt) == (7, "c", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_the_sql_store_writes_logs_with_the_outcome(sessions: async_sessionmaker[AsyncSession]) -> None:
    execution_id = await execution(sessions)
    store = SQLRunStore(sessions)
    try:
        assert await run_with(store, graph(lines=3, fail_attempts=1), execution_id) == "succeeded"
        latest, _ = await store.resume_state(execution_id)
    finally:
        await store.close()
    async with sessions() as s:
        rows = list(await s.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id, NodeRun.node_id == "c")
                                    .order_by(NodeRun.attempt)))
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "succeeded")]
    assert rows[0].logs[0]["message"] == "attempt 1 line 0 <b>" and rows[0].logs[-1]["level"] == "ERROR"
    assert [e["message"] for e in rows[1].logs] == [f"attempt 2 line {n} <b>" for n in range(3)] + ["debug detail"]
    assert latest["c"].logs == rows[1].logs, "a resumed run reads them back"
