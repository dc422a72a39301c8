"""Running from the editor: commit, enqueue, the in-process worker runs it, results are rows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Execution, NodeRun
from tests.webapp.conftest import LOOPBACK, Browser


def build_flow(browser: Browser, url: str) -> tuple[int, dict[str, str]]:
    wid = browser.create_workflow("Live")
    ids = {
        "trigger": browser.add_node(wid, "manual_trigger"),
        "http": browser.add_node(wid, "http_request"),
        "if": browser.add_node(wid, "if"),
        "yes": browser.add_node(wid, "set"),
        "no": browser.add_node(wid, "set"),
    }
    assert browser.configure(wid, ids["http"], {"name": "Fetch", "url": url, "fail_on_error_status": "on"}).status_code == 200
    condition = '[{"field": "body.ok", "type": "boolean", "operator": "is_true"}]'
    assert browser.configure(wid, ids["if"], {"name": "Ok?", "combine": "and",
                                              "conditions": condition}).status_code == 200
    assert browser.configure(wid, ids["yes"], {"name": "Shout", "fields.name": ["loud"],
                                               "fields.value": ["{{ item.body.greeting | upper }}"],
                                               "keep_existing": "on"}).status_code == 200
    assert browser.configure(wid, ids["no"], {"name": "Sad", "fields.name": ["sad"], "fields.value": ["yes"]}).status_code == 200
    for source, target, port in [("trigger", "http", "main"), ("http", "if", "main"), ("if", "yes", "true"),
                                 ("if", "no", "false")]:
        assert browser.connect(wid, ids[source], ids[target], source_port=port).status_code == 201
    return wid, ids


def run(browser: Browser, wid: int) -> int:
    response = browser.post(f"/workflows/{wid}/run")
    assert response.status_code == 200, response.text
    assert "hx-ws:connect" in response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1))


def test_run_executes_the_graph_and_records_each_node(browser: Browser, sink_server: Any, db_call: Any) -> None:
    browser.register("runner@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/ok")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    runs = {r.node_id: r for r in db_call(lambda db: _all_runs(db, execution_id))}
    assert {ids[k]: runs[ids[k]].status for k in ids} == {
        ids["trigger"]: "succeeded", ids["http"]: "succeeded", ids["if"]: "succeeded", ids["yes"]: "succeeded",
        ids["no"]: "skipped"}
    assert runs[ids["yes"]].output["main"][0]["loud"] == "HELLO FROM THE SINK"
    assert sink_server.received[0]["headers"]["Idempotency-Key"] == f"{execution_id}:{ids['http']}"
    page = browser.get(f"/executions/{execution_id}").text
    assert "hello from the sink" in page and "HELLO FROM THE SINK" in page
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.output == {"Shout": [runs[ids["yes"]].output["main"][0]]}
    assert execution.version_id is not None


async def _all_runs(db: Any, execution_id: int) -> list[NodeRun]:
    return list(await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)))


def test_http_500_fails_the_node_with_a_clear_error(browser: Browser, sink_server: Any, db_call: Any) -> None:
    browser.register("fail@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/fail")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "failed"
    page = browser.get(f"/executions/{execution_id}").text
    assert "returned HTTP 500" in page
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.error["node_id"] == ids["http"] and execution.error["data"]["status"] == 500


def test_http_timeout_fails_the_node_with_a_clear_error(browser: Browser, sink_server: Any) -> None:
    browser.register("slow@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/slow")
    browser.configure(wid, ids["http"], {"name": "Fetch", "url": f"{sink_server.url}/slow", "timeout": "0.5", "fail_on_error_status": "on"})
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "failed"
    assert "timed out after 0.5 s" in browser.get(f"/executions/{execution_id}").text


def test_invalid_graph_is_refused_with_problems_and_marked_nodes(browser: Browser, db_call: Any) -> None:
    browser.register("invalid@example.com")
    wid = browser.create_workflow()
    http = browser.add_node(wid, "http_request")  # no URL, and no trigger
    response = browser.post(f"/workflows/{wid}/run")
    assert response.status_code == 422
    assert "needs a trigger" in response.text and "This field is required" in response.text
    assert f'id="status-{http}" data-status="invalid"' in response.text
    assert db_call(lambda db: db.scalar(select(Execution.id))) is None


def test_settings_tab_retries_a_flaky_api_with_each_attempt_visible(browser: Browser, sink_server: Any,
                                                                    db_call: Any) -> None:
    browser.register("retry@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/flaky/2/x")
    bad = browser.configure(wid, ids["http"], {"name": "Fetch", "url": f"{sink_server.url}/flaky/2/x",
                                               "settings.present": "1", "settings.retry.max_attempts": "0"})
    assert bad.status_code == 422 and "Expected int &gt;= 1" in bad.text
    saved = browser.configure(wid, ids["http"], {
        "name": "Fetch", "url": f"{sink_server.url}/flaky/2/x", "fail_on_error_status": "on",
        "settings.present": "1", "settings.retry.max_attempts": "3", "settings.retry.initial_delay": "0.05",
        "settings.retry.retry_on": ["5xx", "network"], "settings.on_error": "stop"})
    assert saved.status_code == 200, saved.text
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    attempts = sorted((r.attempt, r.status) for r in db_call(lambda db: _all_runs(db, execution_id))
                      if r.node_id == ids["http"])
    assert attempts == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert len({r["headers"]["Idempotency-Key"] for r in sink_server.received}) == 1, "one key for all attempts"
    page = browser.get(f"/executions/{execution_id}").text
    assert "returned HTTP 503" in page


def test_retry_after_is_honoured(browser: Browser, sink_server: Any) -> None:
    browser.register("limited@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/limited/a")
    browser.configure(wid, ids["http"], {
        "name": "Fetch", "url": f"{sink_server.url}/limited/a", "fail_on_error_status": "on",
        "settings.present": "1", "settings.retry.max_attempts": "2", "settings.retry.initial_delay": "0",
        "settings.retry.retry_on": ["429"]})
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    first, second = (r for r in sink_server.received if r["path"] == "/limited/a")
    assert second["at"] - first["at"] >= 0.9


def test_error_output_setting_adds_a_port_that_can_be_connected(browser: Browser) -> None:
    browser.register("errport@example.com")
    wid = browser.create_workflow()
    http = browser.add_node(wid, "http_request")
    handler = browser.add_node(wid, "set")
    assert browser.connect(wid, http, handler, source_port="error").status_code == 422
    saved = browser.configure(wid, http, {"name": "Fetch", "url": "https://x.example", "settings.present": "1",
                                          "settings.on_error": "error_output"})
    assert '"outputs": ["main", "error"]' in saved.headers["hx-trigger"]
    assert browser.connect(wid, http, handler, source_port="error").status_code == 201
    back = browser.configure(wid, http, {"name": "Fetch", "url": "https://x.example", "settings.present": "1",
                                         "settings.on_error": "stop"})
    assert back.status_code == 422 and "error output first" in back.text


@pytest.fixture
def app_factory(database_url: str, tmp_path: Any) -> Any:
    """These web tests run with a short inline wait, so a 1.5 s Wait suspends the execution."""
    from engine.settings import load_settings
    from webapp.app import create_app

    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", "PATCHWIRE_INLINE_WAIT": "0.2",
           "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}
    return lambda: create_app(load_settings(env))


def test_a_long_wait_frees_the_worker_and_a_scheduled_job_continues(browser: Browser, db_call: Any) -> None:
    browser.register("waits@example.com")
    wid = browser.create_workflow("Patient")
    trigger = browser.add_node(wid, "manual_trigger")
    wait = browser.add_node(wid, "wait")
    done = browser.add_node(wid, "set")
    browser.configure(wid, wait, {"name": "Pause", "mode": "duration", "seconds": "1.5"})
    browser.configure(wid, done, {"name": "Done", "fields.name": ["done"], "fields.value": ["yes"]})
    browser.connect(wid, trigger, wait)
    browser.connect(wid, wait, done)
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id, timeout=30) == "succeeded"
    events = db_call(lambda db: _event_types(db, execution_id))
    assert "node.waiting" in events and "workflow.waiting" in events
    assert events.count("workflow.started") == 2, "a second job continued the run"
    assert events[-1] == "workflow.finished"
    runs = [r for r in db_call(lambda db: _all_runs(db, execution_id)) if r.node_id == wait]
    assert [(r.attempt, r.status) for r in runs] == [(1, "succeeded")]


async def _event_types(db: Any, execution_id: int) -> list[str]:
    from engine.models import ExecutionEvent

    rows = await db.scalars(select(ExecutionEvent.data).where(ExecutionEvent.execution_id == execution_id)
                            .order_by(ExecutionEvent.seq))
    return [row["type"] for row in rows]
