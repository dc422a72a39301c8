"""The executions page, live: several executions (a quick one, a slow one, a failing one) started from
the command line and from the Run endpoint appear and change on the open page without a reload; then
the filter form (htmx swap) and the search on the trigger input narrow the table. Once per profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import register

if TYPE_CHECKING:
    from conftest import PageErrors, Server

PATCHWIRE = Path(sys.executable).with_name("patchwire")  # as in conftest.py (importing it by name is ambiguous)

pytestmark = pytest.mark.e2e
LIVE_TIMEOUT = 30_000  # ms: bound for each live change


def _document(name: str, second: dict[str, Any]) -> str:
    return json.dumps({
        "format": "patchwire.workflow", "format_version": 1, "name": name,
        "nodes": [{"id": "start", "type": "manual_trigger", "version": 1, "name": "Start", "config": {},
                   "position": {"x": 40, "y": 100}},
                  {"id": "second", "version": 1, "position": {"x": 300, "y": 100}, **second}],
        "connections": [{"source": "start", "target": "second", "source_port": "main", "target_port": "main"}]})


WORKFLOWS = {
    "Quick": {"type": "set", "name": "Stamp", "config": {"fields": [{"name": "done", "value": "yes"}]}},
    "Slow": {"type": "delay", "name": "Pause", "config": {"seconds": 6}},
    "Broken": {"type": "set", "name": "Divide", "config": {"fields": [{"name": "x", "value": "{{ 1 / 0 }}"}]}},
}


def _post(page: Page, base: str, path: str, form: dict[str, str], accept: str = "text/html") -> Any:
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    response = page.request.post(f"{base}{path}", form=form, headers={"x-csrftoken": token, "accept": accept})
    assert response.ok, response.text()
    return response


def _cli_run(server: Server, workflow_id: int, trigger_input: dict[str, Any]) -> int:
    """``patchwire run ID --input …`` in its own process, against the server's database and queue."""
    done = subprocess.run([str(PATCHWIRE), "run", str(workflow_id), "--input", json.dumps(trigger_input)],
                          env=server.env, capture_output=True, text=True, timeout=60, check=True)
    return int(json.loads(done.stdout)["execution_id"])


def test_the_executions_page_updates_live_then_filters_and_searches(server: Server, page: Page,
                                                                    page_errors: PageErrors) -> None:
    base = server.url
    register(page, base, "dash")
    ids = {name: _post(page, base, "/workflows/import", {"document": _document(name, spec)},
                       accept="application/json").json()["workflow_id"] for name, spec in WORKFLOWS.items()}
    page.goto(f"{base}/executions")
    expect(page.locator("#exec-empty")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    quick = _cli_run(server, ids["Quick"], {"order": "A-1001"})
    broken = _cli_run(server, ids["Broken"], {"order": "C-3003"})
    _post(page, base, f"/workflows/{ids['Quick']}/run", {})
    slow = _cli_run(server, ids["Slow"], {"order": "B-2002"})

    row = page.locator(f"#exec-{slow}")
    expect(row).to_have_attribute("data-status", "running", timeout=LIVE_TIMEOUT)
    expect(row).to_contain_text("Pause")  # the node running now
    expect(page.locator(f"#exec-{quick}")).to_have_attribute("data-status", "succeeded", timeout=LIVE_TIMEOUT)
    failed = page.locator(f"#exec-{broken}")
    expect(failed).to_have_attribute("data-status", "failed", timeout=LIVE_TIMEOUT)
    expect(failed.locator(".exec-failed")).to_have_text("Divide")
    expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE_TIMEOUT)
    expect(page.locator("#exec-rows tr.exec-row")).to_have_count(4)
    order = page.locator("#exec-rows tr.exec-row").evaluate_all("rows => rows.map(r => Number(r.id.slice(5)))")
    assert [i for i in order if i in (slow, quick, broken)] == sorted([slow, quick, broken], reverse=True)

    page.get_by_label("failed").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#exec-rows tr.exec-row")).to_have_count(1)
    expect(page.locator(f"#exec-{broken}")).to_be_visible()
    assert "status=failed" in page.url, "the filter is in the address bar"

    page.get_by_label("failed").uncheck()
    page.get_by_label("Input contains").fill("B-2002")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#exec-rows tr.exec-row")).to_have_count(1)
    expect(page.locator(f"#exec-{slow}")).to_be_visible()
    assert page.evaluate("window.__notReloaded === true"), "filtered in place, never reloaded"

    page.goto(f"{base}/executions?status=failed")
    page.locator(f"#exec-{broken} a[href='/executions/{broken}']").click()
    expect(page.locator("#execution-status")).to_have_text("failed")
    expect(page.locator(".alert-error")).to_contain_text("Divide")  # the execution's error (the node panel has its own)
    assert not page_errors.page_errors, page_errors.page_errors
