"""The run loop through the real engine with the in-memory store and sink."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import httpx
import msgspec
import pytest

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import GraphError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore, NodeRunRecord
from nodes import NODE_TYPES


class SleepConfig(msgspec.Struct):
    seconds: float = 0.0


class Probe(NodeType):
    """Records when it ran; sleeps to make concurrency observable."""

    type_name = "probe"
    title = "Probe"
    Config = SleepConfig
    calls: ClassVar[list[tuple[str, float, float]]] = []

    async def run(self, ctx: NodeContext, config: SleepConfig, items: list[Item]) -> NodeResult:
        start = time.monotonic()
        await asyncio.sleep(config.seconds)
        Probe.calls.append((ctx.node_name, start, time.monotonic()))
        return NodeResult.main([{**i, "seen_by": ctx.node_name} for i in items])


class Boom(NodeType):
    type_name = "boom"
    title = "Boom"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        raise RuntimeError("kaboom")


registry = Registry([*NODE_TYPES, Probe, Boom])


def node(node_id: str, type_: str, **config: Any) -> NodeSpec:
    return NodeSpec(id=node_id, type=type_, name=node_id, config=config)


def edge(a: str, b: str, port: str = "main") -> ConnectionSpec:
    return ConnectionSpec(source=a, target=b, source_port=port)


async def run_graph(graph: Graph, trigger_input: Item | None = None,
                    store: MemoryRunStore | None = None) -> tuple[Any, MemoryRunStore, MemorySink]:
    store, sink = store or MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, sink, http, trigger_input=trigger_input or {}))
    return outcome, store, sink


@pytest.fixture(autouse=True)
def _reset_probe() -> None:
    Probe.calls.clear()


async def test_items_flow_along_connections_and_set_evaluates_expressions() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"),
                         node("s", "set", fields=[{"name": "double", "value": "{{ item.n * 2 }}"},
                                                  {"name": "label", "value": "n={{ item.n }}"}])],
                  connections=[edge("t", "s")])
    outcome, store, _ = await run_graph(graph, {"n": 21})
    assert outcome.status == "succeeded"
    assert outcome.output == {"s": [{"n": 21, "double": 42, "label": "n=21"}]}
    assert store.status_of(1, "s") == "succeeded"


async def test_if_routes_and_untaken_branch_is_skipped_transitively() -> None:
    graph = Graph(
        nodes=[node("t", "manual_trigger"), node("if", "if", field="n", operator="greater_than", value="10"),
               node("big", "probe"), node("small", "probe"), node("after_small", "probe")],
        connections=[edge("t", "if"), edge("if", "big", "true"), edge("if", "small", "false"),
                     edge("small", "after_small")])
    outcome, store, sink = await run_graph(graph, {"n": 50})
    assert outcome.status == "succeeded"
    assert [c[0] for c in Probe.calls] == ["big"]
    assert store.status_of(1, "small") == "skipped"
    assert store.status_of(1, "after_small") == "skipped"
    assert sink.types("after_small") == ["node.skipped"]
    assert outcome.output == {"big": [{"n": 50, "seen_by": "big"}]}


async def test_ready_branches_run_concurrently() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("a", "probe", seconds=0.3), node("b", "probe", seconds=0.3),
                         node("join", "probe")],
                  connections=[edge("t", "a"), edge("t", "b"), edge("a", "join"), edge("b", "join")])
    outcome, _, _ = await run_graph(graph)
    assert outcome.status == "succeeded"
    spans = {name: (start, end) for name, start, end in Probe.calls}
    assert spans["a"][0] < spans["b"][1] and spans["b"][0] < spans["a"][1], "a and b overlapped in time"
    assert spans["join"][0] >= max(spans["a"][1], spans["b"][1]), "join waited for both inputs"
    assert len(outcome.output["join"]) == 2


async def test_each_result_is_persisted_before_its_event() -> None:
    seen: list[tuple[str, str | None]] = []

    class CheckingSink(MemorySink):
        async def publish(self, event: Any) -> None:
            if event.type in ("node.completed", "node.failed", "node.skipped"):
                seen.append((event.type, store.status_of(1, event.node_id)))
            if event.type == "workflow.finished":
                seen.append((event.type, store.outcomes[1][0]))
            await super().publish(event)

    store = MemoryRunStore()
    graph = Graph(nodes=[node("t", "manual_trigger"), node("p", "probe")], connections=[edge("t", "p")])
    async with httpx.AsyncClient() as http:
        await execute(Run(1, 1, graph, registry, store, CheckingSink(), http))
    assert seen == [("node.completed", "succeeded"), ("node.completed", "succeeded"), ("workflow.finished", "succeeded")]


async def test_failure_stops_the_workflow_and_is_recorded_as_data() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("x", "boom"), node("after", "probe")],
                  connections=[edge("t", "x"), edge("x", "after")])
    outcome, store, sink = await run_graph(graph)
    assert outcome.status == "failed"
    assert outcome.error["node_id"] == "x" and outcome.error["message"] == "kaboom"
    assert "RuntimeError" in outcome.error["traceback"]
    assert store.status_of(1, "after") is None
    assert sink.types()[-1] == "workflow.finished"
    assert sink.events[-1].status == "failed"


async def test_resume_never_reruns_a_finished_node() -> None:
    store = MemoryRunStore()
    await store.node_finished(1, NodeRunRecord("a", "a", "probe", 1, "succeeded", output={"main": [{"from": "before"}]}))
    graph = Graph(nodes=[node("t", "manual_trigger"), node("a", "probe"), node("b", "probe")],
                  connections=[edge("t", "a"), edge("a", "b")])
    await store.node_finished(1, NodeRunRecord("t", "t", "manual_trigger", 1, "succeeded", output={"main": [{}]}))
    outcome, _, _ = await run_graph(graph, store=store)
    assert [c[0] for c in Probe.calls] == ["b"]
    assert outcome.output == {"b": [{"from": "before", "seen_by": "b"}]}


async def test_expression_errors_name_node_field_and_expression() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"),
                         node("s", "set", fields=[{"name": "x", "value": "{{ item.__class__.__mro__ }}"}])],
                  connections=[edge("t", "s")])
    outcome, _, _ = await run_graph(graph)
    assert outcome.status == "failed"
    assert outcome.error["node_name"] == "s"
    assert outcome.error["field"] == "fields.x"
    assert "__class__" in outcome.error["expression"]


async def test_node_timeout_fails_the_node() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("slow", "probe", seconds=5)], connections=[edge("t", "slow")])
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, sink, http, node_timeout=0.1))
    assert outcome.status == "failed"
    assert outcome.error["type"] == "NodeTimeout"


async def test_invalid_graph_is_refused_before_anything_runs() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("a", "probe")], connections=[edge("a", "t")])
    with pytest.raises(GraphError):
        await run_graph(graph)
    assert Probe.calls == []


class Weird(NodeType):
    type_name = "weird"
    title = "Weird"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main([{"fn": print}])


class OwnTimeout(NodeType):
    type_name = "own_timeout"
    title = "Own timeout"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        raise TimeoutError("the upstream API timed out")


registry.register(Weird)
registry.register(OwnTimeout)


async def test_outputs_are_normalised_to_json_or_fail_the_node() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("s", "set", fields=[{"name": "at", "value": "{{ now }}"}])],
                  connections=[edge("t", "s")])
    outcome, _, _ = await run_graph(graph)
    assert outcome.status == "succeeded" and isinstance(outcome.output["s"][0]["at"], str)
    graph = Graph(nodes=[node("t", "manual_trigger"), node("w", "weird")], connections=[edge("t", "w")])
    outcome, _, _ = await run_graph(graph)
    assert outcome.status == "failed" and "not JSON" in outcome.error["message"]


async def test_a_nodes_own_timeout_is_not_the_engines() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("o", "own_timeout")], connections=[edge("t", "o")])
    outcome, _, _ = await run_graph(graph)
    assert outcome.error["type"] == "TimeoutError" and "upstream API" in outcome.error["message"]


async def test_cancelling_the_run_cancels_its_node_tasks() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("a", "probe", seconds=5), node("b", "probe", seconds=5)],
                  connections=[edge("t", "a"), edge("t", "b")])
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        task = asyncio.create_task(execute(Run(1, 1, graph, registry, store, sink, http)))
        while store.status_of(1, "a") != "running" or store.status_of(1, "b") != "running":
            await asyncio.sleep(0.01)
        before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(t.done() for t in before), "node tasks outlived the cancelled run"
    assert Probe.calls == []


async def test_expressions_see_items_earlier_nodes_by_name_trigger_and_jsonpath() -> None:
    graph = Graph(
        nodes=[node("t", "manual_trigger"),
               NodeSpec("a", "set", "Orders", config={"fields": [{"name": "orders", "value": "{{ trigger.orders }}"}]}),
               NodeSpec("b", "set", "Summary", config={"keep_existing": False, "fields": [
                   {"name": "ids", "value": '{{ nodes["Orders"][0].orders | jsonpath("$[*].id") }}'},
                   {"name": "count", "value": "{{ items | length }}"},
                   {"name": "who", "value": "{{ trigger.who }}"}]})],
        connections=[edge("t", "a"), edge("a", "b")])
    outcome, _, _ = await run_graph(graph, {"who": "ops", "orders": [{"id": 7}, {"id": 9}]})
    assert outcome.output == {"Summary": [{"ids": [7, 9], "count": 1, "who": "ops"}]}
