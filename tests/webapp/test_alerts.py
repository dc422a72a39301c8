"""Error workflows and the circuit breaker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from engine.errors import WorkflowPaused
from engine.executions import create_execution
from engine.models import Execution, Workflow
from nodes import registry
from tests.webapp.conftest import Browser
from tests.webapp.test_runs import run


def failing_workflow(browser: Browser, url: str) -> int:
    wid = browser.create_workflow("Fragile")
    trigger = browser.add_node(wid, "manual_trigger")
    http = browser.add_node(wid, "http_request")
    browser.configure(wid, http, {"name": "Call", "url": url, "fail_on_error_status": "on"})
    browser.connect(wid, trigger, http)
    return wid


def handler_workflow(browser: Browser) -> int:
    wid = browser.create_workflow("On failure")
    trigger = browser.add_node(wid, "manual_trigger")
    note = browser.add_node(wid, "set")
    browser.configure(wid, note, {"name": "Note", "fields.name": ["alert"],
                                  "fields.value": ["{{ item.failed_node }}: {{ item.error }}"], "keep_existing": "on"})
    browser.connect(wid, trigger, note)
    return wid


def wait_for(db_call: Any, query: Any, predicate: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = db_call(query)
        if predicate(found):
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def _error_runs(db: Any) -> list[Execution]:
    return list(await db.scalars(select(Execution).where(Execution.trigger == "error_workflow").order_by(Execution.id)))


def test_error_workflow_runs_with_the_failure_and_the_breaker_pauses(browser: Browser, sink_server: Any,
                                                                     db_call: Any) -> None:
    browser.register("alerts@example.com")
    handler = handler_workflow(browser)
    fragile = failing_workflow(browser, f"{sink_server.url}/fail")
    saved = browser.post(f"/workflows/{fragile}/settings", {
        "error_workflow_id": str(handler), "breaker.enabled": "on", "breaker.failure_ratio": "0.5",
        "breaker.min_executions": "2", "breaker.window_seconds": "300", "breaker.cooldown_seconds": "600"})
    assert saved.status_code == 200 and "Saved." in saved.text

    first = run(browser, fragile)
    assert browser.wait_for_execution(first) == "failed"
    second = run(browser, fragile)
    assert browser.wait_for_execution(second) == "failed"
    runs = wait_for(db_call, _error_runs, lambda rows: len(rows) == 2 and all(r.status == "succeeded" for r in rows))
    assert runs[0].input["execution_id"] == first and runs[0].input["failed_node"] == "Call"
    assert "returned HTTP 500" in runs[0].input["error"] and runs[0].input["url"] == f"/executions/{first}"
    assert runs[0].input["circuit_opened"] is False and runs[1].input["circuit_opened"] is True
    assert runs[1].output["Note"][0]["alert"].startswith("Call: POST") or "Call:" in runs[1].output["Note"][0]["alert"]

    paused = db_call(lambda db: db.get(Workflow, fragile))
    assert paused.paused_until is not None
    assert "Paused by the circuit breaker" in browser.get(f"/workflows/{fragile}").text

    async def automatic(db: Any) -> None:
        await create_execution(db, await db.get(Workflow, fragile), registry, trigger="webhook")

    with pytest.raises(WorkflowPaused):
        db_call(automatic)
    assert browser.wait_for_execution(run(browser, fragile)) == "failed", "a person may still run it by hand"
    resumed = browser.post(f"/workflows/{fragile}/resume")
    assert resumed.status_code == 200
    assert db_call(lambda db: db.get(Workflow, fragile)).paused_until is None


def test_bad_workflow_settings_are_refused(browser: Browser, second_browser: Browser) -> None:
    browser.register("wfsettings@example.com")
    wid = browser.create_workflow("Mine")
    bad = browser.post(f"/workflows/{wid}/settings", {"breaker.failure_ratio": "2", "breaker.enabled": "on"})
    assert bad.status_code == 422 and "Expected float &lt;= 1" in bad.text
    itself = browser.post(f"/workflows/{wid}/settings", {"error_workflow_id": str(wid)})
    assert itself.status_code == 422 and "its own error workflow" in itself.text
    second_browser.register("stranger@example.com")
    theirs = second_browser.create_workflow("Theirs")
    assert browser.post(f"/workflows/{wid}/settings", {"error_workflow_id": str(theirs)}).status_code == 404
    assert second_browser.get(f"/workflows/{wid}/settings").status_code == 404
