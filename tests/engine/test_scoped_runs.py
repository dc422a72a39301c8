"""Test runs from the editor: a run restricted to a scope, with given (pre-settled) nodes, through the real
run loop; the plan that picks them; pinned data validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.runner import Run, execute
from engine.store import MemoryRunStore, NodeRunRecord
from engine.testruns import MAX_PINNED_BYTES, Given, InvalidPinnedData, MissingTestData, parse_pinned, plan
from tests.engine.test_runner import Probe, registry


def node(node_id: str, type_: str = "probe", **config: Any) -> NodeSpec:
    return NodeSpec(id=node_id, type=type_, name=node_id.upper(), config=config)


def edge(a: str, b: str, port: str = "main") -> ConnectionSpec:
    return ConnectionSpec(source=a, target=b, source_port=port)


# t → a → b → c, and t → side
GRAPH = Graph(nodes=[node("t", "manual_trigger"), node("a"), node("b"), node("c"), node("side")],
              connections=[edge("t", "a"), edge("a", "b"), edge("b", "c"), edge("t", "side")])


async def run_scoped(graph: Graph, scope: set[str], store: MemoryRunStore | None = None,
                     trigger_input: dict[str, Any] | None = None) -> tuple[Any, MemoryRunStore, MemorySink]:
    store, sink = store or MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(7, 1, graph, registry, store, sink, http, trigger_input=trigger_input or {},
                                    scope=frozenset(scope)))
    return outcome, store, sink


def event_nodes(sink: MemorySink) -> list[tuple[str, str | None]]:
    return [(e.type, e.node_name) for e in sink.events]


@pytest.fixture(autouse=True)
def _reset_probe() -> None:
    Probe.calls.clear()


async def test_run_up_to_runs_the_scope_only_and_leaves_the_rest_without_rows_or_events() -> None:
    outcome, store, sink = await run_scoped(GRAPH, {"t", "a", "b"}, trigger_input={"n": 1})
    assert outcome.status == "succeeded"
    assert [name for name, _, _ in Probe.calls] == ["A", "B"]
    assert {n: store.status_of(7, n) for n in ("t", "a", "b", "c", "side")} == {
        "t": "succeeded", "a": "succeeded", "b": "succeeded", "c": None, "side": None}
    assert not {name for _, name in event_nodes(sink)} & {"C", "SIDE"}  # neither run nor skipped
    assert outcome.output == {"B": [{"n": 1, "seen_by": "A"} | {"seen_by": "B"}]}  # the scope's leaf


async def test_run_one_node_uses_the_given_upstream_output_and_runs_nothing_else() -> None:
    store = MemoryRunStore()
    given = {"main": [{"pinned": True}]}
    await store.node_finished(7, NodeRunRecord("a", "A", "probe", 1, "succeeded", output=given))
    outcome, store, sink = await run_scoped(GRAPH, {"b"}, store)
    assert outcome.status == "succeeded"
    assert [name for name, _, _ in Probe.calls] == ["B"]
    b = store.attempts(7, "b")[-1]
    assert b.input == [{"pinned": True}] and b.output == {"main": [{"pinned": True, "seen_by": "B"}]}
    assert store.status_of(7, "t") is None and store.status_of(7, "c") is None
    assert [e for e in event_nodes(sink) if e[1]] == [("node.started", "B"), ("node.completed", "B")]
    assert outcome.output == {"B": [{"pinned": True, "seen_by": "B"}]}


async def test_a_scoped_node_whose_given_input_carries_nothing_on_its_port_is_skipped() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("branch", "if", field="n", operator="greater_than", value="10"), node("yes"), node("no")],
                  connections=[edge("t", "branch"), edge("branch", "yes", "true"), edge("branch", "no", "false")])
    store = MemoryRunStore()
    await store.node_finished(7, NodeRunRecord("branch", "BRANCH", "if", 1, "succeeded", output={"false": [{}]}))
    outcome, store, _ = await run_scoped(graph, {"yes"}, store)
    assert outcome.status == "succeeded"
    assert store.status_of(7, "yes") == "skipped" and store.status_of(7, "no") is None
    assert Probe.calls == []


async def test_without_a_scope_every_node_runs_as_before() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(7, 1, GRAPH, registry, store, sink, http))
    assert outcome.status == "succeeded"
    assert sorted(name for name, _, _ in Probe.calls) == ["A", "B", "C", "SIDE"]


# --- the plan --------------------------------------------------------------------------------------
PIN = {"main": [{"from": "pin"}]}


def test_run_up_to_walks_back_to_the_trigger() -> None:
    chosen = plan(GRAPH, "up_to", "b", {}, {})
    assert chosen.scope == {"t", "a", "b"} and chosen.given == {}


def test_run_up_to_stops_at_a_pinned_node_and_does_not_run_what_only_it_needs() -> None:
    chosen = plan(GRAPH, "up_to", "c", {"a": PIN}, {})
    assert chosen.scope == {"b", "c"}
    assert chosen.given == {"a": Given(PIN, "pinned")}


def test_the_target_of_run_up_to_runs_even_when_pinned() -> None:
    assert plan(GRAPH, "up_to", "b", {"b": PIN}, {}).scope == {"t", "a", "b"}


def test_run_all_with_pins_runs_every_leaf_and_what_it_needs() -> None:
    chosen = plan(GRAPH, "all", None, {"b": PIN}, {})
    assert chosen.scope == {"c", "side", "t"} and set(chosen.given) == {"b"}


def test_run_one_node_gives_its_ancestors_pins_first_then_previous_outputs() -> None:
    previous = {"a": Given({"main": [{"old": 1}]}, "execution #3"), "t": Given({"main": [{}]}, "execution #3")}
    chosen = plan(GRAPH, "only", "b", {"t": PIN}, previous)
    assert chosen.scope == {"b"}
    assert chosen.given == {"a": previous["a"], "t": Given(PIN, "pinned")}


def test_run_one_node_refuses_when_a_predecessor_has_no_data_and_names_it() -> None:
    with pytest.raises(MissingTestData, match="“A” has neither pinned data nor an output from an earlier run") as exc:
        plan(GRAPH, "only", "b", {}, {"t": Given({"main": [{}]}, "execution #1")})
    assert exc.value.node_id == "a"


# --- pinned data ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "message"), [
    ("{", "not valid JSON"),
    ("[]", "must be an object mapping output names"),
    ("{}", "must be an object mapping output names"),
    ('{"nope": []}', "“nope” is not an output of this node (its outputs: main)"),
    ('{"main": {"a": 1}}', "Output “main” must be a list"),
    ('{"main": [1]}', "Output “main”, item 1 must be a JSON object, not int"),
    ('{"main": [{"s": "' + "x" * MAX_PINNED_BYTES + '"}]}', "at most 1,048,576 bytes (1 MiB)"),
])
def test_pinned_data_is_validated_precisely(raw: str, message: str) -> None:
    with pytest.raises(InvalidPinnedData, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pinned(raw, ("main",))


def test_valid_pinned_data_is_returned_decoded() -> None:
    assert parse_pinned('{"main": [{"a": 1}], "error": []}', ("main", "error")) == {"main": [{"a": 1}], "error": []}
