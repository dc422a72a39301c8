"""Publish, history and restore in the editor (issue 4: versions), as a user does it."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import canvas_nodes, create_workflow, drop_node, register

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_publish_see_history_and_restore(page: Page, server: Server) -> None:
    base = server.url
    register(page, base, "versions")
    create_workflow(page, base, "Versioned")
    editor_url = page.url
    expect(page.locator("#publish-state")).to_contain_text("Not published")

    drop_node(page, "manual_trigger", 40, 60)
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#publish-state")).to_have_text(re.compile(r"^\s*Published as version 1\."))

    drop_node(page, "delay", 300, 60)  # a draft change after publishing
    page.locator("#toolbar-more > summary").click()  # History is in the toolbar's "More" menu
    page.get_by_role("button", name="History").click()
    versions = page.locator("#panel .version")
    expect(versions).to_have_count(1)
    expect(versions.first).to_contain_text("published")
    expect(versions.first).to_contain_text("First version: 1 node.")

    with page.expect_navigation():
        versions.first.get_by_role("button", name="Restore version 1 as the draft").click()
    expect(page.locator("#restored-note")).to_contain_text("Version 1 restored as the draft.")
    expect(page.locator("#restored-note")).to_contain_text("kept as version 2")
    expect(canvas_nodes(page)).to_have_count(1)
    stored = json.loads(page.request.get(f"{editor_url}/export").text())
    assert [n["type"] for n in stored["nodes"]] == ["manual_trigger"]

    page.locator("#toolbar-more > summary").click()  # History is in the toolbar's "More" menu
    page.get_by_role("button", name="History").click()
    expect(page.locator("#panel .version")).to_have_count(2)
    expect(page.locator('#panel .version[data-version-number="2"]')).to_contain_text("Added: Delay")
    expect(page.locator("#publish-state")).to_contain_text("Published: version 1")
