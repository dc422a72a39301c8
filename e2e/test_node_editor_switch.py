"""Switch rules in a real browser against a real ``patchwire serve``: two rules built in the rule
builder, one of them with two conditions (and), each output named; the canvas's ports show the names;
a run sends each item by the right output. Assertions are on the DOM and on the stored rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register, save, select_node
from test_editor_import import expect_editor, open_import
from test_editor_testing import Api, stored

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000
ITEMS = [{"id": 1, "kind": "a", "total": 500}, {"id": 2, "kind": "a", "total": 5}, {"id": 3, "kind": "b", "total": 1},
         {"id": 4, "kind": "c", "total": 900}]


def fill_row(row: Any, field: str, kind: str, operator: str, value: str) -> None:
    row.get_by_label("Field", exact=True).fill(field)
    row.get_by_label("Type").select_option(kind)
    row.get_by_label("Operator").select_option(label=operator)
    row.get_by_label("Value", exact=True).fill(value)


def n8n_rule(field: str, right: str, name: str) -> dict[str, Any]:
    return {"conditions": {"options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
                           "conditions": [{"id": f"c-{right}", "leftValue": "={{ $json." + field + " }}",
                                           "rightValue": right, "operator": {"type": "string", "operation": "equals"}}],
                           "combinator": "and"},
            "renameOutput": True, "outputKey": name}


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_an_imported_n8n_switch_shows_its_output_names_on_the_ports(page: Page, server: Server, tmp_path: Path,
                                                                     page_errors: PageErrors) -> None:
    switch = {"parameters": {"rules": {"values": [n8n_rule("kind", "a", "Orders"), n8n_rule("kind", "b", "Refunds")]},
                             "options": {"fallbackOutput": "extra", "renameFallbackOutput": "Other"}},
              "id": "0c34bae5-89c8-4adb-bb38-092d5a0e349e", "name": "Route", "type": "n8n-nodes-base.switch",
              "typeVersion": 3.2, "position": [200, 300]}
    trigger = {"parameters": {}, "id": "2c6504d1-9412-4da5-bd51-e5f9d6a84721", "name": "Start",
               "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [0, 300]}
    path = tmp_path / "switch.json"
    path.write_text(json.dumps({"name": "n8n routes", "nodes": [trigger, switch], "connections": {
        "Start": {"main": [[{"node": "Route", "type": "main", "index": 0}]]}}}))
    register(page, server.url, "switchimport")
    open_import(page, "list")
    form = page.locator("#import-list form").first
    form.locator("input[type=file]").set_input_files(str(path))
    form.get_by_label("Format").select_option("n8n")
    form.get_by_role("button", name="Import file").click()
    expect_editor(page, server.url, nodes=2, wires=1)
    expect(page.locator('#canvas .pw-node[data-type="switch"] .pw-ports li')).to_have_text(
        ["Orders", "Refunds", "2", "3", "Other"])
    expect(page.locator("#import-report")).to_contain_text("Imported (n8n format)")
    expect(page.locator("#import-report")).not_to_contain_text("output names")
    assert not page_errors.page_errors


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_switch_rules_with_named_outputs_route_items(page: Page, server: Server, page_errors: PageErrors) -> None:
    base = server.url
    register(page, base, "switchrules")
    wid = create_workflow(page, base, "Routing")
    api = Api(page, base)
    ids = {"t": api.add_node(wid, "manual_trigger", 20, 60), "sw": api.add_node(wid, "switch", 240, 60),
           "big": api.add_node(wid, "set", 520, 0), "b": api.add_node(wid, "set", 520, 140),
           "rest": api.add_node(wid, "set", 520, 280)}
    api.post(f"/workflows/{wid}/nodes/{ids['t']}/pin", {"data": json.dumps({"main": ITEMS})})
    for key, name in (("big", "Big A"), ("b", "Bs"), ("rest", "Rest")):
        api.post(f"/workflows/{wid}/nodes/{ids[key]}", {"name": name, "fields.name": "branch", "fields.value": name,
                                                        "keep_existing": "on"})
    api.connect(wid, ids["t"], ids["sw"])
    for port, key in (("0", "big"), ("1", "b"), ("fallback", "rest")):
        api.connect(wid, ids["sw"], ids[key], port)
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(5)

    form = select_node(page, page.locator(f'#canvas .drawflow-node[data-node-id="{ids["sw"]}"]'), ids["sw"])
    builder = form.locator(".rule-builder")
    builder.get_by_role("button", name="Add rule").click()
    builder.get_by_role("button", name="Add rule").click()
    rules = builder.locator("li.condition-rule")
    expect(rules).to_have_count(2)
    expect(rules.locator(".rule-port-name")).to_have_text(["0", "1"])
    first, second = rules.nth(0), rules.nth(1)
    fill_row(first.locator("li.condition-row").nth(0), "kind", "string", "is equal to", "a")
    first.get_by_role("button", name="Add condition").click()
    expect(first.locator("li.condition-row")).to_have_count(2)
    second_row = first.locator("li.condition-row").nth(1)
    fill_row(second_row, "total", "number", "is greater than or equal to", "lots")
    # the autosave is refused; the message is next to the row it names, in its rule, and the rule above is clean
    expect(second_row.locator(".row-error")).to_have_text("value: 'lots' is not a number")
    expect(first.locator("li.condition-row").nth(0).locator(".row-error")).to_have_count(0)
    second_row.get_by_label("Value", exact=True).fill("100")
    first.get_by_label("Combine").select_option(label="All conditions hold (and)")
    first.get_by_label("Output name").fill("Big A")
    fill_row(second.locator("li.condition-row").nth(0), "kind", "string", "is equal to", "b")
    second.get_by_label("Output name").fill("Bs")
    expect(second.locator("li.condition-row")).to_have_count(1)
    save(page, form)

    config = json.loads(stored(server, "SELECT config FROM nodes WHERE id = ?", ids["sw"])[0][0])
    assert config["rules"] == [
        {"conditions": [{"field": "kind", "type": "string", "operator": "equals", "value": "a"},
                        {"field": "total", "type": "number", "operator": "gte", "value": 100}],
         "combine": "and", "output": "Big A"},
        {"conditions": [{"field": "kind", "type": "string", "operator": "equals", "value": "b"}],
         "combine": "and", "output": "Bs"}]
    ports = page.locator(f"#ports-{ids['sw']} li")
    expect(ports).to_have_text(["Big A", "Bs", "2", "3", "fallback"])
    page.reload()  # the labels are stored, not only drawn after the save
    expect(page.locator(f"#ports-{ids['sw']} li")).to_have_text(["Big A", "Bs", "2", "3", "fallback"])

    page.locator("#run-button").click()
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    for key in ("sw", "big", "b", "rest"):
        expect(page.locator(f"#status-{ids[key]}")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    execution_id = int(re.search(r"\d+", run_status.get_by_role("link").inner_text()).group())
    outputs = dict(stored(server, "SELECT node_id, output FROM node_runs WHERE execution_id = ?", execution_id))
    assert [i["id"] for i in json.loads(outputs[ids["big"]])["main"]] == [1]
    assert [i["id"] for i in json.loads(outputs[ids["b"]])["main"]] == [3]
    assert [i["id"] for i in json.loads(outputs[ids["rest"]])["main"]] == [2, 4]

    page.goto(f"{base}/executions/{execution_id}")  # the execution page's canvas shows the same labels
    expect(page.locator(f'.pw-node[data-node-id="{ids["sw"]}"] .pw-ports li')).to_have_text(
        ["Big A", "Bs", "2", "3", "fallback"])
    assert not page_errors.page_errors
