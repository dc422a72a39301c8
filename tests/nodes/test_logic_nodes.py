"""If (version 2), Switch, Merge and Wait — through the real run loop with the in-memory store and sink."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from engine.config import config_from_form, parse_config
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import ConfigError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec, validate_graph
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore, NodeRunRecord
from nodes import NODE_TYPES
from nodes import registry as real_registry
from nodes.if_ import If
from nodes.if_v2 import IfV2, IfV2Config
from nodes.merge import MergeConfig
from nodes.switch import SwitchConfig
from nodes.wait import Wait, WaitConfig


class EmitConfig(msgspec.Struct):
    items: list[dict[str, Any]] = []


class Emit(NodeType):
    """Test helper: ignores its input and emits the configured items (a branch with several items)."""

    type_name = "emit"
    title = "Emit"
    Config = EmitConfig

    async def run(self, ctx: NodeContext, config: EmitConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main([dict(i) for i in config.items])


registry = Registry([*NODE_TYPES, Emit])


def node(node_id: str, type_: str, version: int = 1, **config: Any) -> NodeSpec:
    return NodeSpec(id=node_id, type=type_, name=node_id, version=version, config=config)


def edge(a: str, b: str, port: str = "main", target_port: str = "main") -> ConnectionSpec:
    return ConnectionSpec(source=a, target=b, source_port=port, target_port=target_port)


async def run_graph(graph: Graph, trigger_input: Item | None = None, **kw: Any) -> tuple[Any, MemoryRunStore]:
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, sink, http, trigger_input=trigger_input or {}, **kw))
    return outcome, store


def record(store: MemoryRunStore, node_id: str) -> NodeRunRecord:
    return store.attempts(1, node_id)[-1]


def cond(field: str, operator: str, value: Any = None, type_: str = "string") -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value, "type": type_}


async def route_if(item: Item, *conditions: dict[str, Any], combine: str = "and") -> str:
    """Run trigger → If v2 on one item; the output port the item left by."""
    graph = Graph(nodes=[node("t", "manual_trigger"), node("if", "if", 2, combine=combine, conditions=list(conditions))],
                  connections=[edge("t", "if")])
    outcome, store = await run_graph(graph, item)
    assert outcome.status == "succeeded", outcome.error
    ports = [port for port, items in record(store, "if").output.items() if items]
    assert len(ports) == 1, ports
    return ports[0]


# ---------------------------------------------------------------------------------------------- If, version 2


def test_if_version_1_stays_registered_and_new_nodes_get_version_2() -> None:
    assert real_registry.get("if", 1) is If
    assert real_registry.get("if", 2) is IfV2
    assert real_registry.latest("if") is IfV2


@pytest.mark.parametrize(("operator", "value", "field_value", "expected"), [
    ("equals", "ok", "ok", "true"), ("equals", "ok", "OK", "false"),
    ("equals", "5", 5, "true"), ("equals", "true", True, "true"),
    ("not_equals", "ok", "nope", "true"), ("not_equals", "ok", "ok", "false"),
    ("contains", "ell", "hello", "true"), ("contains", "xyz", "hello", "false"),
    ("not_contains", "xyz", "hello", "true"), ("not_contains", "ell", "hello", "false"),
    ("starts_with", "he", "hello", "true"), ("starts_with", "lo", "hello", "false"),
    ("ends_with", "lo", "hello", "true"), ("ends_with", "he", "hello", "false"),
    ("matches", r"^\d{3}-\d{4}$", "555-1234", "true"), ("matches", r"^\d{3}$", "5551", "false"),
    ("is_empty", None, "", "true"), ("is_empty", None, [], "true"), ("is_empty", None, "x", "false"),
    ("is_not_empty", None, "x", "true"), ("is_not_empty", None, "", "false"),
])
async def test_if_string_operators(operator: str, value: Any, field_value: Any, expected: str) -> None:
    assert await route_if({"f": field_value}, cond("f", operator, value)) == expected


@pytest.mark.parametrize(("operator", "value", "field_value", "expected"), [
    ("equals", 10, 10.0, "true"), ("equals", "10", "10", "true"), ("equals", 10, 11, "false"),
    ("not_equals", 10, 11, "true"), ("not_equals", 10, 10, "false"),
    ("gt", 10, 11, "true"), ("gt", 10, 10, "false"),
    ("gte", 10, 10, "true"), ("gte", 10, 9.5, "false"),
    ("lt", "2.5", 2, "true"), ("lt", 2, 2, "false"),
    ("lte", 2, 2, "true"), ("lte", 2, 3, "false"),
    ("gt", 9, "10", "true"),  # numeric strings are read as numbers: 10 > 9, not "10" < "9"
    ("equals", 9007199254740993, 9007199254740993, "true"), ("equals", 9007199254740993, 9007199254740992, "false"),
])
async def test_if_number_operators(operator: str, value: Any, field_value: Any, expected: str) -> None:
    assert await route_if({"n": field_value}, cond("n", operator, value, "number")) == expected


@pytest.mark.parametrize(("operator", "field_value", "expected"), [
    ("is_true", True, "true"), ("is_true", False, "false"), ("is_true", "true", "true"), ("is_true", 1, "true"),
    ("is_false", False, "true"), ("is_false", "FALSE", "true"), ("is_false", True, "false"), ("is_false", 0, "true"),
])
async def test_if_boolean_operators(operator: str, field_value: Any, expected: str) -> None:
    assert await route_if({"b": field_value}, cond("b", operator, None, "boolean")) == expected


@pytest.mark.parametrize(("operator", "value", "field_value", "expected"), [
    ("before", "2024-06-01T00:00:00Z", "2024-05-31T23:59:59Z", "true"),
    ("before", "2024-06-01T00:00:00Z", "2024-06-01T00:00:00Z", "false"),
    ("after", "2024-06-01T00:00:00Z", "2024-06-01T00:00:01+00:00", "true"),
    ("after", "2024-06-01T00:00:00Z", "2024-06-01T01:00:00+02:00", "false"),  # 23:00 UTC the day before
    ("equals", "2024-06-01T08:00:00Z", "2024-06-01T10:00:00+02:00", "true"),  # the same instant
    ("equals", "2024-06-01T08:00:00Z", "2024-06-01T08:00:00+02:00", "false"),
    ("equals", "2024-06-01T00:00:00Z", "2024-06-01", "true"),  # no timezone: UTC
])
async def test_if_date_operators_compare_instants(operator: str, value: str, field_value: str, expected: str) -> None:
    assert await route_if({"d": field_value}, cond("d", operator, value, "date")) == expected


async def test_if_and_or_combine() -> None:
    item = {"status": "ok", "total": 50}
    ok, big = cond("status", "equals", "ok"), cond("total", "gt", 100, "number")
    assert await route_if(item, ok, big, combine="and") == "false"
    assert await route_if(item, ok, big, combine="or") == "true"
    assert await route_if(item, ok, cond("total", "lt", 100, "number"), combine="and") == "true"
    assert await route_if(item, cond("status", "equals", "no"), big, combine="or") == "false"


@pytest.mark.parametrize(("operator", "type_", "value", "expected"), [
    ("exists", "string", None, "false"), ("not_exists", "string", None, "true"),
    ("equals", "string", "x", "false"), ("not_equals", "string", "x", "false"),
    ("is_empty", "string", None, "false"), ("gt", "number", 1, "false"), ("is_false", "boolean", None, "false"),
    ("before", "date", "2024-01-01T00:00:00Z", "false"),
])
async def test_if_missing_and_null_fields_only_match_not_exists(operator: str, type_: str, value: Any,
                                                                 expected: str) -> None:
    assert await route_if({"other": 1}, cond("gone", operator, value, type_)) == expected
    assert await route_if({"gone": None}, cond("gone", operator, value, type_)) == expected
    assert await route_if({"a": {"b": []}}, cond("a.b.0", operator, value, type_)) == expected


async def test_if_existence_ignores_type_and_follows_dotted_paths() -> None:
    item = {"body": {"rows": [{"id": 7}]}}
    assert await route_if(item, cond("body.rows.0.id", "exists", None, "date")) == "true"
    assert await route_if(item, cond("body.rows.1.id", "exists", None, "number")) == "false"
    assert await route_if(item, cond("body.rows.0.id", "equals", 7, "number")) == "true"


@pytest.mark.parametrize(("item", "condition", "needles"), [
    ({"age": "abc"}, cond("age", "gt", 5, "number"), ["conditions[0]", "'age'", "'abc'", "number"]),
    ({"ok": "maybe"}, cond("ok", "is_true", None, "boolean"), ["'ok'", "'maybe'", "boolean"]),
    ({"when": "yesterday"}, cond("when", "before", "2024-01-01T00:00:00Z", "date"), ["'when'", "'yesterday'"]),
    ({"tags": ["a"]}, cond("tags", "contains", "a"), ["'tags'", "['a']", "string"]),
    ({"n": 1}, cond("n", "equals", "{{ trigger.word }}", "number"), ["conditions[0].value", "'abc'", "number"]),
])
async def test_if_values_that_are_not_of_the_type_fail_the_node_with_field_and_value(
        item: Item, condition: dict[str, Any], needles: list[str]) -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("if", "if", 2, conditions=[condition]),
                         node("yes", "set"), node("no", "set")],
                  connections=[edge("t", "if"), edge("if", "yes", "true"), edge("if", "no", "false")])
    outcome, store = await run_graph(graph, {**item, "word": "abc"})
    assert outcome.status == "failed"
    assert outcome.error["node_id"] == "if" and outcome.error["type"] == "NodeError"
    for needle in needles:
        assert needle in outcome.error["message"], (needle, outcome.error["message"])
    assert store.status_of(1, "yes") is None and store.status_of(1, "no") is None


async def test_if_conditions_stop_once_the_result_is_known() -> None:
    broken = cond("age", "gt", 5, "number")  # "abc" is not a number: only an error if reached
    assert await route_if({"age": "abc", "s": "x"}, cond("s", "equals", "x"), broken, combine="or") == "true"
    assert await route_if({"age": "abc", "s": "x"}, cond("s", "equals", "y"), broken, combine="and") == "false"


async def test_if_values_may_be_expressions_per_item() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"),
                         node("e", "emit", items=[{"n": 5, "limit": 3}, {"n": 5, "limit": 9}]),
                         node("if", "if", 2, conditions=[cond("n", "gt", "{{ item.limit }}", "number")])],
                  connections=[edge("t", "e"), edge("e", "if")])
    outcome, store = await run_graph(graph)
    assert outcome.status == "succeeded"
    assert record(store, "if").output == {"true": [{"n": 5, "limit": 3}], "false": [{"n": 5, "limit": 9}]}


async def test_if_untaken_branch_is_skipped() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("if", "if", 2, conditions=[cond("x", "exists")]),
                         node("yes", "set"), node("no", "set"), node("no2", "set")],
                  connections=[edge("t", "if"), edge("if", "yes", "true"), edge("if", "no", "false"),
                               edge("no", "no2")])
    outcome, store = await run_graph(graph, {"x": 1})
    assert outcome.status == "succeeded"
    assert [store.status_of(1, n) for n in ("yes", "no", "no2")] == ["succeeded", "skipped", "skipped"]


# ---------------------------------------------------------------------------------------------- Switch

ITEMS = [{"id": 1, "kind": "a", "total": 5}, {"id": 2, "kind": "b", "total": 500}, {"id": 3, "kind": "a", "total": 900},
         {"id": 4, "kind": "c", "total": 1}]
RULES = [cond("kind", "equals", "a"), cond("total", "gte", 100, "number")]


async def run_switch(mode: str, rules: list[dict[str, Any]], items: list[Item] | None = None) -> MemoryRunStore:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("e", "emit", items=items or ITEMS),
                         node("sw", "switch", mode=mode, rules=rules), node("r0", "set"), node("r1", "set"),
                         node("r2", "set"), node("fb", "set")],
                  connections=[edge("t", "e"), edge("e", "sw"), edge("sw", "r0", "0"), edge("sw", "r1", "1"),
                               edge("sw", "r2", "2"), edge("sw", "fb", "fallback")])
    outcome, store = await run_graph(graph)
    assert outcome.status == "succeeded", outcome.error
    return store


def ids(store: MemoryRunStore, node_id: str, port: str = "main") -> list[int]:
    return [i["id"] for i in (record(store, node_id).output or {}).get(port, [])]


async def test_switch_first_match_sends_each_item_to_its_first_matching_rule() -> None:
    store = await run_switch("first_match", RULES)
    assert ids(store, "sw", "0") == [1, 3]
    assert ids(store, "sw", "1") == [2]
    assert ids(store, "sw", "fallback") == [4]
    assert ids(store, "r0") == [1, 3] and ids(store, "fb") == [4]
    assert store.status_of(1, "r2") == "skipped"


async def test_switch_all_matches_sends_an_item_to_every_matching_rule() -> None:
    store = await run_switch("all_matches", RULES)
    assert ids(store, "sw", "0") == [1, 3]
    assert ids(store, "sw", "1") == [2, 3]
    assert ids(store, "sw", "fallback") == [4]


async def test_switch_fallback_takes_everything_when_no_rule_matches() -> None:
    store = await run_switch("first_match", [cond("kind", "equals", "zzz")])
    assert ids(store, "sw", "fallback") == [1, 2, 3, 4]
    assert "0" not in record(store, "sw").output
    assert store.status_of(1, "r0") == "skipped" and store.status_of(1, "fb") == "succeeded"


async def test_switch_rule_on_a_missing_field_does_not_match_except_existence() -> None:
    items = [{"id": 1, "score": 3}, {"id": 2}, {"id": 3, "score": None}]
    store = await run_switch("first_match", [cond("score", "gt", 1, "number"), cond("score", "not_exists")], items)
    assert ids(store, "sw", "0") == [1]
    assert ids(store, "sw", "1") == [2, 3]
    store = await run_switch("all_matches", [cond("score", "lt", 100, "number"), cond("score", "exists")], items)
    assert ids(store, "sw", "0") == [1] and ids(store, "sw", "1") == [1]
    assert ids(store, "sw", "fallback") == [2, 3]


async def test_switch_type_error_fails_the_node() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("sw", "switch", rules=[cond("n", "gt", 1, "number")])],
                  connections=[edge("t", "sw")])
    outcome, _ = await run_graph(graph, {"n": "lots"})
    assert outcome.status == "failed"
    assert "rules[0]" in outcome.error["message"] and "'lots'" in outcome.error["message"]


async def test_a_catastrophically_backtracking_pattern_fails_the_node_in_bounded_time() -> None:
    """``(a|aa)+$`` on 40 a's and a b would take Python's ``re`` minutes; the node fails instead, once."""
    graph = Graph(nodes=[node("t", "manual_trigger"), node("if", "if", 2, combine="and",
                                                          conditions=[cond("s", "matches", r"(a|aa)+$")])],
                  connections=[edge("t", "if")])
    started = time.monotonic()
    outcome, store = await run_graph(graph, {"s": "a" * 40 + "b"})
    assert outcome.status == "failed" and "catastrophic backtracking" in outcome.error["message"]
    assert time.monotonic() - started < 30, "bounded by the regex time limit, not the node timeout"
    assert len(store.attempts(1, "if")) == 1, "not retried: the same input would time out again"


# ---------------------------------------------------------------------------------------------- Merge

A_ITEMS = [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}, {"id": 3, "name": "Cy"}]
B_ITEMS = [{"id": 2, "city": "Oslo"}, {"id": 1, "city": "Rome", "name": "ANN"}]


def merge_graph(a_items: list[Item], b_items: list[Item], **config: Any) -> Graph:
    return Graph(nodes=[node("t", "manual_trigger"), node("a", "emit", items=a_items), node("b", "emit", items=b_items),
                        node("m", "merge", **config)],
                 connections=[edge("t", "a"), edge("t", "b"), edge("a", "m", target_port="a"),
                              edge("b", "m", target_port="b")])


async def merged(a_items: list[Item], b_items: list[Item], **config: Any) -> list[Item]:
    outcome, store = await run_graph(merge_graph(a_items, b_items, **config))
    assert outcome.status == "succeeded", outcome.error
    return outcome.output["m"]


async def test_merge_append_passes_a_then_b() -> None:
    assert await merged(A_ITEMS, B_ITEMS, mode="append") == [*A_ITEMS, *B_ITEMS]


async def test_merge_combine_by_position_b_wins_and_extra_items_pass_unmerged() -> None:
    out = await merged(A_ITEMS, B_ITEMS, mode="combine_by_position")
    assert out == [{"id": 2, "name": "Ann", "city": "Oslo"}, {"id": 1, "name": "ANN", "city": "Rome"},
                   {"id": 3, "name": "Cy"}]
    out = await merged(A_ITEMS[:1], B_ITEMS, mode="combine_by_position")
    assert out == [{"id": 2, "name": "Ann", "city": "Oslo"}, {"id": 1, "city": "Rome", "name": "ANN"}]


async def test_merge_combine_by_key_is_an_inner_join_on_typed_keys() -> None:
    out = await merged(A_ITEMS, B_ITEMS, mode="combine_by_key", key_a="id", key_b="id")
    assert out == [{"id": 1, "name": "ANN", "city": "Rome"}, {"id": 2, "name": "Bob", "city": "Oslo"}]
    b = [{"user": {"id": 1}, "v": "x"}, {"user": {"id": 1}, "v": "y"}, {"user": {"id": "3"}, "v": "str"}, {"v": "no key"}]
    out = await merged(A_ITEMS, b, mode="combine_by_key", key_a="id", key_b="user.id")
    assert [(i["name"], i["v"]) for i in out] == [("Ann", "x"), ("Ann", "y")]  # every pair; "3" is not 3


async def test_merge_combine_by_key_can_keep_unmatched_items() -> None:
    b = [{"id": 2, "city": "Oslo"}, {"id": 9, "city": "Lima"}]
    out = await merged(A_ITEMS, b, mode="combine_by_key", key_a="id", key_b="id", keep_unmatched=True)
    assert out == [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob", "city": "Oslo"}, {"id": 3, "name": "Cy"},
                   {"id": 9, "city": "Lima"}]


async def test_merge_wait_pass_first_waits_for_b_and_passes_a() -> None:
    graph = merge_graph(A_ITEMS, B_ITEMS, mode="wait_pass_first")
    graph.nodes.append(node("slow", "wait", seconds=0.2))
    graph.connections[3:] = [edge("b", "slow"), edge("slow", "m", target_port="b")]
    outcome, store = await run_graph(graph)
    assert outcome.status == "succeeded"
    assert outcome.output == {"m": A_ITEMS}
    assert record(store, "m").started_at >= record(store, "slow").finished_at


@pytest.mark.parametrize("mode", ["append", "combine_by_position", "combine_by_key", "wait_pass_first"])
@pytest.mark.parametrize("live", ["a", "b"])
async def test_merge_with_one_skipped_branch_passes_the_live_input(mode: str, live: str) -> None:
    """An If upstream routes everything to one side: the other input is skipped, Merge still runs."""
    items = {"a": A_ITEMS, "b": B_ITEMS}
    graph = Graph(nodes=[node("t", "manual_trigger"),
                         node("if", "if", 2, conditions=[cond("side", "equals", "a")]),
                         node("a", "emit", items=A_ITEMS), node("b", "emit", items=B_ITEMS),
                         node("m", "merge", mode=mode, key_a="id", key_b="id")],
                  connections=[edge("t", "if"), edge("if", "a", "true"), edge("if", "b", "false"),
                               edge("a", "m", target_port="a"), edge("b", "m", target_port="b")])
    outcome, store = await run_graph(graph, {"side": live})
    assert outcome.status == "succeeded", outcome.error
    skipped = "b" if live == "a" else "a"
    assert store.status_of(1, skipped) == "skipped" and store.status_of(1, "m") == "succeeded"
    assert outcome.output == {"m": items[live]}


async def test_merge_is_skipped_when_both_branches_are() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("if", "if", 2, conditions=[cond("x", "exists")]),
                         node("a", "set"), node("b", "set"), node("m", "merge")],
                  connections=[edge("t", "if"), edge("if", "a", "true"), edge("if", "b", "true"),
                               edge("a", "m", target_port="a"), edge("b", "m", target_port="b")])
    outcome, store = await run_graph(graph, {})
    assert outcome.status == "succeeded"
    assert store.status_of(1, "m") == "skipped"


async def test_merge_key_join_that_explodes_fails_clearly() -> None:
    many = [{"k": 1, "i": i} for i in range(400)]
    outcome, _ = await run_graph(merge_graph(many, many, mode="combine_by_key", key_a="k", key_b="k"))
    assert outcome.status == "failed" and "more than 100,000 items" in outcome.error["message"]


# ---------------------------------------------------------------------------------------------- Parallel branches


async def test_a_slow_branch_does_not_delay_a_fast_one() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("slow", "wait", seconds=0.5), node("after_slow", "set"),
                         node("fast", "set"), node("after_fast", "set"), node("m", "merge")],
                  connections=[edge("t", "slow"), edge("slow", "after_slow"), edge("t", "fast"),
                               edge("fast", "after_fast"), edge("after_slow", "m", target_port="a"),
                               edge("after_fast", "m", target_port="b")])
    outcome, store = await run_graph(graph, {"x": 1})
    assert outcome.status == "succeeded"
    slow, fast = record(store, "slow"), record(store, "after_fast")
    assert fast.finished_at < slow.finished_at, "the fast branch finished while the slow one was still waiting"
    assert fast.finished_at - slow.started_at < 0.4
    assert record(store, "m").started_at >= record(store, "after_slow").finished_at, "Merge waited for both"
    assert outcome.output == {"m": [{"x": 1}, {"x": 1}]}


# ---------------------------------------------------------------------------------------------- Wait


async def test_wait_duration_waits_and_is_not_cut_by_the_node_timeout() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("w", "wait", seconds=0.3)], connections=[edge("t", "w")])
    outcome, store = await run_graph(graph, {"x": 1}, node_timeout=0.1)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.output == {"w": [{"x": 1}]}
    w = record(store, "w")
    assert w.finished_at - w.started_at >= 0.3


async def test_wait_until_in_the_past_passes_at_once() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("w", "wait", mode="until", until="2000-01-01T00:00:00Z",
                                                            seconds=60)],
                  connections=[edge("t", "w")])
    started = time.monotonic()
    outcome, store = await run_graph(graph, {"x": 1})
    assert outcome.status == "succeeded" and outcome.output == {"w": [{"x": 1}]}
    assert time.monotonic() - started < 5
    w = record(store, "w")
    assert w.finished_at - w.started_at < 1


async def test_wait_until_an_expression_waits_until_that_time() -> None:
    at = (datetime.now(UTC) + timedelta(seconds=0.4)).isoformat()
    graph = Graph(nodes=[node("t", "manual_trigger"), node("w", "wait", mode="until", until="{{ item.at }}")],
                  connections=[edge("t", "w")])
    outcome, store = await run_graph(graph, {"at": at})
    assert outcome.status == "succeeded", outcome.error
    assert record(store, "w").finished_at >= datetime.fromisoformat(at).timestamp()


@pytest.mark.parametrize(("until", "needle"), [
    ("{{ item.at }}", "not an ISO 8601 date-time"),
    ("{{ item.naive }}", "no timezone"),
    ((datetime.now(UTC) + timedelta(days=400)).isoformat(), "more than a year away"),
], ids=["not-a-date", "naive", "too-far"])  # fixed ids: pytest-xdist's workers must collect the same names
async def test_wait_until_that_cannot_be_waited_for_fails_clearly(until: str, needle: str) -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("w", "wait", mode="until", until=until)],
                  connections=[edge("t", "w")])
    outcome, _ = await run_graph(graph, {"at": "soon", "naive": "2030-01-01T00:00:00"})
    assert outcome.status == "failed"
    assert "until" in outcome.error["message"] and needle in outcome.error["message"]


def test_wait_returns_its_items_with_the_time_they_may_pass() -> None:
    import asyncio
    import logging

    from engine.expressions import Expressions

    ctx = type("Ctx", (), {"expressions": Expressions({}), "logger": logging.getLogger("test")})()
    result = asyncio.run(Wait().run(ctx, WaitConfig(seconds=600), [{"x": 1}]))  # type: ignore[arg-type]
    assert result.outputs == {"main": [{"x": 1}]} and 595 < result.not_before - time.time() <= 600
    past = asyncio.run(Wait().run(ctx, WaitConfig(mode="until", until="2000-01-01T00:00:00Z"), []))  # type: ignore[arg-type]
    assert past.not_before is None


# ---------------------------------------------------------------------------------------------- Save-time validation


def errors_of(config_type: type[msgspec.Struct], raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_type, raw)
    return caught.value.field_errors


@pytest.mark.parametrize(("condition", "message"), [
    (cond("f", "gt", 1), "conditions[2].operator: 'gt' is not an operator for type string"),
    (cond("f", "equals", 1, "text"), "conditions[2].type: 'text' is not a type"),
    (cond("", "equals", "x"), "conditions[2].field: required"),
    (cond("f", ""), "conditions[2].operator: required"),
    (cond("f", "equals"), "conditions[2].value: required for operator equals"),
    (cond("f", "gt", "abc", "number"), "conditions[2].value: 'abc' is not a number"),
    (cond("f", "after", "next week", "date"), "conditions[2].value: 'next week' is not an ISO 8601 date-time"),
    (cond("f", "matches", "(unclosed"), "conditions[2].value: not a valid regular expression"),
    (cond("f", "matches", "a" * 501), "conditions[2].value: the regular expression is longer than 500 characters"),
    (cond("f", "equals", "{{ item. }}"), "conditions[2].value: "),
])
def test_if_conditions_are_checked_at_save_with_index_and_field(condition: dict[str, Any], message: str) -> None:
    good = [cond("a", "exists"), cond("b", "is_true", None, "boolean")]
    errors = errors_of(IfV2Config, {"combine": "and", "conditions": [*good, condition]})
    assert list(errors) == ["conditions"]
    assert errors["conditions"].startswith(message), errors


def test_if_config_other_errors_at_save() -> None:
    assert errors_of(IfV2Config, {"conditions": []}) == {"conditions": "Add at least one condition."}
    assert errors_of(IfV2Config, {}) == {"conditions": "This field is required."}
    assert set(errors_of(IfV2Config, {"combine": "xor", "conditions": [cond("a", "exists")]})) == {"combine"}
    assert "unknown field" in errors_of(IfV2Config, {"conditions": [{**cond("a", "exists"), "op": 1}]})["conditions"]
    assert set(errors_of(IfV2Config, {"field": "x", "conditions": [cond("a", "exists")]})) == {"field"}
    many = [cond("a", "exists")] * 51
    assert "At most 50" in errors_of(IfV2Config, {"conditions": many})["conditions"]
    every = "; ".join(errors_of(IfV2Config, {"conditions": [cond("a", "gt", 1), cond("", "exists")]}).values())
    assert "conditions[0].operator" in every and "conditions[1].field" in every


def test_if_conditions_come_from_the_forms_json_field_and_are_valid() -> None:
    text = '[{"field": "body.total", "type": "number", "operator": "gte", "value": "10"}]'
    raw, errors = config_from_form(IfV2Config, {"combine": ["or"], "conditions": [text]})
    assert errors == {}
    config = parse_config(IfV2Config, raw)
    assert config.combine == "or" and config.conditions[0].operator == "gte"
    _, errors = config_from_form(IfV2Config, {"conditions": ["[{"]})
    assert "Not valid JSON" in errors["conditions"]


def test_switch_config_errors_at_save() -> None:
    five = [cond("a", "exists")] * 5
    assert "At most 4 rules" in errors_of(SwitchConfig, {"rules": five})["rules"]
    assert errors_of(SwitchConfig, {"rules": []}) == {"rules": "Add at least one rule."}
    assert errors_of(SwitchConfig, {"rules": [cond("a", "lte", 1)]})["rules"].startswith(
        "rules[0].operator: 'lte' is not an operator for type string")
    assert set(errors_of(SwitchConfig, {"mode": "some", "rules": [cond("a", "exists")]})) == {"mode"}
    assert parse_config(SwitchConfig, {"rules": [cond("a", "exists")] * 4}).mode == "first_match"


def test_merge_config_errors_at_save() -> None:
    assert set(errors_of(MergeConfig, {"mode": "combine_by_key"})) == {"key_a", "key_b"}
    assert set(errors_of(MergeConfig, {"mode": "combine_by_key", "key_a": "id"})) == {"key_b"}
    assert set(errors_of(MergeConfig, {"mode": "zip"})) == {"mode"}
    assert parse_config(MergeConfig, {"mode": "append"}).keep_unmatched is False


@pytest.mark.parametrize(("raw", "field", "needle"), [
    ({"mode": "until", "until": ""}, "until", "Enter a date-time"),
    ({"mode": "until", "until": "tomorrow"}, "until", "not an ISO 8601 date-time"),
    ({"mode": "until", "until": "2030-01-01T09:00:00"}, "until", "no timezone"),
    ({"mode": "until", "until": "{{ item.at "}, "until", ""),
    ({"mode": "duration", "seconds": -1}, "seconds", ">= 0"),
    ({"mode": "duration", "seconds": 366 * 86_400 + 1}, "seconds", "<= 31622400"),
    ({"mode": "later"}, "mode", ""),
])
def test_wait_config_errors_at_save(raw: dict[str, Any], field: str, needle: str) -> None:
    errors = errors_of(WaitConfig, raw)
    assert list(errors) == [field] and needle in errors[field], errors


def test_valid_wait_configs_parse() -> None:
    assert parse_config(WaitConfig, {"mode": "until", "until": "2030-01-01T09:00:00+02:00"}).until
    assert parse_config(WaitConfig, {"mode": "duration", "until": "junk is ignored in duration mode"}).seconds == 1.0


def test_graph_validation_names_the_node_and_the_field() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("sw", "switch", rules=[cond("a", "exists")] * 6),
                         node("w", "wait", mode="until", until="nope")],
                  connections=[edge("t", "sw"), edge("sw", "w", "fallback")])
    problems = validate_graph(graph, registry)
    assert {(p.node_id, p.field) for p in problems} == {("sw", "rules"), ("w", "until")}
    assert any(str(p).startswith("sw: rules: At most 4 rules") for p in problems)
