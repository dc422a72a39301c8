"""Switch version 2 in the node panel: rules of several condition rows posted and stored, per-row
errors next to their row, output names as the canvas's port labels; stored version 1 nodes still
load in the flat builder."""

from __future__ import annotations

import html
import re
from typing import Any

from engine.models import Node
from tests.webapp.conftest import Browser


def stored(db_call: Any, node_id: str) -> Node:
    return db_call(lambda db: db.get(Node, node_id))


def rules_form(*rules: tuple[str, str, str, list[tuple[str, str, str, str]]], fallback: str = "") -> dict[str, Any]:
    """(key, combine, output name, rows) per rule; rows are posted in an order mixing the rules, as
    rows added later to an earlier rule are."""
    form: dict[str, Any] = {"name": "Route", "mode": "first_match", "rules.builder": "1", "fallback_output": fallback,
                            "rules.rule": [], "rules.combine": [], "rules.output": [], "rules.group": [],
                            "rules.field": [], "rules.type": [], "rules.operator": [], "rules.value": []}
    for key, combine, output, rows in rules:
        form["rules.rule"].append(key)
        form["rules.combine"].append(combine)
        form["rules.output"].append(output)
        for field, kind, operator, value in rows:
            for part, text in (("group", key), ("field", field), ("type", kind), ("operator", operator),
                               ("value", value)):
                form[f"rules.{part}"].append(text)
    return form


def test_rules_with_several_rows_are_stored_and_their_names_label_the_ports(browser: Browser, db_call: Any) -> None:
    browser.register("switchv2@example.com")
    wid = browser.create_workflow("Switch v2")
    node = browser.add_node(wid, "switch")
    assert stored(db_call, node).type_version == 2
    form = rules_form(("0", "and", "Big gold", [("tier", "string", "equals", "gold"), ("total", "number", "gte", "100")]),
                      ("n1-abc", "or", "Nordic", [("country", "string", "equals", "NO"),
                                                  ("country", "string", "equals", "SE"),
                                                  ("vip", "boolean", "is_true", "")]),
                      fallback="Everything else")
    response = browser.configure(wid, node, form)
    assert response.status_code == 200, response.text
    assert stored(db_call, node).config == {"mode": "first_match", "fallback_output": "Everything else", "rules": [
        {"combine": "and", "output": "Big gold", "conditions": [
            {"field": "tier", "type": "string", "operator": "equals", "value": "gold"},
            {"field": "total", "type": "number", "operator": "gte", "value": 100}]},
        {"combine": "or", "output": "Nordic", "conditions": [
            {"field": "country", "type": "string", "operator": "equals", "value": "NO"},
            {"field": "country", "type": "string", "operator": "equals", "value": "SE"},
            {"field": "vip", "type": "boolean", "operator": "is_true", "value": None}]}]}
    # the canvas's ports (sent out of band with the save, and on the editor page) show the names
    ports = re.search(rf'<ol class="pw-ports" id="ports-{node}"[^>]*>(.*?)</ol>', response.text, re.S).group(1)
    assert re.findall(r'<li data-port="([^"]+)"[^>]*>([^<]*)</li>', ports) == [
        ("0", "Big gold"), ("1", "Nordic"), ("2", "2"), ("3", "3"), ("fallback", "Everything else")]
    page = browser.get(f"/workflows/{wid}").text
    assert re.search(r'<li data-port="1"[^>]*>Nordic</li>', page)
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    rules = re.findall(r'<li class="condition-rule[^"]*" data-key="(\d+)">', panel)
    assert rules == ["0", "1"]
    assert panel.count('name="rules.group" value="1"') == 3 and panel.count('name="rules.group" value="0"') == 2
    assert 'value="Nordic"' in panel and 'value="Everything else"' in panel


def test_a_bad_row_shows_its_message_next_to_it_in_its_rule(browser: Browser, db_call: Any) -> None:
    browser.register("switchbad@example.com")
    wid = browser.create_workflow("Switch bad")
    node = browser.add_node(wid, "switch")
    before = stored(db_call, node).config
    form = rules_form(("0", "and", "", [("a", "string", "equals", "x")]),
                      ("1", "and", "", [("b", "string", "equals", "y"), ("total", "number", "gt", "lots")]),
                      ("2", "or", "", []))
    response = browser.configure(wid, node, form)
    assert response.status_code == 422
    assert stored(db_call, node).config == before
    rules = re.split(r'<li class="condition-rule', response.text)[1:4]
    rows = [re.findall(r'<li class="condition-row[^"]*">(.*?)</li>', rule, re.S) for rule in rules]
    errors = [[[html.unescape(m) for m in re.findall(r'class="field-error row-error"[^>]*>([^<]*)<', row)]
               for row in rule_rows] for rule_rows in rows]
    assert errors[0] == [[]]
    assert errors[1] == [[], ["value: 'lots' is not a number"]]
    assert "conditions: add at least one condition" in html.unescape(rules[2])
    assert 'value="lots"' in response.text


def test_a_stored_version_1_switch_still_loads_in_the_flat_builder(browser: Browser, db_call: Any) -> None:
    browser.register("switchv1@example.com")
    wid = browser.create_workflow("Switch v1")
    node = browser.add_node(wid, "switch")
    v1 = {"mode": "first_match", "rules": [{"field": "kind", "type": "string", "operator": "equals", "value": "a"}]}

    async def downgrade(db: Any) -> None:
        row = await db.get(Node, node)
        row.type_version, row.config = 1, v1
        await db.commit()

    db_call(downgrade)
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert 'class="condition-rule' not in panel and 'value="kind"' in panel
    assert re.findall(r'class="rule-port-name">([^<]*)<', panel)[:1] == ["0"]
    page = browser.get(f"/workflows/{wid}").text
    assert re.search(r'<li data-port="0">0</li>', page)
