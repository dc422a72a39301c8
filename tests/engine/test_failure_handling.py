"""Retries, back-off, time limits and what happens on final failure — through the real run loop."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, ClassVar

import httpx
import msgspec
import pytest

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.policy import NodeSettings, RetryPolicy, error_kind
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore, NodeRunRecord
from nodes import NODE_TYPES


class FlakyConfig(msgspec.Struct):
    failures: int = 1
    kind: str = "5xx"


class Flaky(NodeType):
    """Fails ``failures`` times with an error of ``kind``, then succeeds."""

    type_name = "flaky"
    title = "Flaky"
    Config = FlakyConfig
    calls: ClassVar[int] = 0

    async def run(self, ctx: NodeContext, config: FlakyConfig, items: list[Item]) -> NodeResult:
        Flaky.calls += 1
        if ctx.attempt <= config.failures:
            raise NodeError(f"boom {ctx.attempt}", kind=config.kind)
        return NodeResult.main([{**i, "attempt": ctx.attempt} for i in items])


class Slow(NodeType):
    type_name = "slow"
    title = "Slow"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        await asyncio.sleep(10)
        return NodeResult.main(items)


registry = Registry([*NODE_TYPES, Flaky, Slow])
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, multiplier=2, max_delay=0.05, jitter=False)


@pytest.fixture(autouse=True)
def _reset() -> None:
    Flaky.calls = 0


def graph(*extra: NodeSpec, connections: list[ConnectionSpec] | None = None) -> Graph:
    nodes = [NodeSpec("t", "manual_trigger", "t"), *extra]
    return Graph(nodes=nodes, connections=connections or [ConnectionSpec("t", extra[0].id)])


async def run(g: Graph, **kw: Any) -> tuple[Any, MemoryRunStore, MemorySink]:
    store, sink = kw.pop("store", None) or MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, g, registry, store, sink, http, trigger_input={"x": 1}, **kw))
    return outcome, store, sink


async def test_retryable_errors_are_retried_each_attempt_recorded() -> None:
    flaky = NodeSpec("f", "flaky", "f", config={"failures": 2}, settings=NodeSettings(retry=FAST))
    outcome, store, sink = await run(graph(flaky))
    assert outcome.status == "succeeded" and outcome.output == {"f": [{"x": 1, "attempt": 3}]}
    attempts = store.attempts(1, "f")
    assert [(r.attempt, r.status) for r in attempts] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert attempts[0].error["message"] == "boom 1" and "retry_in" in attempts[0].error
    assert sink.types("f") == ["node.started", "node.retrying", "node.started", "node.retrying", "node.started",
                               "node.completed"]


async def test_non_retryable_errors_and_exhausted_attempts_fail() -> None:
    client_error = NodeSpec("f", "flaky", "f", config={"failures": 5, "kind": "4xx"}, settings=NodeSettings(retry=FAST))
    outcome, store, _ = await run(graph(client_error))
    assert outcome.status == "failed" and Flaky.calls == 1
    Flaky.calls = 0
    always = NodeSpec("f", "flaky", "f", config={"failures": 5}, settings=NodeSettings(retry=FAST))
    outcome, store, _ = await run(graph(always))
    assert outcome.status == "failed" and Flaky.calls == 3
    assert outcome.error["message"] == "boom 3"


def test_backoff_is_exponential_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay=1, multiplier=2, max_delay=10, jitter=False)
    assert [policy.delay(a) for a in range(1, 6)] == [1, 2, 4, 8, 10]
    jittered = RetryPolicy(initial_delay=1, multiplier=2, max_delay=100, jitter=True)
    rng = random.Random(7)
    samples = [jittered.delay(4, rng=rng) for _ in range(200)]
    assert all(0 <= s <= 8 for s in samples) and max(samples) > 6 and min(samples) < 2
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=500) == 10


def test_error_kinds_drive_what_retries() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.retries(NodeError("x", kind="429"), 1)
    assert policy.retries(NodeError("x", kind="network"), 2)
    assert not policy.retries(NodeError("x", kind="network"), 3)
    assert not policy.retries(NodeError("x", kind="4xx"), 1)
    assert not policy.retries(ValueError("bug"), 1)
    assert error_kind(TimeoutError()) == "timeout"


async def test_continue_passes_error_items_on() -> None:
    failing = NodeSpec("f", "flaky", "f", config={"failures": 9}, settings=NodeSettings(on_error="continue"))
    after = NodeSpec("s", "set", "s", config={"fields": [{"name": "seen", "value": "{{ item.error.message }}"}]})
    g = graph(failing, after, connections=[ConnectionSpec("t", "f"), ConnectionSpec("f", "s")])
    outcome, store, _ = await run(g)
    assert outcome.status == "succeeded"
    assert outcome.output["s"][0]["seen"] == "boom 1"
    assert store.status_of(1, "f") == "failed"


async def test_error_output_routes_failures_and_skips_the_main_branch() -> None:
    failing = NodeSpec("f", "flaky", "f", config={"failures": 9}, settings=NodeSettings(on_error="error_output"))
    ok = NodeSpec("ok", "set", "ok")
    handler = NodeSpec("h", "set", "h", config={"fields": [{"name": "handled", "value": "yes"}]})
    g = graph(failing, ok, handler, connections=[ConnectionSpec("t", "f"), ConnectionSpec("f", "ok"),
                                                  ConnectionSpec("f", "h", source_port="error")])
    outcome, store, _ = await run(g)
    assert outcome.status == "succeeded"
    assert store.status_of(1, "ok") == "skipped"
    assert outcome.output["h"][0]["handled"] == "yes" and outcome.output["h"][0]["error"]["node_id"] == "f"


async def test_node_timeout_from_settings_and_execution_timeout() -> None:
    slow = NodeSpec("s", "slow", "s", settings=NodeSettings(timeout=0.05))
    outcome, _, _ = await run(graph(slow))
    assert outcome.error["type"] == "NodeTimeout" and "0.05 s" in outcome.error["message"]
    outcome, store, _ = await run(graph(NodeSpec("s", "slow", "s")), execution_timeout=0.1)
    assert outcome.status == "failed" and outcome.error["type"] == "ExecutionTimeout"
    assert store.status_of(1, "s") == "failed", "the interrupted node is not left running"


async def test_resume_continues_attempt_numbers() -> None:
    store = MemoryRunStore()
    await store.node_finished(1, NodeRunRecord("t", "t", "manual_trigger", 1, "succeeded", output={"main": [{"x": 1}]}))
    await store.node_finished(1, NodeRunRecord("f", "f", "flaky", 1, "failed", error={"message": "boom 1"}))
    flaky = NodeSpec("f", "flaky", "f", config={"failures": 1}, settings=NodeSettings(retry=FAST))
    outcome, store, _ = await run(graph(flaky), store=store)
    assert outcome.status == "succeeded" and Flaky.calls == 1
    assert [r.attempt for r in store.attempts(1, "f")] == [1, 2]


def test_settings_with_bad_values_are_refused_naming_the_node_and_field() -> None:
    from engine.graph import decode_document

    document = b'{"name": "x", "nodes": [{"id": "f", "type": "delay", "name": "F", "settings": {"retry": {"max_attempts": 0}}}]}'
    with pytest.raises(Exception) as info:
        decode_document(document)
    assert "settings.retry.max_attempts" in str(info.value)


async def _until(moment: float) -> None:
    """Wait for the wall clock to pass ``moment`` (the condition the continuation is scheduled for)."""
    while time.time() < moment:
        await asyncio.sleep(0.02)


async def test_a_long_wait_suspends_the_run_and_a_continuation_finishes_it() -> None:
    wait = NodeSpec("w", "wait", "w", config={"seconds": 0.4})
    after = NodeSpec("s", "set", "s", config={"fields": [{"name": "done", "value": "yes"}]})
    g = graph(wait, after, connections=[ConnectionSpec("t", "w"), ConnectionSpec("w", "s")])
    store = MemoryRunStore()
    outcome, store, sink = await run(g, store=store, inline_wait=0.1)
    assert outcome.status == "waiting" and store.waiting[1] == outcome.resume_at
    assert store.status_of(1, "w") == "waiting" and store.status_of(1, "s") is None
    assert sink.types()[-2:] == ["node.waiting", "workflow.waiting"]
    await _until(outcome.resume_at)
    outcome, store, _ = await run(g, store=store, inline_wait=0.1)
    assert outcome.status == "succeeded" and outcome.output == {"s": [{"x": 1, "done": "yes"}]}
    assert [r.attempt for r in store.attempts(1, "w")] == [1], "the Wait was not run again"


async def test_a_long_back_off_suspends_and_the_next_attempt_runs_in_the_continuation() -> None:
    slow_retry = RetryPolicy(max_attempts=2, initial_delay=0.4, jitter=False)
    flaky = NodeSpec("f", "flaky", "f", config={"failures": 1}, settings=NodeSettings(retry=slow_retry))
    store = MemoryRunStore()
    outcome, store, _ = await run(graph(flaky), store=store, inline_wait=0.1)
    assert outcome.status == "waiting" and Flaky.calls == 1
    early, _, _ = await run(graph(flaky), store=store, inline_wait=0.1)
    assert early.status == "waiting" and Flaky.calls == 1, "woken early: still waiting, nothing re-run"
    await _until(outcome.resume_at)
    outcome, store, _ = await run(graph(flaky), store=store, inline_wait=0.1)
    assert outcome.status == "succeeded" and Flaky.calls == 2
    assert [(r.attempt, r.status) for r in store.attempts(1, "f")] == [(1, "failed"), (2, "succeeded")]
