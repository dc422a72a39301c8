"""The execution page in a real browser, on both profiles: a workflow with a slow node (an HTTP
Request the sink holds) and a failing one (a node type that raises an unexpected exception, retried
once). Opened while it runs, the read-only canvas and the timeline follow the run without a reload;
then the failed node's error and traceback, an expanded JSON tree and the download of a truncated
payload.

The failing node type is ``tests/crash_node.py``: the server and the worker run through
``python -m tests.crash_node`` (the ``patchwire`` command with that type registered).
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register
from test_editor_testing import Api

if TYPE_CHECKING:
    from conftest import PageErrors, Server, Sink

pytestmark = pytest.mark.e2e
PATCHWIRE_COMMAND = [sys.executable, "-m", "tests.crash_node"]
RUN_TIMEOUT = 30_000


def build(page: Page, base: str, sink_url: str) -> tuple[int, dict[str, str]]:
    """Start → Big (a 5,000-character field) → Slow (HTTP Request) → Boom (fails twice: two attempts)."""
    register(page, base, "detail")
    wid = create_workflow(page, base, "Observed")
    api = Api(page, base)
    ids = {"t": api.add_node(wid, "manual_trigger", 20, 60), "big": api.add_node(wid, "set", 260, 60),
           "slow": api.add_node(wid, "http_request", 500, 60), "boom": api.add_node(wid, "test_crash", 740, 60)}
    api.post(f"/workflows/{wid}/nodes/{ids['big']}", {"name": "Big", "fields.name": "big",
                                                      "fields.value": "{{ 'x' * 5000 }}", "keep_existing": "on"})
    api.post(f"/workflows/{wid}/nodes/{ids['slow']}", {"name": "Slow", "url": f"{sink_url}/held"})
    api.post(f"/workflows/{wid}/nodes/{ids['boom']}", {
        "name": "Boom", "message": "<i>it broke</i>", "settings.present": "1", "settings.retry.max_attempts": "2",
        "settings.retry.initial_delay": "0.5", "settings.retry.jitter": "", "settings.retry.retry_on": "other"})
    for source, target in [("t", "big"), ("big", "slow"), ("slow", "boom")]:
        api.post(f"/workflows/{wid}/connections", {"source": ids[source], "target": ids[target],
                                                   "source_port": "main", "target_port": "main"})
    return wid, ids


def badge(page: Page, node_id: str) -> object:
    return page.locator(f"#execution-canvas #status-{node_id}")


def row(page: Page, node_id: str) -> object:
    return page.locator(f'#timeline [data-timeline-node="{node_id}"]')


def test_watch_an_execution_then_inspect_its_failed_node(page: Page, server: Server, fresh_sink: Sink,
                                                         page_errors: PageErrors, docs_shot: Any) -> None:
    base = server.url
    wid, ids = build(page, base, fresh_sink.url)
    fresh_sink.hold()  # Slow stays running until released
    started = Api(page, base).post(f"/workflows/{wid}/run").text()
    execution_id = int(re.search(r"/executions/(\d+)", started).group(1))

    # 1. Open the page mid-run: the pinned version on a read-only canvas, statuses live.
    page.goto(f"{base}/executions/{execution_id}")
    page.evaluate("() => { window.__sameDocument = true; }")
    expect(page.locator("#execution-canvas .drawflow-node")).to_have_count(4)
    expect(page.locator("#execution-canvas svg.connection")).to_have_count(3)
    assert page.evaluate("() => window.patchwireViewer.editor_mode") == "view"
    expect(badge(page, ids["big"])).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(badge(page, ids["slow"])).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT)
    expect(row(page, ids["slow"])).to_have_attribute("data-status", "running")
    expect(row(page, ids["boom"])).to_have_attribute("data-status", "idle")
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "running")

    # Nodes cannot be moved (nor edited) here.
    slow = page.locator(f'#execution-canvas .drawflow-node[data-node-id="{ids["slow"]}"]')
    before = slow.bounding_box()
    page.mouse.move(before["x"] + 40, before["y"] + 15)
    page.mouse.down()
    page.mouse.move(before["x"] + 40, before["y"] + 200, steps=8)
    page.mouse.up()
    df_id = slow.get_attribute("id").removeprefix("node-")
    assert page.evaluate(f"() => window.patchwireViewer.getNodeFromId({df_id}).pos_y") == 60

    # 2. Let it go on: the canvas, the timeline and the summary follow without a reload.
    fresh_sink.release()
    expect(badge(page, ids["slow"])).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(badge(page, ids["boom"])).to_have_attribute("data-status", "failed", timeout=RUN_TIMEOUT)
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "failed", timeout=RUN_TIMEOUT)
    expect(row(page, ids["boom"])).to_have_attribute("data-attempts", "2", timeout=RUN_TIMEOUT)
    expect(row(page, ids["boom"])).to_have_attribute("data-status", "failed")
    expect(row(page, ids["boom"]).locator(".tl-bar.tl-run")).to_have_count(2)
    expect(row(page, ids["boom"]).locator(".tl-bar.tl-backoff")).to_have_count(1)
    expect(row(page, ids["slow"])).to_have_attribute("data-status", "succeeded")
    expect(page.locator(f'table.node-runs tr[id="run-{ids["boom"]}-2"]')).to_be_attached()
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"

    # 3. The failed node: its error with the traceback (escaped), its attempts, its logs.
    page.locator(f'#execution-canvas .drawflow-node[data-node-id="{ids["boom"]}"] .pw-node-type').click()
    panel = page.locator(f'#node-panel[data-node-id="{ids["boom"]}"]')
    expect(panel.locator(".error-type")).to_have_text("LookupError")
    expect(panel.locator(".error-message")).to_have_text("<i>it broke</i>")
    expect(panel.locator("i")).to_have_count(0)
    traceback = panel.locator("details.traceback pre")
    expect(traceback).to_be_hidden()
    panel.get_by_text("Traceback", exact=True).click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("LookupError: <i>it broke</i>")
    expect(panel.locator("table.attempts tr.attempt")).to_have_count(2)
    expect(panel.locator(".node-logs")).to_contain_text("attempt 2: about to fail with <i>it broke</i>")
    expect(page.locator(f'#execution-canvas .drawflow-node[data-node-id="{ids["boom"]}"]')).to_have_class(
        re.compile(r"\bpw-selected\b"))
    assert page.url.endswith(f"/executions/{execution_id}/nodes/{ids['boom']}")

    # 4. A JSON tree folds out: Slow's response headers are folded at first.
    page.locator(f'#timeline [data-timeline-node="{ids["slow"]}"] a').click()
    output = page.locator(f'#node-panel[data-node-id="{ids["slow"]}"] .node-output')
    headers = output.locator("details:has(> summary > .jt-key:text-is('headers'))")
    content_type = headers.locator("li:has(> .jt-key:text-is('content-type'))")
    expect(content_type).to_be_hidden()
    headers.locator("> summary").click()
    expect(content_type).to_be_visible()
    expect(content_type).to_contain_text("application/json")
    expect(page.locator(f'#node-panel[data-node-id="{ids["slow"]}"] .node-logs')).to_contain_text("→ HTTP 200")

    # 5. Big's output is truncated on the page; the link downloads the whole of it.
    page.locator(f'#execution-canvas .drawflow-node[data-node-id="{ids["big"]}"] .pw-node-type').click()
    big = page.locator(f'#node-panel[data-node-id="{ids["big"]}"] .node-output')
    expect(big).to_contain_text("truncated")
    with page.expect_download() as download_info:
        big.get_by_role("link", name="download the whole JSON").click()
    download = download_info.value
    assert download.suggested_filename == f"execution-{execution_id}-Big-attempt-1-output.json"
    whole = json.loads(download.path().read_text())
    assert whole["main"][0]["big"] == "x" * 5000

    if server.profile == "embedded":
        page.screenshot(path=docs_shot("execution-detail.png"), full_page=True)
    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    assert not page_errors.console_errors, "console errors:\n" + "\n".join(page_errors.console_errors)
