"""Two tabs on one workflow never silently overwrite each other (issue 4: autosave and conflicts).

Two browser contexts of the same user open the same workflow. The first saves a node's config and
moves it; the second, still showing the old versions, tries the same: both writes are refused with a
message that says what changed, the stored node keeps the first tab's values, and "Reload the
workflow" brings the second tab up to date, after which its edits save again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, drop_node, open_config, register, save

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_two_tabs_do_not_overwrite_each_other(page: Page, server: Server, browser: Any) -> None:
    base = server.url
    register(page, base, "tabs")
    create_workflow(page, base, "Two tabs")
    delay = drop_node(page, "delay", 200, 80)
    dropped_at = json.loads(page.request.get(f"{page.url}/export").text())["nodes"][0]["position"]

    # The second tab: same user (same cookies), same workflow, opened now.
    other_context = browser.new_context(storage_state=page.context.storage_state(),
                                        viewport={"width": 1600, "height": 900})
    other = other_context.new_page()
    try:
        other.goto(page.url)
        expect(other.locator(f'#canvas .drawflow-node[data-node-id="{delay.node_id}"]')).to_be_visible()
        other_df = other.locator(f'#canvas .drawflow-node[data-node-id="{delay.node_id}"]').get_attribute("id")

        # Tab 1 saves a config change.
        form = open_config(page, delay)
        form.locator("#cfg-seconds").fill("5")
        save(page, form)

        # Tab 2, still at the old version, saves its own value: refused, and told what changed.
        other.locator(f"#{other_df} .pw-node-type").click()
        other_form = other.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
        # the field's preview (sent 300 ms after typing) answers first, as it does for a person who
        # pauses: a late preview landing after the 409 could replace the message being checked
        with other.expect_response(lambda r: "/preview" in r.url and "seconds=9" in r.url):
            other_form.locator("#cfg-seconds").fill("9")
        with other.expect_response(lambda r: r.request.method == "POST"
                                   and r.url.endswith(f"/nodes/{delay.node_id}")) as refused:
            other_form.get_by_role("button", name="Save").click()
        assert refused.value.status == 409
        conflict = other.locator("#flash .conflict")
        expect(conflict).to_contain_text("changed in another tab")
        expect(conflict).to_contain_text("Its field “seconds” is now 5.0.")
        expect(other.locator("#save-state")).not_to_have_text("Saved")

        # Tab 2 drags the node: refused too (tab 1 did not move it, but its save made a new version).
        node_box = other.locator(f"#{other_df} .pw-node-type").bounding_box()
        with other.expect_response(lambda r: r.url.endswith("/position")) as moved:
            other.mouse.move(node_box["x"] + 5, node_box["y"] + 5)
            other.mouse.down()
            other.mouse.move(node_box["x"] + 120, node_box["y"] + 90, steps=8)
            other.mouse.up()
        assert moved.value.status == 409
        expect(other.locator("#flash .conflict")).to_contain_text("Its position is now")

        stored = json.loads(page.request.get(f"{page.url}/export").text())
        [node] = [n for n in stored["nodes"] if n["name"] == "Delay"]
        assert node["config"]["seconds"] == 5  # tab 1's value, not overwritten
        assert node["position"] == dropped_at  # tab 2's drag was refused

        # Reload brings tab 2 up to date; its next save goes through.
        with other.expect_navigation():
            other.locator("#flash .conflict").get_by_role("button", name="Reload the workflow").click()
        other.locator(f'#canvas .drawflow-node[data-node-id="{delay.node_id}"] .pw-node-type').click()
        fresh = other.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
        expect(fresh.locator("#cfg-seconds")).to_have_value("5.0")
        fresh.locator("#cfg-seconds").fill("9")
        save(other, fresh)
        stored = json.loads(page.request.get(f"{page.url}/export").text())
        assert [n for n in stored["nodes"] if n["name"] == "Delay"][0]["config"]["seconds"] == 9
    finally:
        other_context.close()
