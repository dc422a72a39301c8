"""Expressions in running nodes: a budget refusal fails the node once (never retried), and an evaluation
that burns CPU runs off the event loop, so other coroutines keep running and the node's time limit fails
the node on time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from engine.errors import ExpressionBudgetExceeded
from engine.events import MemorySink
from engine.expressions import Expressions
from engine.expressions.budget import Budget
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.policy import NodeSettings, RetryPolicy
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import registry

EVERY_KIND = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False,
                         retry_on=["network", "timeout", "429", "5xx", "4xx", "other"])
ENDLESS = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
"""2**60 macro calls: with the steps and work limits lifted, it runs until a deadline stops it."""
UNLIMITED = Budget(max_steps=10**12, max_work=10**15, max_seconds=600)


def set_node(value: str, settings: NodeSettings) -> NodeSpec:
    return NodeSpec("s", "set", "Shape", config={"fields": [{"name": "out", "value": value}]}, settings=settings)


async def run(node: NodeSpec, **kw: Any) -> tuple[Any, MemoryRunStore]:
    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "t"), node], connections=[ConnectionSpec("t", node.id)])
    store = MemoryRunStore()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http, trigger_input={"x": 1}, **kw))
    return outcome, store


async def test_a_budget_refusal_fails_the_node_and_is_never_retried() -> None:
    outcome, store = await run(set_node("{{ (9**999)**999 }}", NodeSettings(retry=EVERY_KIND)))
    assert outcome.status == "failed"
    assert [(r.attempt, r.status) for r in store.attempts(1, "s")] == [(1, "failed")]
    error = outcome.error
    assert error["type"] == "ExpressionBudgetExceeded" and error["field"] == "fields.out"
    assert error["message"].startswith("expression exceeded its budget: power result too large (over 10,000 bits)")


async def test_a_cpu_bound_expression_leaves_the_loop_free_and_the_time_limit_fails_the_node_on_time() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        outcome, store = await run(set_node(ENDLESS, NodeSettings(timeout=0.3)), expression_budget=UNLIMITED)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await ticker
    assert outcome.status == "failed" and outcome.error["type"] == "NodeTimeout", outcome.error
    assert outcome.error["message"] == "Shape did not finish within 0.3 s"
    [record] = store.attempts(1, "s")
    assert record.status == "failed" and record.finished_at - record.started_at < 0.3 + 1.0
    assert elapsed < 0.3 + 1.0
    assert ticks >= 5, f"the event loop was blocked: {ticks} ticks in {elapsed:.2f} s"


async def test_an_evaluation_left_behind_stops_at_the_deadline_and_frees_its_thread() -> None:
    expressions = Expressions({}, deadline=time.monotonic() + 0.2, budget=UNLIMITED)
    started = time.monotonic()
    try:
        await expressions.render(ENDLESS, item={}, field="f")
    except ExpressionBudgetExceeded as exc:
        assert "its time limit was reached" in str(exc)
    else:
        raise AssertionError("the endless expression finished")
    assert time.monotonic() - started < 0.2 + 1.0


async def test_plain_lookups_stay_on_the_loop_and_the_rest_is_evaluated_in_the_pool() -> None:
    from engine.expressions import is_lookup

    assert is_lookup("{{ item.name }}") and is_lookup("Hi {{ trigger['who'] }} at {{ nodes['A'][0].x }}")
    assert not is_lookup("{{ item.n * 2 }}") and not is_lookup("{{ item.name | upper }}")
    assert not is_lookup("{% for i in items %}{{ i }}{% endfor %}") and not is_lookup("{{ f() }}")
    expressions = Expressions({"who": "Ada"}, items=[{"n": 2}])
    assert await expressions.render({"a": "{{ trigger.who }}", "b": ["{{ item.n * 21 }}"]}, item={"n": 2}, field="f") \
        == {"a": "Ada", "b": [42]}
