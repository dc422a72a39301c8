"""The node panel's form blocks: the condition builder, key–value rows, JSON fields, display_when and
"Add option" groups, posted as a browser posts them and read back from the stored node."""

from __future__ import annotations

import html
import re
from typing import Any

from engine.models import Node
from tests.webapp.conftest import Browser


def stored(db_call: Any, node_id: str) -> dict[str, Any]:
    return db_call(lambda db: db.get(Node, node_id)).config


def builder_form(rows: list[tuple[str, str, str, str]], combine: str = "and") -> dict[str, Any]:
    return {"name": "If", "combine": combine, "conditions.builder": "1",
            "conditions.field": [r[0] for r in rows], "conditions.type": [r[1] for r in rows],
            "conditions.operator": [r[2] for r in rows], "conditions.value": [r[3] for r in rows]}


def test_builder_rows_are_stored_in_the_condition_model(browser: Browser, db_call: Any) -> None:
    browser.register("builder@example.com")
    wid = browser.create_workflow("Conditions")
    node = browser.add_node(wid, "if")
    rows = [("body.total", "number", "gt", "100"), ("body.tags", "list", "contains", "vip"),
            ("body.name", "string", "is_not_empty", "ignored"), ("body.code", "string", "matches", "^A[0-9]+$")]
    response = browser.configure(wid, node, builder_form(rows, "or"))
    assert response.status_code == 200, response.text
    assert stored(db_call, node) == {"combine": "or", "conditions": [
        {"field": "body.total", "type": "number", "operator": "gt", "value": 100},
        {"field": "body.tags", "type": "list", "operator": "contains", "value": "vip"},
        {"field": "body.name", "type": "string", "operator": "is_not_empty", "value": None},
        {"field": "body.code", "type": "string", "operator": "matches", "value": "^A[0-9]+$"}]}
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert panel.count('<li class="condition-row') == 4 + 1  # four rows and the template's
    assert 'value="body.tags"' in panel and "Any condition holds (or)" in panel


def test_a_bad_row_shows_its_message_next_to_it_and_nothing_is_saved(browser: Browser, db_call: Any) -> None:
    browser.register("badrow@example.com")
    wid = browser.create_workflow("Bad rows")
    node = browser.add_node(wid, "if")
    before = stored(db_call, node)
    rows = [("ok", "string", "equals", "fine"), ("total", "number", "gt", "abc"),
            ("", "string", "exists", ""), ("code", "string", "matches", "([a-z")]
    response = browser.configure(wid, node, builder_form(rows))
    assert response.status_code == 422
    assert stored(db_call, node) == before
    items = re.findall(r'<li class="condition-row[^"]*">(.*?)</li>', response.text, re.S)
    errors = [[html.unescape(m) for m in re.findall(r'class="field-error row-error"[^>]*>([^<]*)<', item)]
              for item in items]
    assert errors[0] == []
    assert errors[1] == ["value: 'abc' is not a number"]
    assert errors[2] and errors[2][0].startswith("field: required")
    assert errors[3] and errors[3][0].startswith("value: not a valid regular expression")
    assert "Fix the conditions marked below." in response.text
    assert 'value="abc"' in response.text  # what was typed is shown again


def test_posted_json_conditions_still_work(browser: Browser, db_call: Any) -> None:
    browser.register("jsonconds@example.com")
    wid = browser.create_workflow("JSON")
    node = browser.add_node(wid, "if")
    text = '[{"field": "a", "type": "number", "operator": "lt", "value": 3}]'
    assert browser.configure(wid, node, {"name": "If", "conditions": text}).status_code == 200
    assert stored(db_call, node)["conditions"] == [{"field": "a", "type": "number", "operator": "lt", "value": 3}]


def test_switch_rules_use_the_builder_with_their_outputs(browser: Browser, db_call: Any) -> None:
    browser.register("switchrules@example.com")
    wid = browser.create_workflow("Switch")
    node = browser.add_node(wid, "switch")
    form = {"name": "Route", "mode": "first_match", "rules.builder": "1",  # Switch v2: each rule a group of rows
            "rules.rule": ["0", "1"], "rules.combine": ["and", "and"], "rules.output": ["", ""],
            "rules.group": ["0", "1"], "rules.field": ["status", "total"], "rules.type": ["string", "number"],
            "rules.operator": ["equals", "gte"], "rules.value": ["new", "1000"]}
    assert browser.configure(wid, node, form).status_code == 200
    assert stored(db_call, node)["rules"] == [
        {"conditions": [{"field": "status", "type": "string", "operator": "equals", "value": "new"}],
         "combine": "and", "output": ""},
        {"conditions": [{"field": "total", "type": "number", "operator": "gte", "value": 1000}],
         "combine": "and", "output": ""}]
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert re.findall(r'class="rule-port-name">([^<]*)<', panel)[:2] == ["0", "1"]
    assert "Add rule" in panel


