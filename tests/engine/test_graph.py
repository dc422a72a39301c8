from __future__ import annotations

import pytest

from engine.errors import GraphError
from engine.graph import (
    ConnectionSpec,
    Graph,
    NodeSpec,
    decode_document,
    topological_order,
    validate_graph,
    would_close_cycle,
)
from nodes import registry


def messages(graph: Graph) -> list[str]:
    return [p.message for p in validate_graph(graph, registry)]


def test_valid_graph_has_no_problems() -> None:
    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "Start"), NodeSpec("d", "delay", "Wait", config={"seconds": 1})],
                  connections=[ConnectionSpec("t", "d")])
    assert validate_graph(graph, registry) == []
    assert topological_order(graph) == ["t", "d"]


def test_unknown_type_missing_config_and_bad_ports_are_reported_per_node() -> None:
    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "Start"), NodeSpec("x", "nope", "Mystery"),
                         NodeSpec("h", "http_request", "Fetch", config={})])
    problems = validate_graph(graph, registry)
    assert {p.node_id for p in problems} == {"x", "h"}
    assert any("unknown node type 'nope'" in p.message for p in problems)
    assert any(p.field == "url" and "required" in p.message for p in problems)

    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "Start"), NodeSpec("i", "if", "Check", config={"field": "a"})],
                  connections=[ConnectionSpec("t", "i", source_port="true"), ConnectionSpec("i", "t")])
    text = " ".join(messages(graph))
    assert "Start has no output port 'true'" in text
    assert "Start has no input port 'main'" in text


def test_cycles_are_found_and_refused() -> None:
    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "Start"), NodeSpec("a", "delay", "A"), NodeSpec("b", "delay", "B")],
                  connections=[ConnectionSpec("t", "a"), ConnectionSpec("a", "b"), ConnectionSpec("b", "a")])
    assert any("cycle" in m for m in messages(graph))
    assert would_close_cycle([("t", "a"), ("a", "b")], "b", "a")
    assert would_close_cycle([], "a", "a")
    assert not would_close_cycle([("t", "a"), ("a", "b")], "t", "b")


def test_a_trigger_is_required() -> None:
    graph = Graph(nodes=[NodeSpec("d", "delay", "Wait")])
    assert any("needs a trigger" in m for m in messages(graph))


def test_url_and_numbers_are_validated() -> None:
    graph = Graph(nodes=[NodeSpec("t", "manual_trigger", "Start"),
                         NodeSpec("h", "http_request", "Fetch", config={"url": "not a url"}),
                         NodeSpec("d", "delay", "Wait", config={"seconds": "soon"})])
    problems = {p.node_id: p.message for p in validate_graph(graph, registry)}
    assert "full http:// or https:// URL" in problems["h"]
    assert "Expected float" in problems["d"]


@pytest.mark.parametrize("payload, expected", [
    (b"[]", "Not a Patchwire workflow"),
    (b'{"name": "x", "nodes": [{"id": "a"}]}', "missing required field"),
    (b'{"name": "x", "surprise": 1}', "unknown field"),
    (b"{not json", "Not a Patchwire workflow"),
])
def test_documents_that_are_not_workflows_get_precise_errors(payload: bytes, expected: str) -> None:
    with pytest.raises(GraphError) as info:
        decode_document(payload)
    assert expected in str(info.value)


@pytest.mark.parametrize("payload, expected", [
    (b'{"name": ""}', "length >= 1"),
    (b'{"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A", "position": {"x": 1e12, "y": 0}}]}', "<= 1000000"),
    (b'{"name": "' + b"n" * 300 + b'"}', "length <= 200"),
    (b"[" * 100_000, "Not a Patchwire workflow"),
])
def test_document_limits(payload: bytes, expected: str) -> None:
    with pytest.raises(GraphError) as info:
        decode_document(payload)
    assert expected in str(info.value)


def test_a_merge_needs_both_inputs_connected() -> None:
    nodes = [NodeSpec("t", "manual_trigger", "t"), NodeSpec("m", "merge", "Join")]
    problems = validate_graph(Graph(nodes=nodes, connections=[ConnectionSpec("t", "m", target_port="a")]), registry)
    assert [(p.node_id, p.message, p.code) for p in problems] == [
        ("m", "Join: input b is not connected.", "unconnected_input")]
    assert len(validate_graph(Graph(nodes=nodes), registry)) == 2
    both = [ConnectionSpec("t", "m", target_port="a"), ConnectionSpec("t", "m", target_port="b")]
    assert validate_graph(Graph(nodes=nodes, connections=both), registry) == []


def test_two_connections_between_the_same_nodes_are_not_a_cycle() -> None:
    nodes = [NodeSpec("t", "manual_trigger", "t"),
             NodeSpec("if", "if", "if", 2, config={"conditions": [{"field": "x", "operator": "exists"}]}),
             NodeSpec("s", "set", "s")]
    connections = [ConnectionSpec("t", "if"), ConnectionSpec("if", "s", "true"), ConnectionSpec("if", "s", "false")]
    assert validate_graph(Graph(nodes=nodes, connections=connections), registry) == []
    cycle = [*connections, ConnectionSpec("s", "if")]
    assert any("cycle" in p.message for p in validate_graph(Graph(nodes=nodes, connections=cycle), registry))
