"""Log records name the execution and node they come from (engine/logs.py): concurrent branches keep
their own node ids, and a sub-workflow's run has its own execution id until it returns to its caller."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import httpx
import pytest

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.events import MemorySink
from engine.graph import Graph
from engine.logs import RunContextFilter, configure_logging, execution_id_var, node_id_var
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import NODE_TYPES
from tests.engine.test_runner import edge, node


class Talk(NodeType):
    """Logs before and after a pause, so two branches' records interleave."""

    type_name = "talk"
    title = "Talk"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        ctx.logger.info("before %s", ctx.node_id)
        await asyncio.sleep(0.01)
        ctx.logger.info("after %s", ctx.node_id)
        return NodeResult.main(items)


registry = Registry([*NODE_TYPES, Talk])


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RunContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def seen(self) -> list[tuple[str, Any, Any]]:
        return [(r.getMessage(), getattr(r, "execution_id", None), getattr(r, "node_id", None)) for r in self.records]


@pytest.fixture
def captured() -> Any:
    handler = Captured()
    logger = logging.getLogger("patchwire.node")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


class InlineSubWorkflows:
    """Runs the called graph as execution 99, inside the calling node's task (as SQLSubWorkflows does)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def run(self, workflow_id: int, items: list[Item]) -> list[Item]:
        graph = Graph(nodes=[node("in", "manual_trigger"), node("inner", "talk")], connections=[edge("in", "inner")])
        child = Run(execution_id=99, workflow_id=workflow_id, graph=graph, registry=registry, store=MemoryRunStore(),
                    sink=MemorySink(), http=self.http, start_items=items, resume=False)
        outcome = await execute(child)
        logging.getLogger("patchwire.node").info("sub-workflow returned")
        return [i for items in outcome.output.values() for i in items]


async def test_branches_and_sub_workflows_keep_their_own_ids(captured: Captured) -> None:
    graph = Graph(nodes=[node("start", "manual_trigger"), node("left", "talk"), node("right", "talk"),
                         node("call", "sub_workflow", workflow_id=5)],
                  connections=[edge("start", "left"), edge("start", "right"), edge("left", "call")])
    async with httpx.AsyncClient() as http:
        run = Run(execution_id=7, workflow_id=1, graph=graph, registry=registry, store=MemoryRunStore(),
                  sink=MemorySink(), http=http, trigger_input={"n": 1})
        run.sub_workflows = InlineSubWorkflows(http)
        outcome = await execute(run)
    assert outcome.status == "succeeded", outcome.error
    seen = captured.seen()
    assert sorted(seen[:4]) == sorted([("before left", 7, "left"), ("before right", 7, "right"),
                                       ("after left", 7, "left"), ("after right", 7, "right")])
    assert seen[4:] == [("before inner", 99, "inner"), ("after inner", 99, "inner"),
                        ("sub-workflow returned", 7, "call")]  # the caller's ids are back
    assert execution_id_var.get() is None and node_id_var.get() is None  # nothing leaks out of the run


async def test_http_client_log_lines_carry_no_secret_from_a_url() -> None:
    """httpx logs each request's URL at INFO; a Telegram bot token in the path, an API key in the query or a
    password in the authority must not reach the process log (a credential's Test runs outside any run)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("text", "INFO", stream)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200))) as client:
            await client.get("https://api.telegram.org/bot123456:AAHsecret-Token_x/getMe")
            await client.get("https://api.example.com/v1/items?page=2&api_key=k3y-s3cret&access_token=t0k3n")
            await client.get("https://ada:pa55word@dav.example.com/files")
            await client.get("https://api.example.com/v1/items?page=3")
    finally:
        root.handlers[:], root.level = saved
    text = stream.getvalue()
    for secret in ("AAHsecret-Token_x", "k3y-s3cret", "t0k3n", "pa55word"):
        assert secret not in text
    assert "https://api.telegram.org/bot[redacted]/getMe" in text
    assert "page=2&api_key=[redacted]&access_token=[redacted]" in text
    assert "https://[redacted]@dav.example.com/files" in text
    assert "https://api.example.com/v1/items?page=3" in text  # nothing secret: left as it was
