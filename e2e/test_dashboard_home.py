"""The home dashboard and the workflow overview in a real browser, on both server profiles.

The home page stays open while executions are started from the command line (``patchwire run``, a
process of its own, as a script or a cron job would): its counts, the worker's load and the recent
failures change without a reload. Then the workflow's overview draws its charts with the numbers of
those executions, and its range switch redraws them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import register
from test_editor_keyboard import axe_violations

if TYPE_CHECKING:
    from conftest import PageErrors, Server, Sink

pytestmark = pytest.mark.e2e

PATCHWIRE = Path(sys.executable).with_name("patchwire")
LIVE_TIMEOUT = 20_000  # ms: the page polls every 2 s, a worker reports its load every 10 s
CLI_TIMEOUT = 60  # s


def workflow_file(tmp_path: Path, name: str, second: dict[str, Any]) -> Path:
    """A two-node workflow: a manual trigger, then ``second``."""
    document = {"format": "patchwire.workflow", "format_version": 1, "name": name, "nodes": [
        {"id": "start", "type": "manual_trigger", "version": 1, "name": "Start", "config": {},
         "position": {"x": 40, "y": 120}},
        {"id": "second", "version": 1, "position": {"x": 280, "y": 120}, **second}],
        "connections": [{"source": "start", "target": "second", "source_port": "main", "target_port": "main"}]}
    path = tmp_path / f"{name.lower().replace(' ', '-')}.json"
    path.write_text(json.dumps(document))
    return path


def cli(server: Server, tmp_path: Path, *args: str) -> dict[str, Any]:
    """One ``patchwire`` command against the server's database and queue; its JSON answer."""
    done = subprocess.run([str(PATCHWIRE), *args], env=server.env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"patchwire {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_all(server: Server, tmp_path: Path, workflow_id: int, email: str, inputs: list[dict[str, Any]]) -> list[int]:
    """Start one execution per input at once (separate processes); their ids, in the order of ``inputs``."""
    procs = [subprocess.Popen([str(PATCHWIRE), "run", str(workflow_id), "--owner", email, "--input", json.dumps(i)],
                              env=server.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, stdin=subprocess.DEVNULL) for i in inputs]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        assert proc.returncode == 0, f"patchwire run failed:\n{out}\n{err}"
        ids.append(json.loads(out.strip().splitlines()[-1])["execution_id"])
    return ids


def count(page: Page, name: str) -> Any:
    return page.locator(f"#count-{name}")


def chart(page: Page, canvas_id: str) -> dict[str, Any]:
    """What Chart.js holds for one canvas: labels, datasets' data, points drawn."""
    return page.evaluate("""(id) => {
        const c = Chart.getChart(id);
        return {type: c.config.type, labels: c.data.labels, data: c.data.datasets.map((d) => d.data),
                points: c.getDatasetMeta(0).data.length, width: c.canvas.width, height: c.canvas.height};
    }""", canvas_id)


def test_home_updates_live_and_the_overview_draws_the_charts(page: Page, server: Server, fresh_sink: Sink,
                                                              tmp_path: Path, page_errors: PageErrors) -> None:
    register(page, server.url, "home")
    email = page.locator(".logout .muted").inner_text().strip()
    divide = cli(server, tmp_path, "import", str(workflow_file(tmp_path, "Divide", {
        "type": "set", "name": "Divide",
        "config": {"fields": [{"name": "q", "value": "{{ 10 // item.n }}"}], "keep_existing": True}})),
        "--owner", email)["workflow_id"]
    slow = cli(server, tmp_path, "import", str(workflow_file(tmp_path, "Slow call", {
        "type": "http_request", "name": "Call", "config": {"url": f"{fresh_sink.url}/slow", "method": "GET"}})),
        "--owner", email)["workflow_id"]

    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    expect(page.get_by_role("link", name="Workflows").first).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    for name in ("running", "queued", "waiting", "failed-24h"):
        expect(count(page, name)).to_have_text("0")
    expect(page.locator("#workers-online")).not_to_have_text("0", timeout=LIVE_TIMEOUT)
    assert not axe_violations(page)

    fresh_sink.hold()  # the slow call's request waits: its execution stays running
    cli(server, tmp_path, "run", str(slow), "--owner", email)
    expect(count(page, "running")).to_have_text("1", timeout=LIVE_TIMEOUT)
    expect(page.locator("#workers-table")).to_contain_text("1 / 4 busy", timeout=LIVE_TIMEOUT)

    failed_first, succeeded, failed_second = run_all(server, tmp_path, divide, email,
                                                     [{"n": 0}, {"n": 2}, {"n": 0}])
    expect(count(page, "failed-24h")).to_have_text("2", timeout=LIVE_TIMEOUT)
    failures = page.locator("#recent-failures")
    for execution_id in (failed_first, failed_second):
        expect(failures.locator(f'a[href="/executions/{execution_id}"]')).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(failures.locator(f'a[href="/executions/{succeeded}"]')).to_have_count(0)
    expect(failures).to_contain_text("ZeroDivisionError")

    fresh_sink.release()
    expect(count(page, "running")).to_have_text("0", timeout=LIVE_TIMEOUT)
    assert page.evaluate("window.__sameDocument === true"), "the home page reloaded"

    failures.locator(f'a[href="/executions/{failed_second}"]').click()
    expect(page.locator("#execution-status")).to_have_text("failed")

    page.goto(f"{server.url}/workflows/{divide}/overview")
    expect(page.locator("#overview")).to_have_attribute("data-charts", "drawn")
    expect(page.locator("#stat-executions")).to_have_text("3")
    expect(page.locator("#stat-success-rate")).to_have_text("33.3 %")
    expect(page.locator("#stat-failure-rate")).to_have_text("66.7 %")
    hourly = chart(page, "chart-hourly")
    assert hourly["type"] == "bar" and len(hourly["labels"]) == 24 and hourly["points"] == 24
    assert [sum(values) for values in hourly["data"]] == [1, 2, 0, 0]  # succeeded, failed, cancelled, unfinished
    assert hourly["width"] > 0 and hourly["height"] > 0
    assert chart(page, "chart-outcomes")["data"] == [[1, 2, 0, 0]]
    errors = chart(page, "chart-errors")
    assert errors["labels"] == [["Divide: ExpressionError", "ZeroDivisionError: integer division or…"]]
    assert errors["data"] == [[2]]
    durations = chart(page, "chart-durations")
    # the hour of the three ended executions (two, should they straddle an hour's end) has a p50 and a p95
    assert 1 <= sum(1 for value in durations["data"][0] if value is not None) <= 2
    row = page.locator("#top-errors tbody tr").first
    expect(row.locator(".error-count")).to_have_text("2")
    newest = max(failed_first, failed_second)  # the runs started at once: either may have the higher id
    expect(row.locator(f'a[href="/executions/{newest}"]')).to_be_visible()
    assert not axe_violations(page)

    page.evaluate("window.__sameDocument = true")
    page.get_by_role("link", name="Last week").click()
    expect(page.locator("#overview")).to_have_attribute("data-range", "week")
    expect(page).to_have_url(re.compile(r"/overview\?range=week$"))
    expect(page.locator("#overview")).to_have_attribute("data-charts", "drawn")
    week = chart(page, "chart-hourly")
    assert len(week["labels"]) == 168 and [sum(values) for values in week["data"]] == [1, 2, 0, 0]
    assert page.evaluate("window.__sameDocument === true"), "the range switch reloaded the page"

    page.go_back()  # htmx restores the previous range: the whole page, its charts drawn again
    expect(page.locator("#overview")).to_have_attribute("data-range", "day")
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.locator("#overview")).to_have_attribute("data-charts", "drawn")
    assert len(chart(page, "chart-hourly")["labels"]) == 24
    assert not page_errors.page_errors, page_errors.page_errors
    assert not page_errors.console_errors, page_errors.console_errors  # CSP violations would show here