def test_keyvalue_rows_can_be_added_and_removed(browser: Browser, db_call: Any) -> None:
    browser.register("kv@example.com")
    wid = browser.create_workflow("KV")
    node = browser.add_node(wid, "set")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert 'class="kv-add"' in panel and 'class="kv-row-template"' in panel
    assert panel.count('<tr class="kv-row">') == 2  # one empty row, one in the template
    form = {"name": "Set", "fields.name": ["a", "b"], "fields.value": ["1", "2"], "keep_existing": "on"}
    assert browser.configure(wid, node, form).status_code == 200
    assert stored(db_call, node)["fields"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert panel.count('class="kv-remove') == 3  # two rows and the template's


def test_bad_json_is_refused_with_the_fields_message(browser: Browser, db_call: Any) -> None:
    browser.register("json@example.com")
    wid = browser.create_workflow("JSON field")
    node = browser.add_node(wid, "set")
    response = browser.configure(wid, node, {"name": "Set", "fields.name": ["a"], "fields.value": ["1"],
                                             "types": '{"a": '})
    assert response.status_code == 422
    assert re.search(r'id="cfg-types-error">Not valid JSON', response.text)
    assert 'class="mono code json-editor"' in response.text


def test_display_when_hides_a_field_and_skips_its_value(browser: Browser, db_call: Any) -> None:
    browser.register("display@example.com")
    wid = browser.create_workflow("HTTP")
    node = browser.add_node(wid, "http_request")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    body = re.search(r'<div class="field field-json[^>]*data-field="body"[^>]*>', panel).group(0)
    assert "data-display-when" in body and " hidden" in body  # GET has no body
    form = {"name": "HTTP", "url": "https://example.com/", "method": "GET", "body": "{not json"}
    assert browser.configure(wid, node, form).status_code == 200  # a hidden field is not validated
    assert stored(db_call, node)["body"] is None
    form = {**form, "method": "POST"}
    refused = browser.configure(wid, node, form)
    assert refused.status_code == 422 and "Not valid JSON" in refused.text
    assert browser.configure(wid, node, {**form, "body": '{"a": 1}'}).status_code == 200
    assert stored(db_call, node)["body"] == {"a": 1}
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    body = re.search(r'<div class="field field-json[^>]*data-field="body"[^>]*>', panel).group(0)
    assert " hidden" not in body


def test_optional_fields_wait_in_the_add_option_menu(browser: Browser, db_call: Any) -> None:
    browser.register("options@example.com")
    wid = browser.create_workflow("Options")
    node = browser.add_node(wid, "http_request")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert 'class="option-add"' in panel
    timeout = re.search(r'<div class="field[^>]*data-field="timeout"[^>]*>', panel).group(0)
    assert 'data-collection="options"' in timeout and " hidden" in timeout
    base = {"name": "HTTP", "url": "https://example.com/", "method": "GET", "_options": ["", "timeout"],
            "timeout": "5", "fail_on_error_status": "on"}
    assert browser.configure(wid, node, base).status_code == 200
    config = stored(db_call, node)
    assert config["timeout"] == 5.0 and config["fail_on_error_status"] is True
    # removed again (its marker not posted): back to the default, whatever its input still holds
    assert browser.configure(wid, node, {**base, "_options": [""], "timeout": "7"}).status_code == 200
    assert stored(db_call, node)["timeout"] == 30.0
    # an unchecked checkbox that was picked counts as set
    picked = {**base, "_options": ["", "fail_on_error_status"]}
    del picked["fail_on_error_status"]
    assert browser.configure(wid, node, picked).status_code == 200
    assert stored(db_call, node)["fail_on_error_status"] is False
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    shown = re.search(r'<div class="field[^>]*data-field="fail_on_error_status"[^>]*>', panel).group(0)
    assert " hidden" not in shown


def test_every_panel_has_help_and_a_docs_link_that_resolves(browser: Browser) -> None:
    from nodes import registry

    browser.register("help@example.com")
    wid = browser.create_workflow("Help")
    docs = browser.get("/docs/nodes")
    assert docs.status_code == 200
    for type_name in sorted({t.type_name for t in registry.latest_types()}):
        node = browser.add_node(wid, type_name)
        panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
        link = re.search(r'<a href="/docs/nodes#([a-z_]+)"[^>]*class="node-docs-link">Docs</a>', panel)
        assert link and link.group(1) == type_name, type_name
        assert f'<a id="{type_name}"></a>' in docs.text, type_name
    node = browser.add_node(wid, "if")
    assert "Combine the rows with and" in browser.get(f"/workflows/{wid}/nodes/{node}").text
