"""The n8n importer maps multi-condition If / Switch rules fully, each condition as n8n exports it
(If v1's typed lists and ``combineOperation``, If v2 / Switch v3's filter ``conditions.conditions[]``
with ``combinator`` and ``operator.{type, operation}``), and says why a condition is dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nodes.conditions import Condition, matches
from webapp.workflows import n8n


def one_node(node: dict[str, Any]) -> tuple[dict[str, Any], n8n.ImportReport]:
    doc, report = n8n.convert({"name": "c", "nodes": [node], "connections": {}})
    return doc["nodes"][0], report


def left(name: str) -> str:
    return "={{ $json." + name + " }}"


def filter_row(field: str, kind: str, operation: str, right: Any = "") -> dict[str, Any]:
    return {"id": f"id-{field}-{operation}", "leftValue": left(field), "rightValue": right,
            "operator": {"type": kind, "operation": operation, **({"singleValue": True} if right == "" else {})}}


IF_V1 = {
    "parameters": {
        "conditions": {
            "string": [{"value1": "={{$json[\"status\"]}}", "operation": "notStartsWith", "value2": "test-"},
                       {"value1": "={{ $json.code }}", "operation": "regex", "value2": "^A\\d+$"}],
            "number": [{"value1": "={{ $json.total }}", "operation": "largerEqual", "value2": 100},
                       {"value1": "={{ $json.count }}", "operation": "isEmpty"}],
            "boolean": [{"value1": "={{ $json.paid }}", "value2": True}],
            "dateTime": [{"value1": "={{ $json.due }}", "operation": "before", "value2": "2024-06-01T00:00:00Z"}],
        },
        "combineOperation": "any",
    },
    "name": "IF", "type": "n8n-nodes-base.if", "typeVersion": 1, "position": [460, 300],
}


def test_if_v1_maps_every_list_and_combine_operation() -> None:
    node, report = one_node(IF_V1)
    assert node["config"]["combine"] == "or"
    assert node["config"]["conditions"] == [
        {"field": "status", "type": "string", "operator": "not_matches", "value": "^test\\-"},
        {"field": "code", "type": "string", "operator": "matches", "value": "^A\\d+$"},
        {"field": "total", "type": "number", "operator": "gte", "value": 100},
        {"field": "paid", "type": "boolean", "operator": "is_true"},
        {"field": "due", "type": "date", "operator": "before", "value": "2024-06-01T00:00:00Z"}]
    [(where, message)] = [(e.parameter, e.message) for e in report.unmapped]
    assert where == "conditions.number[1] (isEmpty)"
    assert message == ("number operation 'isEmpty' has no Patchwire operator (a number field is either there or not: "
                       "use exists / does not exist): condition dropped")


IF_V2 = {
    "parameters": {
        "conditions": {
            "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
            "conditions": [
                filter_row("tags", "array", "contains", "vip"),
                filter_row("items", "array", "lengthGte", 3),
                filter_row("items", "array", "lengthNotEquals", 2),
                filter_row("meta", "object", "notEmpty"),
                filter_row("name", "string", "notEndsWith", ".tmp"),
                filter_row("due", "dateTime", "afterOrEquals", "2024-01-01"),
                filter_row("email", "string", "exists"),
                filter_row("ok", "boolean", "true"),
            ],
            "combinator": "or",
        },
        "options": {},
    },
    "name": "If", "type": "n8n-nodes-base.if", "typeVersion": 2, "position": [600, 300],
}


def test_if_v2_maps_every_condition_and_the_combinator() -> None:
    node, report = one_node(IF_V2)
    assert node["config"]["combine"] == "or"
    assert node["config"]["conditions"] == [
        {"field": "tags", "type": "list", "operator": "contains", "value": "vip"},
        {"field": "items", "type": "list", "operator": "length_gt", "value": 2},
        {"field": "meta", "type": "list", "operator": "is_not_empty"},
        {"field": "name", "type": "string", "operator": "not_matches", "value": "\\.tmp$"},
        {"field": "email", "type": "string", "operator": "exists"},
        {"field": "ok", "type": "boolean", "operator": "is_true"}]
    reasons = {e.parameter: e.message for e in report.unmapped}
    assert reasons == {
        "conditions[2] (array lengthNotEquals)": "array operation 'lengthNotEquals' has no Patchwire operator (a list "
        "condition compares its length with equals, greater than or less than only): condition dropped",
        "conditions[5] (dateTime afterOrEquals)": "dateTime operation 'afterOrEquals' has no Patchwire operator (use "
        "two conditions (after, or equals) with combinator or): condition dropped"}


@pytest.mark.parametrize(("item", "expected"), [
    ({"items": [1, 2, 3], "name": "a.txt"}, True), ({"items": [1, 2], "name": "a.txt"}, False),
    ({"items": [1, 2], "name": "a.tmp"}, False),
])
def test_rewritten_operators_behave_as_in_n8n(item: dict[str, Any], expected: bool) -> None:
    node, _ = one_node({**IF_V2, "parameters": {"conditions": {"conditions": [
        filter_row("items", "array", "lengthGte", 3), filter_row("name", "string", "notEndsWith", ".tmp")],
        "combinator": "and"}}})
    conditions = [Condition(**c) for c in node["config"]["conditions"]]
    results = [asyncio.run(matches(None, c, item, "c")) for c in conditions]  # type: ignore[arg-type]
    assert all(results) is expected


def test_an_expression_where_a_literal_is_needed_is_reported() -> None:
    _, report = one_node({**IF_V2, "parameters": {"conditions": {"conditions": [
        filter_row("a", "string", "equals", "x"),
        filter_row("name", "string", "notStartsWith", "={{ $json.prefix }}"),
        filter_row("items", "array", "lengthLte", "={{ $json.max }}")], "combinator": "and"}}})
    messages = [e.message for e in report.unmapped]
    assert any("not starts with needs a literal text" in m for m in messages), messages
    assert any("length lte needs a whole number" in m for m in messages), messages


def test_an_unknown_n8n_type_is_named() -> None:
    _, report = one_node({**IF_V2, "parameters": {"conditions": {"conditions": [
        filter_row("a", "string", "equals", "x"), filter_row("b", "files", "isPdf")], "combinator": "and"}}})
    assert [e.message for e in report.unmapped] == [
        "n8n type 'files' has no Patchwire condition type (string, number, boolean, date, list): condition dropped"]


SWITCH_V3 = {
    "parameters": {
        "rules": {"values": [
            {"conditions": {"options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
                            "conditions": [filter_row("tags", "array", "contains", "urgent")], "combinator": "and"}},
            {"conditions": {"options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
                            "conditions": [filter_row("status", "string", "notRegex", "^closed")],
                            "combinator": "and"}},
        ]},
        "options": {},
    },
    "name": "Switch", "type": "n8n-nodes-base.switch", "typeVersion": 3, "position": [600, 300],
}


def test_switch_v3_rules_use_the_new_types() -> None:
    node, report = one_node(SWITCH_V3)
    assert node["config"]["rules"] == [
        {"conditions": [{"field": "tags", "type": "list", "operator": "contains", "value": "urgent"}],
         "combine": "and", "output": ""},
        {"conditions": [{"field": "status", "type": "string", "operator": "not_matches", "value": "^closed"}],
         "combine": "and", "output": ""}]
    assert not report.unmapped
