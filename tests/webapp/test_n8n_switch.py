"""The n8n importer maps Switch rules fully: every condition of an n8n Switch v3 rule with its
combinator, and the output names (``renameOutput`` + ``outputKey``, ``renameFallbackOutput``) as our
Switch version 2's output names (the canvas shows them as port labels). Built from n8n's own export
shape (``packages/nodes-base/nodes/Switch/V3``: ``parameters.rules.values[].conditions {options,
conditions[], combinator}``)."""

from __future__ import annotations

from typing import Any

import httpx

from engine.events import MemorySink
from engine.graph import validate_graph
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import registry
from webapp.workflows import n8n
from webapp.workflows.importing import decode

OPTIONS = {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"}


def row(field: str, kind: str, operation: str, right: Any = "", id_: str = "") -> dict[str, Any]:
    return {"id": id_ or f"{field}-{operation}", "leftValue": "={{ $json." + field + " }}", "rightValue": right,
            "operator": {"type": kind, "operation": operation, "name": f"filter.operator.{operation}"}}


def rule(*rows: dict[str, Any], combinator: str = "and", name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"conditions": {"options": OPTIONS, "conditions": list(rows), "combinator": combinator}}
    if name is not None:
        out |= {"renameOutput": True, "outputKey": name}
    return out


def switch(rules: list[dict[str, Any]], options: dict[str, Any], version: float = 3.2) -> dict[str, Any]:
    return {"parameters": {"rules": {"values": rules}, "options": options},
            "id": "0c34bae5-89c8-4adb-bb38-092d5a0e349e", "name": "Route", "type": "n8n-nodes-base.switch",
            "typeVersion": version, "position": [-120, 620]}


def noop(name: str, y: int) -> dict[str, Any]:
    return {"parameters": {}, "id": f"00000000-0000-4000-8000-00000000000{y}", "name": name,
            "type": "n8n-nodes-base.noOp", "typeVersion": 1, "position": [200, 100 * y]}


TRIGGER = {"parameters": {}, "id": "2c6504d1-9412-4da5-bd51-e5f9d6a84721", "name": "When clicking \"Execute Workflow\"",
           "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [-560, 620]}
ROUTE = switch([
    rule(row("tier", "string", "equals", "gold"), row("total", "number", "gte", 100), name="Big gold"),
    rule(row("country", "string", "equals", "NO"), row("country", "string", "equals", "SE"), combinator="or",
         name="Nordic"),
    rule(row("tags", "array", "contains", "test")),
], {"fallbackOutput": "extra", "renameFallbackOutput": "Everything else", "allMatchingOutputs": True})
WORKFLOW = {
    "name": "Routing", "nodes": [TRIGGER, ROUTE, noop("Gold", 1), noop("Nordic desk", 2), noop("Tests", 3),
                                 noop("Rest", 4)],
    "connections": {
        "When clicking \"Execute Workflow\"": {"main": [[{"node": "Route", "type": "main", "index": 0}]]},
        "Route": {"main": [[{"node": "Gold", "type": "main", "index": 0}],
                           [{"node": "Nordic desk", "type": "main", "index": 0}],
                           [{"node": "Tests", "type": "main", "index": 0}],
                           [{"node": "Rest", "type": "main", "index": 0}]]}},
    "active": False, "settings": {"executionOrder": "v1"}, "pinData": {},
}


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in doc["nodes"]}


def test_every_condition_of_every_rule_is_kept_with_its_combinator_and_output_name() -> None:
    doc, report = n8n.convert(WORKFLOW)
    node = by_name(doc)["Route"]
    assert (node["type"], node["version"]) == ("switch", 2)
    assert node["config"] == {"mode": "all_matches", "fallback_output": "Everything else", "rules": [
        {"combine": "and", "output": "Big gold", "conditions": [
            {"field": "tier", "type": "string", "operator": "equals", "value": "gold"},
            {"field": "total", "type": "number", "operator": "gte", "value": 100}]},
        {"combine": "or", "output": "Nordic", "conditions": [
            {"field": "country", "type": "string", "operator": "equals", "value": "NO"},
            {"field": "country", "type": "string", "operator": "equals", "value": "SE"}]},
        {"combine": "and", "output": "", "conditions": [
            {"field": "tags", "type": "list", "operator": "contains", "value": "test"}]}]}
    assert report.clean, (report.unmapped, report.skipped)
    wires = {(c["source"], c["source_port"], c["target"]) for c in doc["connections"]}
    ids = {n["name"]: n["id"] for n in doc["nodes"]}
    names = {v: k for k, v in ids.items()}
    assert {(names[s], p, names[t]) for s, p, t in wires} >= {
        ("Route", "0", "Gold"), ("Route", "1", "Nordic desk"), ("Route", "2", "Tests"), ("Route", "fallback", "Rest")}


async def test_the_imported_switch_routes_as_n8n_would() -> None:
    doc, _ = n8n.convert(WORKFLOW)
    graph = decode(doc).graph
    assert [p.code for p in validate_graph(graph, registry)] == []
    ids = {n["name"]: n["id"] for n in doc["nodes"]}

    async def route(item: dict[str, Any]) -> set[str]:
        store = MemoryRunStore()
        async with httpx.AsyncClient() as http:
            outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http, trigger_input=item))
        assert outcome.status == "succeeded", outcome.error
        return {name for name in ("Gold", "Nordic desk", "Tests", "Rest")
                if store.status_of(1, ids[name]) == "succeeded"}

    assert await route({"tier": "gold", "total": 250, "country": "SE", "tags": []}) == {"Gold", "Nordic desk"}
    assert await route({"tier": "gold", "total": 5, "country": "DK", "tags": ["test"]}) == {"Tests"}
    assert await route({"tier": "silver", "total": 500, "country": "DK", "tags": []}) == {"Rest"}


