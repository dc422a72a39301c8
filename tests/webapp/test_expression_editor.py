"""The expression editor's server side: the completions of a node's fields, and previews that wait quietly
before any data while syntax errors and real failures stay errors — through the web app, its in-process
worker and a real database."""

from __future__ import annotations

from typing import Any

from engine.expressions import sandbox_names
from engine.models import Node
from tests.webapp.conftest import Browser
from tests.webapp.test_testing import build, preview, started


def completions(browser: Browser, wid: int, node_id: str) -> dict[str, Any]:
    response = browser.get(f"/workflows/{wid}/nodes/{node_id}/completions")
    assert response.status_code == 200, response.text
    return response.json()


def test_completions_list_the_fields_of_the_last_input_with_types_and_examples(browser: Browser) -> None:
    wid, ids = build(browser)
    assert browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {
        "data": '{"main": [{"a": 1, "user": {"name": "Ada", "tags": ["x"], "first name": "A"}, "ok": true}]}'
    }).status_code == 200
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    found = completions(browser, wid, ids["b"])
    fields = {f["expr"]: (f["type"], f["example"]) for f in found["fields"]}
    assert fields["item.a"] == ("number", "1")
    assert fields["item.user"] == ("object", "{…} 3 keys")
    assert fields["item.user.name"] == ("string", '"Ada"')
    assert fields['item.user["first name"]'] == ("string", '"A"')
    assert fields["item.user.tags"] == ("array", "[…] 1 item")
    assert fields["item.user.tags[0]"] == ("string", '"x"')
    assert fields["item.ok"] == ("boolean", "true")
    assert f"execution #{execution_id}" in found["data_from"]
    upstream = {n["name"]: n for n in found["nodes"]}
    assert upstream["A"]["expr"] == 'nodes["A"]'
    assert {f["expr"] for f in upstream["A"]["fields"]} >= {'nodes["A"][0].a', 'nodes["A"][0].user.name'}


def test_completions_offer_only_the_nodes_upstream(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    trigger = db_call(lambda db: db.get(Node, ids["t"])).name
    assert [n["name"] for n in completions(browser, wid, ids["b"])["nodes"]] == sorted(["A", trigger], key=str.casefold)
    assert [n["name"] for n in completions(browser, wid, ids["c"])["nodes"]] == sorted(["A", "B", trigger],
                                                                                        key=str.casefold)
    assert completions(browser, wid, ids["t"])["nodes"] == []


def test_completions_take_the_filters_and_functions_from_the_sandbox(browser: Browser) -> None:
    wid, ids = build(browser)
    found = completions(browser, wid, ids["b"])
    filters, functions = sandbox_names()
    assert [f["name"] for f in found["filters"]] == sorted(filters)
    assert [f["name"] for f in found["functions"]] == sorted(functions)
    assert "jsonpath" in filters and "upper" in filters and "range" in functions and "lipsum" not in functions
    jsonpath = next(f for f in found["filters"] if f["name"] == "jsonpath")
    assert jsonpath["doc"].startswith("All matches of a JSONPath")
    assert [v["name"] for v in found["variables"]] == ["item", "items", "trigger", "nodes", "now"]


def test_a_node_with_no_data_has_no_fields_and_no_error(browser: Browser) -> None:
    wid, ids = build(browser)
    found = completions(browser, wid, ids["b"])
    assert found["fields"] == [] and found["trigger"] == [] and found["data_from"] == ""
    assert all(n["fields"] == [] for n in found["nodes"])


def test_completions_are_scoped_to_the_owner(browser: Browser, second_browser: Browser) -> None:
    wid, ids = build(browser)
    second_browser.register("intruder@example.com")
    assert second_browser.get(f"/workflows/{wid}/nodes/{ids['b']}/completions").status_code == 404
    assert browser.get(f"/workflows/{wid}/nodes/{'0' * 32}/completions").status_code == 404


def test_previews_before_data_wait_quietly_but_syntax_errors_are_red(browser: Browser) -> None:
    wid, ids = build(browser)
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.a + 1 }}")
    assert "no data yet — run the previous nodes to preview" in html and 'class="expr-waiting muted"' in html
    assert 'role="alert"' not in html and "Error" not in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.user.name | upper }}")
    assert "no data yet" in html and 'role="alert"' not in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.a + }}")
    assert 'role="alert"' in html and "syntax error" in html and "no data yet" not in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.__class__.__mro__ }}")
    assert 'role="alert"' in html and "Not allowed" in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ 1 + 1 }}")
    assert "<code>2</code>" in html and 'role="alert"' not in html


def test_previews_with_real_data_are_red_when_they_fail(browser: Browser) -> None:
    wid, ids = build(browser)
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.missing.deeper }}")
    assert 'role="alert"' in html and "UndefinedError" in html and "no data yet" not in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.a + 1 }}")
    assert "<code>2</code>" in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.a + }}")
    assert 'role="alert"' in html and "syntax error" in html
