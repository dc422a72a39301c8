"""The node panel saves as the user types (issue 17): an edit survives clicking another node at once, a
reload at once, and coming back; an invalid value shows its message while the stored one stays; a stale
tab gets the conflict message. The form being typed in is never replaced by a save."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, drop_node, open_config, register, select_node, wait_for_editor

if TYPE_CHECKING:
    from conftest import Server
    from test_editor_flow import CanvasNode

pytestmark = pytest.mark.e2e

SECONDS = "#cfg-seconds"


def stored_node(page: Page, workflow_url: str, node_id: str) -> dict[str, Any]:
    exported = json.loads(page.request.get(f"{workflow_url}/export").text())
    return next(n for n in exported["nodes"] if n["id"] == node_id)


def wait_stored_seconds(page: Page, workflow_url: str, node_id: str, seconds: float) -> None:
    """Wait for the row (a save sent by a page that was unloading has no response to wait on)."""
    deadline = time.monotonic() + 15
    while stored_node(page, workflow_url, node_id)["config"].get("seconds") != seconds:
        assert time.monotonic() < deadline, f"seconds never became {seconds}"
        page.wait_for_timeout(100)  # between two reads of the row


def autosaved(page: Page, node: CanvasNode) -> Any:
    return page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(f"/nodes/{node.node_id}")
                                and r.request.headers.get("x-autosave") == "1")


def save_state(page: Page, node: CanvasNode) -> Any:
    """The autosave state next to the node form's Save button."""
    return page.locator(f'#panel form.node-form[data-node-id="{node.node_id}"] .node-save-state')


def start(page: Page, server: Server, name: str) -> tuple[CanvasNode, CanvasNode, str]:
    register(page, server.url, "autosave")
    create_workflow(page, server.url, name)
    trigger = drop_node(page, "manual_trigger", 40, 80)
    delay = drop_node(page, "delay", 300, 80)
    return trigger, delay, page.url


def test_an_edit_survives_clicking_another_node_at_once_and_a_reload(page: Page, server: Server) -> None:
    trigger, delay, url = start(page, server, "Autosave away")
    form = page.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
    expect(save_state(page, delay)).to_have_text("Saved")
    form.locator("#node-name").fill("Short pause")
    form.locator(SECONDS).fill("7")
    expect(save_state(page, delay)).to_have_text("Unsaved changes")
    select_node(page, page.locator(f"#node-{trigger.df_id}"), trigger.node_id)  # at once: before the 600 ms

    back = open_config(page, delay)
    expect(back.locator(SECONDS)).to_have_value(re.compile(r"^7(\.0)?$"))
    expect(back.locator("#node-name")).to_have_value("Short pause")
    expect(page.locator(f"#title-{delay.node_id}")).to_have_text("Short pause")

    page.reload()
    wait_for_editor(page)
    again = open_config(page, delay)
    expect(again.locator(SECONDS)).to_have_value(re.compile(r"^7(\.0)?$"))
    assert stored_node(page, url, delay.node_id)["config"]["seconds"] == 7


def test_typing_then_reloading_at_once_keeps_the_edit(page: Page, server: Server) -> None:
    _, delay, url = start(page, server, "Autosave reload")
    form = page.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
    form.locator(SECONDS).fill("12")
    page.reload()  # the pending save leaves with the page (a keepalive request)
    wait_for_editor(page)
    wait_stored_seconds(page, url, delay.node_id, 12)
    form = open_config(page, delay)
    expect(form.locator(SECONDS)).to_have_value(re.compile(r"^12(\.0)?$"))


def test_the_form_saves_in_place_and_an_invalid_number_keeps_the_stored_value(page: Page, server: Server) -> None:
    _, delay, url = start(page, server, "Autosave invalid")
    form = page.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
    form.evaluate("(f) => f.setAttribute('data-e2e-same-form', '')")  # a save must not replace it
    with autosaved(page, delay) as first:
        form.locator(SECONDS).fill("3")
    assert first.value.status == 200
    expect(save_state(page, delay)).to_have_text("Saved")
    assert stored_node(page, url, delay.node_id)["config"]["seconds"] == 3

    field = form.locator(SECONDS)
    with autosaved(page, delay) as refused:
        field.fill("soon")
    assert refused.value.status == 422
    expect(save_state(page, delay)).to_have_text("Not saved: fix the fields")
    error = form.locator(".field-error")
    expect(error).to_have_count(1)
    expect(error).to_be_visible()
    expect(field).to_have_value("soon")  # what was typed stays in the field
    expect(field).to_be_focused()
    assert stored_node(page, url, delay.node_id)["config"]["seconds"] == 3  # the last valid value stays

    with autosaved(page, delay) as fixed:
        field.fill("4")
    assert fixed.value.status == 200
    expect(field).to_be_focused()  # the form was not replaced: the caret is still in the field
    expect(save_state(page, delay)).to_have_text("Saved")
    expect(form.locator(".field-error")).to_have_count(0)
    expect(page.locator("#panel form.node-form[data-e2e-same-form]")).to_have_count(1)
    assert stored_node(page, url, delay.node_id)["config"]["seconds"] == 4


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_stale_tab_gets_the_conflict_message(page: Page, server: Server, browser: Any) -> None:
    _, delay, url = start(page, server, "Autosave tabs")
    other_context = browser.new_context(storage_state=page.context.storage_state(),
                                        viewport={"width": 1600, "height": 900})
    other = other_context.new_page()
    try:
        other.goto(url)
        wait_for_editor(other)
        other_df = other.locator(f'#canvas .drawflow-node[data-node-id="{delay.node_id}"]').get_attribute("id")
        other_form = select_node(other, other.locator(f"#{other_df}"), delay.node_id)

        form = page.locator(f'#panel form.node-form[data-node-id="{delay.node_id}"]')
        with autosaved(page, delay) as first:
            form.locator(SECONDS).fill("5")
        assert first.value.status == 200

        with autosaved(other, delay) as stale:
            other_form.locator(SECONDS).fill("9")
        assert stale.value.status == 409
        expect(other.locator("#flash .conflict")).to_contain_text("changed in another tab")
        expect(other_form.locator(".node-save-state")).to_have_text("Not saved: changed elsewhere")
        assert stored_node(page, url, delay.node_id)["config"]["seconds"] == 5
    finally:
        other_context.close()
