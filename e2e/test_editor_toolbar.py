"""The editor toolbar (issue 17): one row at common widths, no jump of the canvas when the save state
appears, a long workflow name cut to one line (full name as the tooltip); the secondary actions are in
the "More" menu, with their names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, drop_node, register, wait_for_editor

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e

LONG_NAME = ("Every order from the shop, checked against the stock sheet, then the invoice, the courier label "
             "and a note to the customer, except on public holidays when it waits for the next working day, after lunch.")[:200]


def toolbar_rows(page: Page) -> list[float]:
    """The distinct vertical centres (rounded) of the toolbar's visible items; each item must lie inside
    the toolbar's box (not pushed out of its right edge)."""
    boxes = page.eval_on_selector_all(
        ".toolbar > *", "els => els.filter(e => e.getClientRects().length && e.offsetWidth > 0)"
        ".map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top + r.height / 2, e.id]; })")
    bar = page.locator(".toolbar").bounding_box()
    for left, right, _, name in boxes:
        assert bar["x"] <= left and right <= bar["x"] + bar["width"] + 0.5, f"{name} is outside the toolbar"
    return sorted({round(centre / 8) for _, _, centre, _ in boxes})


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
@pytest.mark.parametrize("width", [1280, 1440])
def test_the_toolbar_is_one_row_and_the_canvas_does_not_jump(page: Page, server: Server, width: int,
                                                             page_errors: PageErrors) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    register(page, server.url, "toolbar")
    assert len(LONG_NAME) == 200
    create_workflow(page, server.url, LONG_NAME)
    wait_for_editor(page)

    assert len(toolbar_rows(page)) == 1, toolbar_rows(page)
    title = page.locator(".toolbar .wf-title")
    expect(title).to_have_attribute("title", LONG_NAME)
    assert title.bounding_box()["width"] >= 80, "the name keeps some room"
    line = title.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || e.getBoundingClientRect().height")
    assert title.bounding_box()["height"] <= line * 1.5, "the name is one line"
    assert title.evaluate("e => e.scrollWidth > e.clientWidth"), "cut with an ellipsis"

    canvas_top = page.locator("#canvas").bounding_box()["y"]
    expect(page.locator("#save-state")).to_have_text("")
    drop_node(page, "manual_trigger", 80, 80)  # a write: "Saved" appears
    expect(page.locator("#save-state")).to_have_text("Saved")
    assert page.locator("#canvas").bounding_box()["y"] == canvas_top, "the canvas did not move"
    assert len(toolbar_rows(page)) == 1

    # the secondary actions: in "More", by their names
    page.locator("#toolbar-more > summary").click()
    menu = page.get_by_role("group", name="More actions")
    for name in ("History", "Workflow settings", "Export", "Overview"):
        expect(menu.get_by_text(name, exact=True)).to_be_visible()
    menu.get_by_role("button", name="Workflow settings").click()
    expect(page.locator("#toolbar-more")).not_to_have_attribute("open", "")
    expect(page.locator("#panel")).to_contain_text("Workflow settings")
    page.get_by_text("Arrange", exact=True).click()
    expect(page.get_by_role("button", name="Align left")).to_be_visible()
    expect(page.locator("#toolbar-more")).not_to_have_attribute("open", "")  # one menu open at a time
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Align left")).to_be_hidden()
    assert page_errors.page_errors == []
