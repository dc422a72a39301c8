"""After a failed run the canvas shows every node's final state (issue 17): the node behind the one that
failed never ran, and its badge says "not run" instead of keeping the "queued" badge the run started with."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import register, wait_for_editor

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e


def document() -> str:
    """Start → Divide (fails: 1 / 0) → Wait."""
    node = lambda id_, type_, name, x, config: {  # noqa: E731
        "id": id_, "type": type_, "version": 1, "name": name, "config": config, "position": {"x": x, "y": 100}}
    return json.dumps({
        "format": "patchwire.workflow", "format_version": 1, "name": "Fails second",
        "nodes": [node("start", "manual_trigger", "Start", 40, {}),
                  node("second", "set", "Divide", 300, {"fields": [{"name": "x", "value": "{{ 1 / 0 }}"}]}),
                  node("third", "delay", "Wait", 560, {"seconds": 0})],
        "connections": [{"source": "start", "target": "second", "source_port": "main", "target_port": "main"},
                        {"source": "second", "target": "third", "source_port": "main", "target_port": "main"}]})


def badge(page: Page, name: str) -> object:
    node = page.locator("#canvas .drawflow-node").filter(has=page.locator(".pw-node-name", has_text=name))
    return node.locator(".pw-status")


def test_the_node_after_a_failed_one_ends_as_not_run(page: Page, server: Server, page_errors: PageErrors) -> None:
    register(page, server.url, "final")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    imported = page.request.post(f"{server.url}/workflows/import", form={"document": document()},
                                 headers={"x-csrftoken": token, "accept": "application/json"})
    assert imported.ok, imported.text()
    page.goto(f"{server.url}/workflows/{imported.json()['workflow_id']}")
    wait_for_editor(page)

    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/run")) as started:
        page.locator("#run-button").click()
    assert 'data-status="queued"' in started.value.text()  # every node starts queued

    expect(page.locator("#run-status")).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(badge(page, "Divide")).to_have_attribute("data-status", "failed")
    expect(badge(page, "Wait")).to_have_attribute("data-status", "notrun")
    expect(badge(page, "Wait")).to_have_text("not run")
    expect(badge(page, "Start")).to_have_attribute("data-status", "succeeded")
    expect(page.locator('#canvas .pw-status[data-status="queued"]')).to_have_count(0)
    assert page_errors.page_errors == []
