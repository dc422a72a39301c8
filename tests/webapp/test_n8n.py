"""The n8n mapper on its own: realistic n8n exports (tests/fixtures/n8n/) → our document + report."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.errors import GraphError
from engine.events import MemorySink
from engine.graph import validate_graph
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import registry
from webapp.workflows import n8n
from webapp.workflows.importing import MAX_WORKFLOW_NAME, decode, imported_names, prepare

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "n8n"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def convert(name: str, **kw: Any) -> tuple[dict[str, Any], n8n.ImportReport]:
    return n8n.convert(load(name), **kw)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in doc["nodes"]}


def edges(doc: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    names = {n["id"]: n["name"] for n in doc["nodes"]}
    return {(names[c["source"]], c["source_port"], names[c["target"]], c["target_port"]) for c in doc["connections"]}


def messages(entries: list[n8n.Entry]) -> list[tuple[str, str | None, str]]:
    return [(e.node, e.parameter, e.message) for e in entries]


@pytest.mark.parametrize("name", ["orders_http_if", "tickets_switch_merge", "legacy_v1"])
def test_every_fixture_becomes_a_valid_runnable_graph(name: str) -> None:
    doc, _ = convert(name, workflows={"Escalate": 7})
    assert validate_graph(decode(doc).graph, registry) == []
    assert n8n.looks_like_n8n(load(name))


@pytest.mark.parametrize(("source", "expected"), [
    ("={{ $json.x }}", "{{ item.x }}"),
    ("={{$json.body.rows[0].id}}", "{{ item.body.rows[0].id }}"),
    ('={{ $json["first name"] }}', '{{ item["first name"] }}'),
    ("=Hello {{ $json.name }}, you owe {{ $json.total }}!", "Hello {{ item.name }}, you owe {{ item.total }}!"),
    ("={{ $('Fetch orders').item.json.body }}", '{{ nodes["Fetch orders"][0].body }}'),
    ('={{ $("Fetch").first().json.id }}', '{{ nodes["Fetch"][0].id }}'),
    ("={{ $node[\"Fetch\"].json.id }}", '{{ nodes["Fetch"][0].id }}'),
    ("={{ $input.all() }}", "{{ items }}"),
    ("={{ $input.item.json.id }}", "{{ item.id }}"),
    ("={{ $input.first().json.id }}", "{{ items[0].id }}"),
    ("=plain text", "plain text"),
])
def test_simple_expressions_are_translated(source: str, expected: str) -> None:
    assert n8n.Translator.expression(source) == expected


@pytest.mark.parametrize("source", [
    "={{ $now.toISO() }}", "={{ $json.a ? 1 : 2 }}", "={{ $json.name.toUpperCase() }}",
    "={{ $json.a }} and {{ $jmespath($json, 'x') }}", "={{ $json.a + $json.b }}",
])
def test_other_expressions_are_kept_verbatim_and_reported(source: str) -> None:
    report = n8n.ImportReport()
    kept = n8n.Translator(report, "Node").value(source, "field")
    assert kept == "{% raw %}" + source + "{% endraw %}"
    assert messages(report.expressions) == [("Node", "field", f"kept verbatim as text (not evaluated): {source}")]


def test_http_if_set_mapping_and_report() -> None:
    doc, report = convert("orders_http_if")
    nodes = by_name(doc)
    http = dict(nodes["HTTP Request"]["config"])
    assert http.pop("response") == "body"  # n8n's output: the body is the item (tests/webapp/test_n8n_http.py)
    assert http == {
        "url": "https://api.example.com/orders?status=open&customer={{ (item.customerId) | urlencode }}",
        "method": "GET", "headers": [{"name": "X-Api-Version", "value": "2024-01"}], "timeout": 10.0,
        "fail_on_error_status": False}
    assert nodes["Big order?"]["version"] == 2
    assert nodes["Big order?"]["config"]["conditions"] == [
        {"field": "body.total", "type": "number", "operator": "gt", "value": 100},
        {"field": "body.items", "type": "list", "operator": "is_not_empty"}]  # n8n's array notEmpty
    flag_big = nodes["Flag big"]["config"]
    assert flag_big["keep_existing"] is True
    assert flag_big["fields"][:4] == [{"name": "flag", "value": "big"}, {"name": "total", "value": "{{ item.body.total }}"},
                                      {"name": "requested", "value": '{{ nodes["HTTP Request"][0].headers["date"] }}'},
                                      {"name": "priority", "value": "{{ 1 }}"}]
    assert nodes["Flag small"]["config"] == {"fields": [{"name": "flag", "value": "small"},
                                                        {"name": "reviewed", "value": "{{ false }}"}],
                                             "keep_existing": True}
    assert edges(doc) == {("When clicking ‘Test workflow’", "main", "HTTP Request", "main"),
                          ("HTTP Request", "main", "Big order?", "main"), ("Big order?", "true", "Flag big", "main"),
                          ("Big order?", "false", "Flag small", "main")}
    assert [m.node for m in report.mapped] == ["When clicking ‘Test workflow’", "HTTP Request", "Big order?",
                                               "Flag big", "Flag small", "Sticky Note"]
    assert [e.node for e in report.skipped] == ["Tell Slack"]
    assert doc["notes"] == [{"text": "## Orders\nFetches orders and flags the big ones.", "position": {"x": 200, "y": 80},
                             "width": 300.0, "height": 240.0}]
    assert messages(report.unmapped) == []
    assert [e.parameter for e in report.expressions] == ["assignments[4].value"]
    assert messages(report.connections) == [("Flag big", None, "Flag big (output 0) → Tell Slack (input 0): dropped "
                                                               "because 'Tell Slack' was not imported")]


def test_switch_merge_wait_subworkflow_mapping() -> None:
    doc, report = convert("tickets_switch_merge", workflows={"Escalate": 7})
    nodes = by_name(doc)
    assert nodes["Every hour"]["type"] == "manual_trigger"
    assert nodes["Route"]["version"] == 2
    assert [[c["field"] for c in r["conditions"]] for r in nodes["Route"]["config"]["rules"]] == [
        ["priority"], ["subject"], ["vip"]]
    assert nodes["Route"]["config"]["rules"][2] == {
        "conditions": [{"field": "vip", "type": "boolean", "operator": "is_true"}], "combine": "and", "output": ""}
    assert nodes["Cool down"]["config"] == {"mode": "duration", "seconds": 120.0}
    assert nodes["Join"]["config"] == {"mode": "combine_by_key", "key_a": "ticketId", "key_b": "ticketId"}
    assert nodes["Nothing to do"]["config"] == {"fields": [], "keep_existing": True}
    assert nodes["Escalate"]["config"] == {"workflow_id": 7}
    # n8n output i → our port; the "extra" fallback output (index = number of rules) → fallback; Merge input 1 → b
    assert edges(doc) == {("Every hour", "main", "Route", "main"), ("Route", "0", "Cool down", "main"),
                          ("Route", "1", "Join", "b"), ("Route", "fallback", "Nothing to do", "main"),
                          ("Cool down", "main", "Join", "a"), ("Join", "main", "Escalate", "main")}
    assert [e.node for e in report.skipped] == ["Wait for approval"]
    assert "replaced by a Manual Trigger" in report.unmapped[0].message


def test_execute_workflow_without_a_matching_workflow_is_skipped_with_the_reason() -> None:
    doc, report = convert("tickets_switch_merge")
    assert "Escalate" not in by_name(doc)
    assert ("needs a Patchwire workflow id: n8n workflow '4Kq9ZbXw' ('Escalate') is not one of your workflows"
            in report.skipped[0].message)
    assert any("'Escalate' was not imported" in e.message for e in report.connections)


def test_legacy_v1_nodes() -> None:
    doc, report = convert("legacy_v1")
    nodes = by_name(doc)
    push = nodes["Push user"]
    assert push["config"]["method"] == "POST" and push["config"]["url"] == "https://hooks.example.com/users/{{ item.id }}"
    assert push["config"]["body"] == {"email": "{{ item.email }}", "count": "{{ item.count }}"}
    assert push["config"]["timeout"] == 5.0
    assert push["settings"]["retry"] == {"max_attempts": 4, "initial_delay": 2.0, "multiplier": 1}
    assert nodes["OK?"]["config"] == {"combine": "or", "conditions": [
        {"field": "body.status", "type": "string", "operator": "equals", "value": "ok"},
        {"field": "body.code", "type": "number", "operator": "lt", "value": 300},
        {"field": "body.done", "type": "boolean", "operator": "is_true"}]}
    assert [[c["value"] for c in r["conditions"]] for r in nodes["Region"]["config"]["rules"]] == [["eu"], ["us"], ["uk"]]
    assert nodes["Merge"]["config"] == {"mode": "combine_by_key", "key_a": "id", "key_b": "userId"}
    assert nodes["Other region"]["config"]["keep_existing"] is False
    # v1 Switch rules name their output: rules 0 and 2 both feed output 0; fallbackOutput 3 → fallback
    assert edges(doc) >= {("Region", "0", "Merge", "a"), ("Region", "2", "Merge", "a"),
                          ("Region", "fallback", "Other region", "main"), ("OK?", "false", "Merge", "b")}
    assert [e.parameter for e in report.expressions] == ["values.string[0].value"]


def test_merge_choose_branch_of_input_2_swaps_the_wires() -> None:
    raw = {"name": "m", "nodes": [
        {"name": "T", "type": "n8n-nodes-base.manualTrigger", "parameters": {}},
        {"name": "A", "type": "n8n-nodes-base.noOp"}, {"name": "B", "type": "n8n-nodes-base.noOp"},
        {"name": "M", "type": "n8n-nodes-base.merge", "typeVersion": 3,
         "parameters": {"mode": "chooseBranch", "useDataOfInput": 2}}],
        "connections": {"T": {"main": [[{"node": "A", "type": "main", "index": 0}, {"node": "B", "type": "main", "index": 0}]]},
                        "A": {"main": [[{"node": "M", "type": "main", "index": 0}]]},
                        "B": {"main": [[{"node": "M", "type": "main", "index": 1}]]}}}
    doc, report = n8n.convert(raw)
    assert by_name(doc)["M"]["config"] == {"mode": "wait_pass_first"}
    assert {("A", "main", "M", "b"), ("B", "main", "M", "a")} <= edges(doc)
    assert report.clean


def test_unsupported_parameters_settings_and_sub_node_connections_are_reported() -> None:
    raw = {"name": "r", "nodes": [
        {"name": "H", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "disabled": True, "onError": "continueErrorOutput",
         "parameters": {"method": "POST", "url": "https://x.example", "authentication": "genericCredentialType",
                        "genericAuthType": "httpHeaderAuth", "sendBody": True, "contentType": "form-urlencoded",
                        "bodyParameters": {"parameters": [{"name": "a", "value": "1"}]}, "options": {"proxy": "http://p"},
                        "provideSslCertificates": True}},
        {"name": "N", "type": "n8n-nodes-base.noOp"},
        {"name": "E", "type": "n8n-nodes-base.noOp"},
        {"name": "Model", "type": "@n8n/n8n-nodes-langchain.lmChatOpenAi"}],
        "connections": {"H": {"main": [[{"node": "N", "type": "main", "index": 0}], [{"node": "E", "type": "main", "index": 0}]]},
                        "Model": {"ai_languageModel": [[{"node": "N", "type": "ai_languageModel", "index": 0}]]}}}
    doc, report = n8n.convert(raw)
    assert by_name(doc)["H"]["settings"] == {"on_error": "error_output"}
    assert "body" not in by_name(doc)["H"]["config"]
    assert {("H", "main", "N", "main"), ("H", "error", "E", "main")} == edges(doc)
    params = {(e.parameter, e.message.split(":")[0]) for e in report.unmapped}
    assert ("authentication", "authentication 'genericCredentialType' is not imported") in params
    assert ("contentType", "body content type 'form-urlencoded' is not supported (our node sends JSON)") in params
    assert ("options.proxy", "option 'proxy' is not supported (ignored)") in params
    assert ("provideSslCertificates", "parameter 'provideSslCertificates' is not supported (ignored)") in params
    assert ("disabled", "disabled in n8n") in params
    assert [e.node for e in report.skipped] == ["Model"]
    assert "ai_languageModel connections (AI sub-nodes) are not supported" in report.connections[0].message
    assert [p.code for p in validate_graph(decode(doc).graph, registry)] == ["no_trigger"]


def test_switch_with_more_than_four_rules_keeps_four_and_says_so() -> None:
    rule = lambda v: {"conditions": {"conditions": [{"leftValue": "={{ $json.n }}", "rightValue": v,  # noqa: E731
                                                     "operator": {"type": "number", "operation": "equals"}}]}}
    raw = {"name": "s", "nodes": [{"name": "S", "type": "n8n-nodes-base.switch", "typeVersion": 3,
                                   "parameters": {"rules": {"values": [rule(i) for i in range(6)]}}}],
           "connections": {}}
    doc, report = n8n.convert(raw)
    assert len(by_name(doc)["S"]["config"]["rules"]) == 4
    assert [e.parameter for e in report.unmapped] == ["rules[4]", "rules[5]"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "x", "nodes": "no"}, 'expected an object with a "nodes" list'),
    ({"name": "x", "nodes": [{"type": "n8n-nodes-base.noOp"}]}, 'nodes[0] needs a "name" and a "type"'),
])
def test_structurally_broken_n8n_files_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(GraphError) as caught:
        n8n.convert(raw)
    assert message in str(caught.value)


def test_detection_prefers_patchwire_when_the_file_says_so() -> None:
    ours = {"format": "patchwire.workflow", "name": "x", "nodes": [], "connections": []}
    assert prepare(json.dumps(ours).encode()).format == "patchwire"
    assert prepare((FIXTURES / "legacy_v1.json").read_bytes()).format == "n8n"


DANGLING = {
    "name": "Orders digest (shared)",
    "nodes": [
        {"parameters": {}, "id": "5f0b1a52-0c7e-4d6e-9a55-0d1d6f0e8a01", "name": "When clicking \u2018Test workflow\u2019",
         "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [240, 300]},
        {"parameters": {"url": "https://api.example.com/orders", "options": {}},
         "id": "5f0b1a52-0c7e-4d6e-9a55-0d1d6f0e8a02", "name": "HTTP Request",
         "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [460, 300]},
    ],
    "connections": {
        "When clicking \u2018Test workflow\u2019": {"main": [[{"node": "HTTP Request", "type": "main", "index": 0}]]},
        "HTTP Request": {"main": [[{"node": "Send Email", "type": "main", "index": 0},
                                   {"node": "Google Sheets", "type": "main", "index": 0}]]},
        "Schedule Trigger": {"main": [[{"node": "HTTP Request", "type": "main", "index": 0}]]},
    },
}


def test_connections_naming_nodes_not_in_the_file_are_dropped_and_listed() -> None:
    doc, report = n8n.convert(DANGLING)
    assert validate_graph(decode(doc).graph, registry) == []
    assert edges(doc) == {("When clicking \u2018Test workflow\u2019", "main", "HTTP Request", "main")}
    assert messages(report.connections) == [
        ("HTTP Request", None, "HTTP Request (output 0) → 'Send Email': dropped, there is no node named "
                               "'Send Email' in the file"),
        ("HTTP Request", None, "HTTP Request (output 0) → 'Google Sheets': dropped, there is no node named "
                               "'Google Sheets' in the file"),
        ("Schedule Trigger", None, "connections from 'Schedule Trigger' dropped: there is no node named "
                                   "'Schedule Trigger' in the file"),
    ]
    assert prepare(json.dumps(DANGLING).encode()).format == "n8n"


def test_imported_names_are_numbered_once_and_fit_the_name_limit() -> None:
    first = list(itertools.islice(imported_names("Orders"), 4))
    assert first == ["Orders", "Orders (imported)", "Orders (imported 2)", "Orders (imported 3)"]
    assert list(itertools.islice(imported_names("Orders (imported 2)"), 3)) == [
        "Orders (imported 2)", "Orders (imported)", "Orders (imported 2)"]
    long = "x" * MAX_WORKFLOW_NAME
    assert all(len(n) <= MAX_WORKFLOW_NAME for n in itertools.islice(imported_names(long), 12))


def set_node(name: str, type_version: float, parameters: dict[str, Any], x: int = 460) -> dict[str, Any]:
    return {"parameters": parameters, "id": f"9d1c3b0a-55aa-4f1e-8c2b-{x:012d}", "name": name,
            "type": "n8n-nodes-base.set", "typeVersion": type_version, "position": [x, 300]}


def assignment(name: str, value: Any, type_: str) -> dict[str, Any]:
    return {"id": f"a-{name}", "name": name, "value": value, "type": type_}


TYPED_SET = {
    "name": "Typed fields",
    "nodes": [
        {"parameters": {}, "id": "9d1c3b0a-55aa-4f1e-8c2b-000000000001", "name": "When clicking \u2018Test workflow\u2019",
         "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [240, 300]},
        set_node("Edit Fields", 3.4, {"assignments": {"assignments": [
            assignment("count", "42", "number"), assignment("total", "={{ $json.total }}", "number"),
            assignment("active", "true", "boolean"), assignment("tags", '["a", "b"]', "array"),
            assignment("meta", '{"source": "n8n"}', "object"), assignment("label", "plain", "string"),
            assignment("broken", "abc", "number")]}, "options": {}}),
        set_node("Set (3.2)", 3.2, {"fields": {"values": [
            {"name": "n", "type": "numberValue", "numberValue": "7"},
            {"name": "ok", "type": "booleanValue", "booleanValue": "false"},
            {"name": "s", "stringValue": "text"}]}, "include": "none", "options": {}}, x=680),
    ],
    "connections": {
        "When clicking \u2018Test workflow\u2019": {"main": [[{"node": "Edit Fields", "type": "main", "index": 0}]]},
        "Edit Fields": {"main": [[{"node": "Set (3.2)", "type": "main", "index": 0}]]},
    },
}


async def test_set_assignment_types_are_kept_and_converted_at_run_time() -> None:
    doc, report = n8n.convert(TYPED_SET)
    config = by_name(doc)["Edit Fields"]["config"]
    assert config["types"] == {"count": "number", "total": "number", "active": "boolean", "tags": "array",
                               "meta": "object"}
    assert by_name(doc)["Set (3.2)"]["config"]["types"] == {"n": "number", "ok": "boolean"}
    assert messages(report.unmapped) == [
        ("Edit Fields", "assignments[6].value", "field 'broken' is typed number in n8n, but \"abc\" is not a number "
                                                "(n8n would fail the node here): kept as text")]

    graph = decode(doc).graph
    store = MemoryRunStore()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http, trigger_input={"total": "9.5"}))
    assert outcome.status == "succeeded", outcome.error
    ids = {n["name"]: n["id"] for n in doc["nodes"]}
    edited = store.attempts(1, ids["Edit Fields"])[-1].output["main"][0]
    assert edited == {"total": 9.5, "count": 42, "active": True, "tags": ["a", "b"], "meta": {"source": "n8n"},
                      "label": "plain", "broken": "abc"}
    assert store.attempts(1, ids["Set (3.2)"])[-1].output["main"] == [{"n": 7, "ok": False, "s": "text"}]


def sticky(name: str, parameters: dict[str, Any], position: list[int]) -> dict[str, Any]:
    return {"parameters": parameters, "id": f"c0ffee00-0000-4000-8000-{len(name):012d}", "name": name,
            "type": "n8n-nodes-base.stickyNote", "typeVersion": 1, "position": position}


def test_sticky_notes_become_canvas_notes_and_what_does_not_fit_is_reported() -> None:
    raw = {"name": "Notes", "nodes": [
        sticky("Sticky Note", {"content": "## Read me\nThen run it.", "height": 300, "width": 420}, [-60, 40]),
        sticky("Sticky Note1", {"content": "x" * 10_005, "height": 20, "width": 5000, "color": 4}, [900, 40]),
        sticky("Sticky Note2", {}, [0, 0])], "connections": {}}
    doc, report = n8n.convert(raw)
    assert doc["nodes"] == [] and decode(doc).notes[0].text == "## Read me\nThen run it."
    assert [(n["position"], n["width"], n["height"], len(n["text"])) for n in doc["notes"]] == [
        ({"x": -60, "y": 40}, 420.0, 300.0, 23), ({"x": 900, "y": 40}, 2000.0, 60.0, 10_000),
        ({"x": 0, "y": 0}, 240.0, 160.0, 0)]
    assert messages(report.unmapped) == [
        ("Sticky Note1", "content", "the note's text is 10,005 characters; notes hold at most 10,000: the rest is cut"),
        ("Sticky Note1", "color", "the note's colour is not kept (Patchwire notes have one colour)"),
        ("Sticky Note1", "width", "width 5000 is outside 120–2000: 2000 used"),
        ("Sticky Note1", "height", "height 20 is outside 60–2000: 60 used")]
    assert [m.patchwire_type for m in report.mapped] == ["note", "note", "note"]


def condition(field: str, right: str) -> dict[str, Any]:
    return {"options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"}, "combinator": "and",
            "conditions": [{"leftValue": f"={{{{ $json.{field} }}}}", "rightValue": right,
                            "operator": {"type": "string", "operation": "equals"}, "id": f"c-{right}"}]}


def test_switch_output_names_become_the_port_labels() -> None:
    switch = {"parameters": {"rules": {"values": [
        {"conditions": condition("priority", "high"), "renameOutput": True, "outputKey": "High"},
        {"conditions": condition("priority", "low")},
        {"conditions": condition("priority", "none"), "renameOutput": True, "outputKey": "None"}]},
        "options": {"fallbackOutput": "extra", "renameFallbackOutput": "Other"}},
        "id": "7e57c0de-0000-4000-8000-000000000001", "name": "Route", "type": "n8n-nodes-base.switch",
        "typeVersion": 3.2, "position": [460, 300]}
    doc, report = n8n.convert({"name": "Routes", "nodes": [switch], "connections": {}})
    config = by_name(doc)["Route"]["config"]
    assert [r["output"] for r in config["rules"]] == ["High", "", "None"]
    assert config["fallback_output"] == "Other"
    assert messages(report.unmapped) == []


def merge_node(parameters: dict[str, Any], version: float = 3) -> dict[str, Any]:
    return {"parameters": parameters, "id": "7e57c0de-0000-4000-8000-000000000002", "name": "Merge",
            "type": "n8n-nodes-base.merge", "typeVersion": version, "position": [680, 300]}


@pytest.mark.parametrize(("parameters", "config", "report"), [
    ({"mode": "combine", "fieldsToMatchString": "id", "outputDataFrom": "input1", "options": {}},
     {"mode": "combine_by_key", "key_a": "id", "key_b": "id"},
     [("Merge", "outputDataFrom", "output data from 'input1' only is not supported: matched items are merged from "
                                  "both inputs (fields of input 2 win on a clash)")]),
    ({"mode": "combine", "fieldsToMatchString": "id", "joinMode": "keepEverything", "outputDataFrom": "both"},
     {"mode": "combine_by_key", "key_a": "id", "key_b": "id", "keep_unmatched": True}, []),
    ({"mode": "combine", "combineBy": "combineAll", "options": {}}, {"mode": "append"},
     [("Merge", "mode", "mode 'combine' by combineAll is not supported (Patchwire's Merge appends, combines by "
                        "position or by one key, or waits and passes one input): mapped to append")]),
])
def test_merge_output_options_map_or_say_why(parameters: dict[str, Any], config: dict[str, Any],
                                              report: list[Any]) -> None:
    doc, got = n8n.convert({"name": "M", "nodes": [merge_node(parameters)], "connections": {}})
    assert by_name(doc)["Merge"]["config"] == config
    assert messages(got.unmapped) == report
    assert all(e.message.strip() for e in got.unmapped + got.skipped)


@pytest.mark.parametrize("name", ["orders_http_if", "tickets_switch_merge", "legacy_v1"])
def test_every_skipped_or_approximated_node_says_why(name: str) -> None:
    _, report = convert(name, workflows={"Escalate": 7})
    entries = report.skipped + report.unmapped + report.expressions + report.connections
    assert entries and all(e.node and len(e.message.strip()) > 10 for e in entries)
