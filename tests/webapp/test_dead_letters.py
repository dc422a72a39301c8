"""Failed executions are dead letters: listed with error and input, retried from the failed node or the start."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from engine.models import Execution, NodeRun
from tests.webapp.conftest import Browser
from tests.webapp.test_runs import build_flow, run


async def _runs(db: Any, execution_id: int) -> list[NodeRun]:
    return list(await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)))


def _retried_ids(text: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/executions/(\d+)"', text)]


def test_failed_view_and_retry_from_the_failed_node(browser: Browser, sink_server: Any, db_call: Any) -> None:
    browser.register("dead@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/flaky/1/a")
    failed_id = run(browser, wid)
    assert browser.wait_for_execution(failed_id) == "failed"
    failed_page = browser.get("/executions/failed").text
    assert f'value="{failed_id}"' in failed_page and "returned HTTP 503" in failed_page

    response = browser.post("/executions/retry", {"ids": [str(failed_id)], "mode": "failed_node"})
    assert response.status_code == 200, response.text
    (retry_id,) = _retried_ids(response.text)
    assert browser.wait_for_execution(retry_id) == "succeeded"
    retry = db_call(lambda db: db.get(Execution, retry_id))
    assert retry.retry_of_id == failed_id and retry.trigger == "retry"
    assert len([r for r in sink_server.received if r["path"] == "/flaky/1/a"]) == 2, "only the failed node re-ran"
    runs = {r.node_id: r for r in db_call(lambda db: _runs(db, retry_id))}
    assert runs[ids["trigger"]].started_at == next(r for r in db_call(lambda db: _runs(db, failed_id))
                                                   if r.node_id == ids["trigger"]).started_at, "reused, not re-run"
    assert runs[ids["yes"]].status == "succeeded" and runs[ids["no"]].status == "skipped"


def test_bulk_retry_from_the_start_and_bad_requests(browser: Browser, second_browser: Browser, sink_server: Any,
                                                    db_call: Any) -> None:
    browser.register("bulk@example.com")
    wid, ids = build_flow(browser, f"{sink_server.url}/fail")
    first, second = run(browser, wid), run(browser, wid)
    assert browser.wait_for_execution(first) == browser.wait_for_execution(second) == "failed"
    response = browser.post("/executions/retry", {"ids": [str(first), str(second)], "mode": "start"})
    retried = _retried_ids(response.text)
    assert len(retried) == 2
    for execution_id in retried:
        assert browser.wait_for_execution(execution_id) == "failed"  # /fail still fails, but everything re-ran
        assert {r.node_id for r in db_call(lambda db, e=execution_id: _runs(db, e))} >= {ids["trigger"], ids["http"]}

    ok_wid, _ = build_flow(browser, f"{sink_server.url}/ok")
    succeeded = run(browser, ok_wid)
    assert browser.wait_for_execution(succeeded) == "succeeded"
    refused = browser.post("/executions/retry", {"ids": [str(first), str(succeeded)], "mode": "start"})
    assert refused.status_code == 422 and f"#{succeeded} is succeeded" in refused.text
    assert browser.post("/executions/retry", {"mode": "start"}).status_code == 422
    assert browser.post("/executions/retry", {"ids": [str(first)], "mode": "sideways"}).status_code == 422
    second_browser.register("other@example.com")
    assert second_browser.post("/executions/retry", {"ids": [str(first)], "mode": "start"}).status_code == 404
    assert "bulk@example.com" not in second_browser.get("/executions/failed").text
    assert f'value="{first}"' not in second_browser.get("/executions/failed").text
