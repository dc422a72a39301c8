"""Test while building: run up to / run one node, pinned data, a node's data tree, expression previews —
through the web app, its in-process worker and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from engine.expressions.budget import DEFAULT_BUDGET
from engine.models import Execution, Node, NodeRun, Workflow, WorkflowVersion
from engine.testruns import MAX_PINNED_BYTES
from nodes import registry
from tests.webapp.conftest import Browser
from webapp.executions.services import start


def build(browser: Browser, email: str = "tester@example.com") -> tuple[int, dict[str, str]]:
    """Trigger → A (a = 1) → B (b = a + 1) → C (c = b * 10)."""
    browser.register(email)
    wid = browser.create_workflow("Testing")
    ids = {"t": browser.add_node(wid, "manual_trigger"), "a": browser.add_node(wid, "set"),
           "b": browser.add_node(wid, "set"), "c": browser.add_node(wid, "set")}
    for key, name, field, value in [("a", "A", "a", "{{ 1 }}"), ("b", "B", "b", "{{ item.a + 1 }}"),
                                    ("c", "C", "c", "{{ item.b * 10 }}")]:
        response = browser.configure(wid, ids[key], {"name": name, "fields.name": [field], "fields.value": [value],
                                                      "keep_existing": "on"})
        assert response.status_code == 200, response.text
    for source, target in [("t", "a"), ("a", "b"), ("b", "c")]:
        assert browser.connect(wid, ids[source], ids[target]).status_code == 201
    return wid, ids


def started(response: Any) -> int:
    assert response.status_code == 200, response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1))


def runs_of(db_call: Any, execution_id: int) -> dict[str, NodeRun]:
    async def read(db: Any) -> dict[str, NodeRun]:
        return {r.node_id: r for r in await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id))}
    return db_call(read)


def badge(html: str, node_id: str) -> str:
    return re.search(rf'id="status-{node_id}" data-status="(\w+)"', html).group(1)


def test_run_up_to_runs_the_node_and_its_ancestors_only(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    response = browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to")
    execution_id = started(response)
    assert "Test run up to “B”" in response.text
    assert [badge(response.text, ids[k]) for k in "tabc"] == ["queued", "queued", "queued", "idle"]
    assert browser.wait_for_execution(execution_id) == "succeeded"
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.trigger == "manual" and sorted(execution.scope) == sorted([ids["t"], ids["a"], ids["b"]])
    runs = runs_of(db_call, execution_id)
    assert set(runs) == {ids["t"], ids["a"], ids["b"]}  # C: no row at all, not "skipped"
    assert runs[ids["b"]].output == {"main": [{"a": 1, "b": 2}]}
    assert execution.output == {"B": [{"a": 1, "b": 2}]}


def test_run_this_node_feeds_it_the_last_outputs_and_runs_nothing_else(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    first = started(browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to"))
    assert browser.wait_for_execution(first) == "succeeded"
    response = browser.post(f"/workflows/{wid}/nodes/{ids['c']}/run-node")
    execution_id = started(response)
    assert "Test run of “C” alone" in response.text
    assert badge(response.text, ids["b"]) == "succeeded" and badge(response.text, ids["c"]) == "queued"
    assert browser.wait_for_execution(execution_id) == "succeeded"
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.scope == [ids["c"]]
    runs = runs_of(db_call, execution_id)
    assert runs[ids["c"]].input == [{"a": 1, "b": 2}]
    assert runs[ids["c"]].output == {"main": [{"a": 1, "b": 2, "c": 20}]}
    assert runs[ids["c"]].started_at < runs[ids["c"]].finished_at
    # the upstream outputs were copied from the first execution, not computed again
    assert runs[ids["b"]].output == runs_of(db_call, first)[ids["b"]].output


def test_run_this_node_refuses_when_an_upstream_node_has_no_data(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    response = browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-node")
    assert response.status_code == 422
    assert "“A” has neither pinned data nor an output from an earlier run" in response.text
    assert badge(response.text, ids["a"]) == "invalid"
    assert db_call(lambda db: db.scalar(select(func.count()).select_from(Execution))) == 0  # nothing kept
    api = browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-node", htmx=False, headers={"accept": "application/json"})
    assert api.status_code == 422 and "“A” has neither pinned data" in api.json()["detail"]


def test_run_up_to_refuses_a_draft_that_cannot_run(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    browser.add_node(wid, "http_request")  # no URL, input not connected
    response = browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to")
    assert response.status_code == 422
    assert "Can’t run this workflow yet" in response.text and "url: This field is required." in response.text
    assert db_call(lambda db: db.scalar(select(func.count()).select_from(Execution))) == 0


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "Pinned data is not valid JSON"),
    ('[{"a": 1}]', "Pinned data must be an object mapping output names to lists of items"),
    ('{"true": [{}]}', "“true” is not an output of this node (its outputs: main)"),
    ('{"main": [1, 2]}', "Output “main”, item 1 must be a JSON object, not int"),
    ('{"main": "x"}', "Output “main” must be a list of items"),
    ('{"main": [{"s": "' + "x" * MAX_PINNED_BYTES + '"}]}', "at most 1,048,576 bytes (1 MiB) are allowed"),
])
def test_bad_pinned_data_is_refused_with_a_precise_422(browser: Browser, db_call: Any, data: str, message: str) -> None:
    wid, ids = build(browser)
    response = browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": data})
    assert response.status_code == 422
    assert message in response.text.replace("&#34;", '"').replace("&quot;", '"')
    assert db_call(lambda db: db.get(Node, ids["a"])).pinned_output is None


def test_pin_without_data_needs_a_previous_output(browser: Browser) -> None:
    wid, ids = build(browser)
    response = browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": ""})
    assert response.status_code == 422 and "“A” has no output from an earlier run to pin" in response.text


def test_pinning_is_a_versioned_node_write_outside_the_versioned_graph(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    node = db_call(lambda db: db.get(Node, ids["a"]))
    revision = db_call(lambda db: db.scalar(select(Workflow.draft_revision).where(Workflow.id == wid)))
    response = browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin",
                            {"data": '{"main": [{"a": 5}]}', "version": str(node.version)})
    assert response.status_code == 200, response.text
    assert int(response.headers["x-node-version"]) == node.version + 1
    assert f'id="pin-{ids["a"]}" hx-swap-oob="true"' in response.text
    assert 'aria-label="Output pinned' in response.text
    assert db_call(lambda db: db.get(Node, ids["a"])).pinned_output == {"main": [{"a": 5}]}
    assert db_call(lambda db: db.scalar(select(Workflow.draft_revision).where(Workflow.id == wid))) == revision + 1
    # a tab that did not see the pin is refused
    stale = browser.post(f"/workflows/{wid}/nodes/{ids['a']}/unpin", {"version": str(node.version)})
    assert stale.status_code == 409
    # the pin is not in the version snapshot, nor in the export
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    version = db_call(lambda db: db.scalar(select(WorkflowVersion).order_by(WorkflowVersion.id.desc()).limit(1)))
    assert "pinned" not in str(version.graph) and "pinned" not in browser.get(f"/workflows/{wid}/export").text
    unpinned = browser.post(f"/workflows/{wid}/nodes/{ids['a']}/unpin", {"version": str(node.version + 1)})
    assert unpinned.status_code == 200 and db_call(lambda db: db.get(Node, ids["a"])).pinned_output is None
    assert 'aria-label="Not pinned"' in unpinned.text


def test_editor_runs_use_pinned_data_and_production_triggers_do_not(browser: Browser, client: Any,
                                                                    db_call: Any) -> None:
    wid, ids = build(browser)
    assert browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": '{"main": [{"a": 41}]}'}).status_code == 200
    # run up to C: A is given by its pin; the trigger, which only A needs, does not run
    response = browser.post(f"/workflows/{wid}/nodes/{ids['c']}/run-up-to")
    execution_id = started(response)
    assert "pinned" in response.text and badge(response.text, ids["t"]) == "idle"
    assert browser.wait_for_execution(execution_id) == "succeeded"
    runs = runs_of(db_call, execution_id)
    assert set(runs) == {ids["a"], ids["b"], ids["c"]}
    assert runs[ids["c"]].output == {"main": [{"a": 41, "b": 42, "c": 420}]}
    # the editor's Run button too
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    assert runs_of(db_call, execution_id)[ids["c"]].output == {"main": [{"a": 41, "b": 42, "c": 420}]}
    # a production trigger (here the CLI's path) runs the node itself
    async def start_cli(db: Any) -> int:
        workflow = await db.get(Workflow, wid)
        execution = await start(db, client.app.state.runtime.queue, registry, workflow, trigger="cli")
        return execution.id
    execution_id = db_call(start_cli)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.scope is None
    assert runs_of(db_call, execution_id)[ids["c"]].output == {"main": [{"a": 1, "b": 2, "c": 20}]}


def test_node_data_shows_the_last_run_as_an_escaped_tree(browser: Browser) -> None:
    wid, ids = build(browser)
    assert "No run data yet" in browser.get(f"/workflows/{wid}/nodes/{ids['a']}/data").text
    browser.configure(wid, ids["a"], {"name": "A", "fields.name": ["html"],
                                      "fields.value": ["<script>alert(1)</script>"], "keep_existing": "on"})
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{ids['a']}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    html = browser.get(f"/workflows/{wid}/nodes/{ids['a']}/data?view=json").text
    assert "<script>alert" not in html
    assert "&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in html or "&quot;&lt;script&gt;" in html
    assert 'class="json-tree"' in html and 'class="data-block last-output"' in html and f"#{execution_id}" in html


def test_large_payloads_are_truncated_with_a_note(browser: Browser) -> None:
    wid, ids = build(browser)
    items = ", ".join(f'{{"n": {i}, "text": "{"y" * 20}"}}' for i in range(300))
    assert browser.post(f"/workflows/{wid}/nodes/{ids['a']}/pin", {"data": f'{{"main": [{items}]}}'}).status_code == 200
    html = browser.get(f"/workflows/{wid}/nodes/{ids['a']}/data?view=json").text
    assert "Pinned output" in html and "… 200 more not shown" in html and "parts are not shown (truncated)" in html


def preview(browser: Browser, wid: int, node_id: str, field: str, text: str) -> str:
    response = browser.get(f"/workflows/{wid}/nodes/{node_id}/preview", params={"_field": field, field: text})
    assert response.status_code == 200, response.text
    return response.text


def test_expression_preview_evaluates_against_the_last_input(browser: Browser) -> None:
    wid, ids = build(browser)
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.a + 1 }}")
    assert "no data yet" in html and 'role="alert"' not in html  # quiet before data: test_expression_editor.py
    execution_id = started(browser.post(f"/workflows/{wid}/nodes/{ids['b']}/run-up-to"))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    html = preview(browser, wid, ids["b"], "fields.value", "total: {{ item.a + 1 }} of {{ nodes['A'][0].a }}")
    assert '<mark class="expr">{{ item.a + 1 }}</mark>' in html and "<code>total: 2 of 1</code>" in html
    assert f"execution #{execution_id}" in html
    html = preview(browser, wid, ids["b"], "fields.value", "{{ item.missing.deeper }}")
    assert 'role="alert"' in html
    assert "Error in “B”, field “fields.value”, expression {{ item.missing.deeper }}: UndefinedError" in html
    assert "Not allowed" in preview(browser, wid, ids["b"], "fields.value", "{{ item.__class__.__mro__ }}")
    assert preview(browser, wid, ids["b"], "fields.value", "plain text").strip() == ""
    escaped = preview(browser, wid, ids["b"], "fields.value", "{{ '<b>x</b>' }}")
    assert "<b>x</b>" not in escaped and "&lt;b&gt;x&lt;/b&gt;" in escaped


def test_another_owner_gets_404_for_every_testing_endpoint(browser: Browser, second_browser: Browser) -> None:
    wid, ids = build(browser)
    second_browser.register("intruder@example.com")
    base = f"/workflows/{wid}/nodes/{ids['b']}"
    for method, url, data in [("post", f"{base}/run-up-to", None), ("post", f"{base}/run-node", None),
                              ("post", f"{base}/pin", {"data": '{"main": []}'}), ("post", f"{base}/unpin", None),
                              ("get", f"{base}/data", None), ("get", f"{base}/preview?_field=x&x=%7B%7B1%7D%7D", None),
                              ("post", f"{base}/pin", {"data": '{"main": []}', "version": "1"})]:
        response = getattr(second_browser, method)(url, **({"data": data} if data is not None else {}))
        assert response.status_code == 404, f"{method.upper()} {url} gave {response.status_code}"
    assert browser.get(f"/workflows/{wid}/nodes/{'0' * 32}/data").status_code == 404


def test_a_retry_of_a_test_run_keeps_its_scope_and_its_given_nodes(browser: Browser, db_call: Any) -> None:
    wid, ids = build(browser)
    assert browser.configure(wid, ids["c"], {"name": "C", "fields.name": ["c"], "fields.value": ["{{ item.nope.x }}"],
                                             "keep_existing": "on"}).status_code == 200
    assert browser.post(f"/workflows/{wid}/nodes/{ids['b']}/pin", {"data": '{"main": [{"b": 3}]}'}).status_code == 200
    failed = started(browser.post(f"/workflows/{wid}/nodes/{ids['c']}/run-node"))
    assert browser.wait_for_execution(failed) == "failed"
    response = browser.post("/executions/retry", {"ids": str(failed), "mode": "start"})
    assert response.status_code == 200, response.text
    retry_id = int(re.findall(r"/executions/(\d+)", response.text)[-1])
    assert browser.wait_for_execution(retry_id) == "failed"
    retry = db_call(lambda db: db.get(Execution, retry_id))
    assert retry.retry_of_id == failed and retry.scope == [ids["c"]]
    runs = runs_of(db_call, retry_id)
    assert set(runs) == {ids["b"], ids["c"]}  # B given again, C ran (and failed) on it; nothing else ran
    assert runs[ids["c"]].input == [{"b": 3}] and runs[ids["c"]].status == "failed"


def test_expression_preview_refuses_what_exceeds_the_budget_with_a_clear_message(browser: Browser) -> None:
    """The preview gets the engine's budget: a hostile expression answers an error partial naming the
    limit, quickly, and the web app keeps answering."""
    wid, ids = build(browser)
    for source, limit in [("{{ (9**999)**999 }}", "power result too large (over 10,000 bits)"),
                          ("{{ 'x' | center(10**8) }}", "padding width too large (limit 100,000)"),
                          ("{{ '%100000000d' % 1 }}", "format width too large (limit 100,000)")]:
        started = time.monotonic()
        html = preview(browser, wid, ids["b"], "fields.value", source)
        assert time.monotonic() - started < 5.0
        assert 'role="alert"' in html and f"expression exceeded its budget: {limit}" in html, html
    assert browser.get("/healthz").status_code == 200


SLOW = "{% for i in range(24000) %}{% set x = 'abc'.upper().lower().title() %}{% endfor %}{{ 'done' }}"
"""Within the budget (about 96,000 of its 100,000 steps, far below its 5 s), and about 0.6 s here: many
times the 0.05 s limit the next test gives the preview."""


def test_expression_preview_stops_at_its_own_time_limit(app_factory: Callable[..., Any]) -> None:
    """An expression the budget allows but that runs longer than the preview's limit answers the preview's
    timeout message; without the limit, it would answer ``done``."""
    with TestClient(app=app_factory(preview_seconds=0.05)) as client:
        browser = Browser(client)
        wid, ids = build(browser)
        started = time.monotonic()
        html = preview(browser, wid, ids["b"], "fields.value", SLOW)
        assert time.monotonic() - started < DEFAULT_BUDGET.max_seconds
        assert 'role="alert"' in html and "the preview took longer than its limit of 0.05 s" in html, html
        assert browser.get("/healthz").status_code == 200