def test_a_fallback_into_a_named_rule_output_shares_its_name() -> None:
    """n8n's own test workflow (V3/test/switch.rules.workflow.json): ``fallbackOutput: 2`` sends the
    unmatched items by the third rule's output, which is named."""
    node = switch([rule(row("output", "string", "equals", "first"), name="First Output"),
                   rule(row("output", "string", "equals", "second"), name="Second Output"),
                   rule(row("output", "string", "equals", "third"), name="Third Output")],
                  {"fallbackOutput": 2}, version=3)
    doc, report = n8n.convert({"name": "s", "nodes": [node], "connections": {}})
    config = by_name(doc)["Route"]["config"]
    assert [r["output"] for r in config["rules"]] == ["First Output", "Second Output", "Third Output"]
    assert config["fallback_output"] == "Third Output"
    assert report.clean


def test_a_condition_that_cannot_map_is_dropped_from_its_rule_with_the_reason() -> None:
    node = switch([rule(row("due", "dateTime", "afterOrEquals", "2024-01-01"), row("open", "boolean", "true")),
                   rule(row("due", "dateTime", "notEquals", "2024-01-01"), name="Never")], {})
    doc, report = n8n.convert({"name": "s", "nodes": [node], "connections": {}})
    config = by_name(doc)["Route"]["config"]
    assert config["rules"] == [{"combine": "and", "output": "", "conditions": [
        {"field": "open", "type": "boolean", "operator": "is_true"}]}]
    assert [(e.parameter, e.message) for e in report.unmapped] == [
        ("rules[0][0] (dateTime afterOrEquals)", "dateTime operation 'afterOrEquals' has no Patchwire operator (use two "
                                                 "conditions (after, or equals) with combinator or): condition dropped"),
        ("rules[1][0] (dateTime notEquals)", "dateTime operation 'notEquals' has no Patchwire operator (a date condition "
                                             "has before, after and equals only): condition dropped")]


def test_n8n_switch_v2_rules_keep_their_own_outputs_and_names() -> None:
    """n8n's V2/test/switch.rules.workflow.json: ``value1`` compared per rule, each rule its own output
    named by ``outputKey``; ``fallbackOutput: 2``."""
    node = {"parameters": {"dataType": "string", "value1": "={{ $json.output }}",
                           "rules": {"rules": [{"value2": "first", "outputKey": "First Output"},
                                               {"value2": "second", "outputKey": "Second Output"},
                                               {"value2": "third", "outputKey": "Third Output"}]},
                           "fallbackOutput": 2},
            "id": "0dd6e98a-2830-42fb-9a9d-6d4ff8678cbd", "name": "Switch", "type": "n8n-nodes-base.switch",
            "typeVersion": 2, "position": [1120, 720]}
    targets = [noop("A", 1), noop("B", 2), noop("C", 3)]
    connections = {"Switch": {"main": [[{"node": t["name"], "type": "main", "index": 0}] for t in targets]}}
    doc, report = n8n.convert({"name": "s", "nodes": [node, *targets], "connections": connections})
    config = by_name(doc)["Switch"]["config"]
    assert [(r["conditions"][0]["value"], r["output"]) for r in config["rules"]] == [
        ("first", "First Output"), ("second", "Second Output"), ("third", "Third Output")]
    ids = {v["id"]: k for k, v in by_name(doc).items()}
    assert {(c["source_port"], ids[c["target"]]) for c in doc["connections"]} == {
        ("0", "A"), ("1", "B"), ("2", "C"), ("fallback", "C")}
