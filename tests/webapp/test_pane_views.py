"""The node editor's three panes (Input | Parameters | Output): their markup, the Table / JSON / Schema views of
the input and output, the bounds on large data, the expressions fields carry (``data-expr``), and the selector of
an earlier node's output. Through the web app, its in-process worker and a real database."""

from __future__ import annotations

import html as htmllib
import json
import re

from tests.webapp.conftest import Browser
from tests.webapp.test_testing import build, started
from webapp.testing.dataviews import MAX_COLUMNS, MAX_ROWS


def exprs(html: str, css: str) -> list[str]:
    """The ``data-expr`` of the elements of class ``css`` (draggable ones only)."""
    found = re.findall(rf'<\w+ class="{css}[^"]*" draggable="true" data-expr="([^"]*)"', html)
    return [htmllib.unescape(e) for e in found]


def pane(browser: Browser, wid: int, node_id: str, side: str, **params: str) -> str:
    response = browser.get(f"/workflows/{wid}/nodes/{node_id}/{'input' if side == 'input' else 'data'}", params=params)
    assert response.status_code == 200, response.text
    return response.text


def run_up_to(browser: Browser, wid: int, node_id: str) -> int:
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{node_id}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    return execution_id


def test_opening_a_node_shows_three_panes_that_load_their_data(browser: Browser) -> None:
    wid, ids = build(browser)
    html = browser.get(f"/workflows/{wid}/nodes/{ids['b']}").text
    assert '<div class="node-editor" id="node-editor"' in html
    labels = re.findall(r'<section class="ne-pane [\w-]+" aria-label="(\w+)"', html)
    assert labels == ["Input", "Parameters", "Output"]
    assert f'hx-get="/workflows/{wid}/nodes/{ids["b"]}/input"' in html and 'hx-trigger="load"' in html
    assert f'hx-get="/workflows/{wid}/nodes/{ids["b"]}/data" hx-trigger="load"' in html
    params = html.split('aria-label="Parameters"', 1)[1].split('aria-label="Output"', 1)[0]
    assert '<form class="node-form"' in params and 'name="version"' in params and "<h2>Set</h2>" in params
    assert 'class="ne-close"' in html and "Run this node" in html and "ne-handle" in html


def test_input_without_data_offers_to_run_the_previous_nodes(browser: Browser) -> None:
    wid, ids = build(browser)
    html = pane(browser, wid, ids["b"], "input")
    assert "No input data yet" in html
    assert f'hx-post="/workflows/{wid}/nodes/{ids["a"]}/run-up-to"' in html and "Run the previous nodes" in html
    trigger = pane(browser, wid, ids["t"], "input")
    assert "A trigger has no input" in trigger and "Run the previous nodes" not in trigger

    # Running the previous nodes (up to A) fills B's input with A's output.
    execution_id = run_up_to(browser, wid, ids["a"])
    html = pane(browser, wid, ids["b"], "input", view="table")
    assert "No input data yet" not in html and f"execution #{execution_id}" in html
    assert exprs(html, "dv-col") == ["item.a"] and exprs(html, "dv-cell") == ["item.a"]


def test_input_and_output_in_each_view_carry_the_expressions(browser: Browser) -> None:
    wid, ids = build(browser)
    execution_id = run_up_to(browser, wid, ids["b"])

    table = pane(browser, wid, ids["b"], "input", view="table")
    assert f"last run’s input, execution #{execution_id}" in table and '<table class="dv-table">' in table
    assert exprs(table, "dv-col") == ["item.a"] and exprs(table, "dv-cell dv-number") == ["item.a"]
    assert 'aria-pressed="true">Table<' in table

    tree = pane(browser, wid, ids["b"], "input", view="json")
    assert 'class="json-tree"' in tree and exprs(tree, "jt-key") == ["item", "item.a"] and "dv-table" not in tree

    schema = pane(browser, wid, ids["b"], "input", view="schema")
    assert exprs(schema, "dv-field") == ["item.a"] and '<span class="dv-type">number</span>' in schema
    assert '<span class="dv-example">1</span>' in schema and "dv-table" not in schema and "json-tree" not in schema

    output = pane(browser, wid, ids["b"], "output", view="table")
    assert sorted(exprs(output, "dv-col")) == ['nodes["B"][0].a', 'nodes["B"][0].b']
    assert sorted(exprs(output, "dv-cell dv-number")) == ['nodes["B"][0].a', 'nodes["B"][0].b']
    assert f"#{execution_id}" in output and "Pin output" in output
    output_schema = pane(browser, wid, ids["b"], "output", view="schema")
    assert sorted(exprs(output_schema, "dv-field")) == ['nodes["B"][0].a', 'nodes["B"][0].b']


def test_the_chosen_view_is_remembered_per_side(browser: Browser) -> None:
    wid, ids = build(browser)
    run_up_to(browser, wid, ids["b"])
    assert "dv-schema" in pane(browser, wid, ids["b"], "input", view="schema")
    assert "dv-schema" in pane(browser, wid, ids["c"], "input")  # no view asked: the last one chosen
    assert '<table class="dv-table">' in pane(browser, wid, ids["b"], "output")  # the output side keeps its own
    assert "dv-schema" in pane(browser, wid, ids["b"], "input", view="nonsense")  # unknown: the remembered one
    assert "dv-table" in pane(browser, wid, ids["b"], "output", view="nonsense")  # or the default


