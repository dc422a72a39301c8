"""The node panel's form blocks in a real browser against a real ``patchwire serve``: an If built with
three conditions in the condition builder and run down both branches, a bad value's message next to its
row, a field shown by display_when, an optional field added from "Add option", and the Sub-workflow
picker (search, pick, an id entered by hand). Assertions are on the DOM and on the stored rows."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register, save, select_node
from test_editor_testing import Api, stored

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000


def config_of(server: Server, node_id: str) -> dict[str, Any]:
    return json.loads(stored(server, "SELECT config FROM nodes WHERE id = ?", node_id)[0][0])


def open_node(page: Page, node_id: str) -> Any:
    return select_node(page, page.locator(f'#canvas .drawflow-node[data-node-id="{node_id}"]'), node_id)


ITEMS = [{"n": 5, "tags": ["vip"], "name": "Ada"}, {"n": 50, "tags": ["vip"], "name": "Al"},
         {"n": 7, "tags": [], "name": "Amy"}]


def fill_row(row: Any, field: str, kind: str, operator: str, value: str) -> None:
    row.get_by_label("Field", exact=True).fill(field)
    row.get_by_label("Type").select_option(kind)
    row.get_by_label("Operator").select_option(label=operator)
    row.get_by_label("Value", exact=True).fill(value)


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_if_built_in_the_condition_builder_runs_both_branches(page: Page, server: Server,
                                                              page_errors: PageErrors) -> None:
    base = server.url
    register(page, base, "conds")
    wid = create_workflow(page, base, "Builder")
    api = Api(page, base)
    ids = {"t": api.add_node(wid, "manual_trigger", 20, 60), "if": api.add_node(wid, "if", 240, 60),
           "yes": api.add_node(wid, "set", 480, 0), "no": api.add_node(wid, "set", 480, 160)}
    api.post(f"/workflows/{wid}/nodes/{ids['t']}/pin", {"data": json.dumps({"main": ITEMS})})
    for key, name in (("yes", "Yes"), ("no", "No")):
        api.post(f"/workflows/{wid}/nodes/{ids[key]}", {"name": name, "fields.name": "branch", "fields.value": name,
                                                        "keep_existing": "on"})
    api.connect(wid, ids["t"], ids["if"])
    api.connect(wid, ids["if"], ids["yes"], "true")
    api.connect(wid, ids["if"], ids["no"], "false")
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(4)

    form = open_node(page, ids["if"])
    builder = form.locator(".condition-builder")
    for _ in range(3):
        builder.get_by_role("button", name="Add condition").click()
    rows = builder.locator("li.condition-row")
    expect(rows).to_have_count(3)
    fill_row(rows.nth(0), "n", "number", "is less than", "abc")
    fill_row(rows.nth(1), "tags", "list", "contains", "vip")
    fill_row(rows.nth(2), "name", "string", "matches regex", "^A")
    # an operator that takes no value hides the value input; choosing another shows it again
    rows.nth(2).get_by_label("Operator").select_option(label="exists")
    expect(rows.nth(2).get_by_label("Value", exact=True)).to_be_hidden()
    rows.nth(2).get_by_label("Operator").select_option(label="matches regex")
    expect(rows.nth(2).get_by_label("Value", exact=True)).to_be_visible()
    form.get_by_label("Combine").select_option(label="All conditions hold (and)")

    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(f"/nodes/{ids['if']}")) as sent:
        form.get_by_role("button", name="Save").click()
    assert sent.value.status == 422
    bad_row = page.locator("#panel li.condition-row").nth(0)
    expect(bad_row.locator(".row-error")).to_have_text("value: 'abc' is not a number")
    expect(page.locator("#panel li.condition-row").nth(1).locator(".row-error")).to_have_count(0)
    assert "conditions" not in config_of(server, ids["if"])

    form = page.locator(f'#panel form.node-form[data-node-id="{ids["if"]}"]')
    form.locator("li.condition-row").nth(0).get_by_label("Value", exact=True).fill("10")
    save(page, form)
    assert config_of(server, ids["if"])["conditions"] == [
        {"field": "n", "type": "number", "operator": "lt", "value": 10},
        {"field": "tags", "type": "list", "operator": "contains", "value": "vip"},
        {"field": "name", "type": "string", "operator": "matches", "value": "^A"}]

    page.locator("#run-button").click()
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    for key in ("if", "yes", "no"):
        expect(page.locator(f"#status-{ids[key]}")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    execution_id = int(re.search(r"\d+", run_status.get_by_role("link").inner_text()).group())
    outputs = dict(stored(server, "SELECT node_id, output FROM node_runs WHERE execution_id = ?", execution_id))
    assert [i["name"] for i in json.loads(outputs[ids["yes"]])["main"]] == ["Ada"]
    assert [i["name"] for i in json.loads(outputs[ids["no"]])["main"]] == ["Al", "Amy"]
    assert not page_errors.page_errors


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_display_when_add_option_and_rows(page: Page, server: Server, page_errors: PageErrors) -> None:
    base = server.url
    register(page, base, "blocks")
    wid = create_workflow(page, base, "Blocks")
    api = Api(page, base)
    http = api.add_node(wid, "http_request", 40, 60)
    page.reload()
    form = open_node(page, http)
    body = form.locator('.field[data-field="body"]')
    expect(body).to_be_hidden()
    form.get_by_label("Method").select_option("POST")
    expect(body).to_be_visible()
    # JSON is checked as it is typed
    body.locator("textarea").fill('{"a": ')
    expect(body.locator(".json-status")).to_contain_text("Not valid JSON")
    body.locator("textarea").fill('{"a": 1}')
    expect(body.locator(".json-status")).to_be_hidden()
    form.get_by_label("Method").select_option("GET")
    expect(body).to_be_hidden()
    form.get_by_label("Method").select_option("PUT")

    timeout = form.locator('.field[data-field="timeout"]')
    expect(timeout).to_be_hidden()
    form.get_by_label("Add option").select_option(label="Timeout (s)")
    expect(timeout).to_be_visible()
    timeout.locator("input[type=text]").fill("5")
    # headers: add a row, then remove the first (empty) one
    headers = form.locator('.field[data-field="headers"]')
    headers.get_by_role("button", name="Add row").click()
    expect(headers.locator("tr.kv-row")).to_have_count(2)
    headers.locator("tr.kv-row").nth(1).get_by_label("Headers name").fill("X-Test")
    headers.locator("tr.kv-row").nth(1).get_by_label("Headers value").fill("yes")
    headers.locator("tr.kv-row").nth(0).get_by_role("button", name="Remove row").click()
    expect(headers.locator("tr.kv-row")).to_have_count(1)
    form.locator("#cfg-url").fill("https://example.com/")
    save(page, form)
    config = config_of(server, http)
    assert config["method"] == "PUT" and config["body"] == {"a": 1} and config["timeout"] == 5.0
    assert config["headers"] == [{"name": "X-Test", "value": "yes"}]

    form = page.locator(f'#panel form.node-form[data-node-id="{http}"]')
    timeout = form.locator('.field[data-field="timeout"]')
    expect(timeout).to_be_visible()  # a set value shows
    timeout.get_by_role("button", name="Remove option Timeout (s)").click()
    expect(timeout).to_be_hidden()
    save(page, form)
    assert config_of(server, http)["timeout"] == 30.0
    assert not page_errors.page_errors


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_sub_workflow_picker_searches_picks_and_takes_an_id_by_hand(page: Page, server: Server,
                                                                    page_errors: PageErrors) -> None:
    base = server.url
    register(page, base, "picker")
    others = {}
    for name in ("Billing sync", "Welcome mail"):
        others[name] = create_workflow(page, base, name)
        page.goto(f"{base}/workflows")
    wid = create_workflow(page, base, "Caller")
    api = Api(page, base)
    node = api.add_node(wid, "sub_workflow", 40, 60)
    page.reload()
    form = open_node(page, node)
    box = form.locator(".dynamic-options")
    choices = box.locator("select.options-select option")
    expect(box.locator(".options-status")).to_have_text("2 choices")
    with page.expect_response(lambda r: "/options/workflow_id?q=Bill" in r.url):
        box.get_by_label("Search Workflow").fill("Bill")
    expect(box.locator(".options-status")).to_have_text("1 choice")
    expect(choices).to_have_text(["Choose…", f"Billing sync (#{others['Billing sync']})"])
    box.locator("select.options-select").select_option(str(others["Billing sync"]))
    save(page, form)
    assert config_of(server, node)["workflow_id"] == others["Billing sync"]

    # Saved in place (autosave: the form is not replaced): the search stays; clearing it lists both again.
    expect(box.locator("select.options-select")).to_have_value(str(others["Billing sync"]))
    with page.expect_response(lambda r: "/options/workflow_id" in r.url and "q=Bill" not in r.url):
        box.get_by_label("Search Workflow").fill("")
    expect(box.locator(".options-status")).to_have_text("2 choices")
    expect(box.locator("select.options-select")).to_have_value(str(others["Billing sync"]))
    box.get_by_label("Enter an id by hand").check()
    box.get_by_label("Workflow id", exact=True).fill(str(others["Welcome mail"]))
    save(page, form)
    assert config_of(server, node)["workflow_id"] == others["Welcome mail"]
    assert not page_errors.page_errors