def test_an_earlier_nodes_output_can_be_shown_in_the_input_pane(browser: Browser) -> None:
    wid, ids = build(browser)
    run_up_to(browser, wid, ids["c"])
    html = pane(browser, wid, ids["c"], "input", view="table")
    options = re.findall(r'<option value="(\w*)"[^>]*>([^<]*)</option>', html)
    assert options[0] == ("", "This node’s input")
    assert {value for value, _ in options[1:]} == {ids["t"], ids["a"], ids["b"]}
    assert "Output of “A”" in html
    assert sorted(exprs(html, "dv-col")) == ["item.a", "item.b"]

    earlier = pane(browser, wid, ids["c"], "input", source=ids["a"])
    assert re.search(rf'<option value="{ids["a"]}" selected>', earlier)
    assert exprs(earlier, "dv-col") == ['nodes["A"][0].a'] and 'output of “A”' in earlier
    assert f'data-source="{ids["a"]}"' in earlier
    # A node that is not upstream of C is not a source: C's own input is shown.
    assert exprs(pane(browser, wid, ids["b"], "input", source=ids["c"]), "dv-col") == ["item.a"]


def test_a_one_megabyte_input_renders_bounded_in_every_view(browser: Browser) -> None:
    wid, ids = build(browser)
    items = [{"n": i, "text": "y" * 300, "user": {"name": f"u{i}", "tags": ["a", "b"]}} for i in range(2700)]
    items[0].update({f"extra_{k}": k for k in range(300)})
    data = json.dumps({"main": items})
    assert len(data) > 1_000_000 - 100_000
    assert browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": data}).status_code == 200

    table = pane(browser, wid, ids["b"], "input", view="table")
    assert "pinned data of the nodes feeding it" in table and "2,700 items" in table
    assert table.count("<tr>") == MAX_ROWS + 1
    assert f"{2700 - MAX_ROWS:,} more items not shown" in table and "More columns not shown" in table
    assert len(exprs(table, "dv-col")) == MAX_COLUMNS
    assert len(table) < 250_000

    schema = pane(browser, wid, ids["b"], "input", view="schema")
    assert "more fields not shown" in schema and len(schema) < 100_000
    assert "item.user.name" in exprs(schema, "dv-field") and "item.user.tags[0]" in exprs(schema, "dv-field")

    tree = pane(browser, wid, ids["b"], "input", view="json")
    assert "more not shown" in tree and len(tree) < 400_000


def test_output_shows_each_port_and_the_error(browser: Browser) -> None:
    wid, ids = build(browser)
    other = browser.create_workflow("Ports")  # an If without conditions: not runnable, but it can be pinned
    branch = browser.add_node(other, "if")
    pinned = {"true": [{"kept": 1}], "false": [{"dropped": 2}, {"dropped": 3}]}
    assert browser.post(f"/workflows/{other}/nodes/{branch}/pin", {"data": json.dumps(pinned)}).status_code == 200
    html = pane(browser, other, branch, "output", view="table")
    assert 'data-port="true"' in html and 'data-port="false"' in html
    assert sorted(exprs(html, "dv-col")) == ['nodes["If"][0].dropped', 'nodes["If"][0].kept']

    browser.configure(wid, ids["a"], {"name": "A", "fields.name": ["a"], "fields.value": ["{{ 1 / 0 }}"],
                                      "keep_existing": "on"})
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{ids['a']}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "failed"
    failed = pane(browser, wid, ids["a"], "output")
    assert 'class="data-block last-error"' in failed and "division" in failed.lower()
    # The failed node's input is shown in its input pane.
    assert exprs(pane(browser, wid, ids["a"], "input", view="table"), "dv-col") == []


def test_odd_keys_and_markup_are_escaped(browser: Browser) -> None:
    wid, ids = build(browser)
    pinned = {"main": [{"odd key": "<b>x</b>", "items": [1, 2], "if": None}]}
    assert browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": json.dumps(pinned)}).status_code == 200
    table = pane(browser, wid, ids["b"], "input", view="table")
    assert "<b>x</b>" not in table and "&lt;b&gt;x&lt;/b&gt;" in table
    # (sorted: PostgreSQL's jsonb keeps keys in its own order)
    assert sorted(exprs(table, "dv-col")) == ['item["if"]', 'item["items"]', 'item["odd key"]']
    schema = pane(browser, wid, ids["b"], "input", view="schema")
    assert 'item["items"][0]' in exprs(schema, "dv-field")
    assert '<span class="dv-type">null</span>' in schema


def test_another_users_node_is_not_shown(browser: Browser, second_browser: Browser) -> None:
    wid, ids = build(browser)
    second_browser.register("other@example.com")
    assert second_browser.get(f"/workflows/{wid}/nodes/{ids['b']}/input").status_code == 404
