"""Keyboard and screen-reader access to the editor (issue 4), and an axe-core check of the page.

Everything here is done without the mouse: add nodes from the palette with Enter, move focus between
connected nodes with the arrow keys, move a node with Shift+arrows, connect and disconnect nodes from
the node panel's "Connect to…" form. Nodes and ports have accessible names. axe-core (vendored in
e2e/vendor) finds no serious or critical violation on the editor page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now. axe is evaluated through the
    DevTools protocol, which the page's CSP (script-src 'self') does not govern."""
    page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "targets": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def start(page: Page, base: str) -> str:
    register(page, base, "keys")
    create_workflow(page, base, "Keyboard only")
    return page.url


def add_from_palette(page: Page, type_name: str) -> str:
    """Focus the palette item with Tab-free keyboard navigation and press Enter; the new node's row id."""
    before = page.locator("#canvas .drawflow-node").count()
    item = page.locator(f'.palette-item[data-type="{type_name}"]')
    item.focus()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/nodes")) as created:
        page.keyboard.press("Enter")
    assert created.value.status == 201
    expect(page.locator("#canvas .drawflow-node")).to_have_count(before + 1)
    row = page.locator("#canvas .drawflow-node").nth(before).get_attribute("data-node-id")
    # The editor opens the new node's settings (a GET of its own): once they are in, no late answer can
    # replace the panel that the next step opens.
    expect(page.locator(f'#panel form.node-form[data-node-id="{row}"]')).to_be_visible()
    return row


def node(page: Page, row: str) -> Any:
    return page.locator(f'#canvas .drawflow-node[data-node-id="{row}"]')


def focused_row(page: Page) -> str | None:
    return page.evaluate("() => document.activeElement && document.activeElement.dataset.nodeId || null")


def stored(page: Page, editor_url: str) -> dict[str, Any]:
    return json.loads(page.request.get(f"{editor_url}/export").text())


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_the_editor_without_a_mouse(page: Page, server: Server) -> None:
    editor_url = start(page, server.url)
    assert not axe_violations(page)

    trigger = add_from_palette(page, "manual_trigger")
    first = add_from_palette(page, "set")    # added next to the selected node (the trigger)
    second = add_from_palette(page, "delay")

    # Nodes are focusable and named; Enter selects one and opens its settings.
    node(page, trigger).focus()
    expect(node(page, trigger)).to_have_attribute("aria-roledescription", "node")
    expect(page.get_by_role("option", name=re.compile(r"^Manual Trigger Manual Trigger"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f'#panel form.node-form[data-node-id="{trigger}"]')).to_be_visible()

    # "Connect to…" in the panel: trigger → Set, and Set → Delay, without a mouse.
    panel = page.locator("#panel")
    panel.get_by_label("Connect to…").select_option(label="Set")
    with page.expect_response(lambda r: r.url.endswith("/connections")) as wired:
        panel.get_by_role("button", name="Connect", exact=True).click()
    assert wired.value.status == 201
    expect(panel.locator(".connection-list")).to_contain_text("Manual Trigger (main) → Set (main)")
    node(page, first).focus()
    page.keyboard.press("Enter")
    expect(page.locator(f'#panel form.node-form[data-node-id="{first}"]')).to_be_visible()
    panel.get_by_label("Connect to…").select_option(label="Delay")
    with page.expect_response(lambda r: r.url.endswith("/connections")) as wired:
        panel.get_by_role("button", name="Connect", exact=True).click()
    assert wired.value.status == 201
    expect(page.locator("#canvas svg.connection")).to_have_count(2)
    edges = {(c["source"], c["target"]) for c in stored(page, editor_url)["connections"]}
    names = {n["id"]: n["name"] for n in stored(page, editor_url)["nodes"]}
    assert {(names[s], names[t]) for s, t in edges} == {("Manual Trigger", "Set"), ("Set", "Delay")}

    # Arrow keys follow the connections.
    node(page, trigger).focus()
    page.keyboard.press("ArrowRight")
    assert focused_row(page) == first
    page.keyboard.press("ArrowRight")
    assert focused_row(page) == second
    page.keyboard.press("ArrowLeft")
    assert focused_row(page) == first

    # Shift+arrows move the focused node, and the move is saved.
    before = next(n for n in stored(page, editor_url)["nodes"] if n["name"] == "Set")["position"]
    with page.expect_response(lambda r: r.url.endswith("/position")) as moved:
        page.keyboard.press("Shift+ArrowDown")
    assert moved.value.status == 204
    after = next(n for n in stored(page, editor_url)["nodes"] if n["name"] == "Set")["position"]
    assert after == {"x": before["x"], "y": before["y"] + 20}

    # Ports have accessible names; the whole page passes axe with nodes, wires and the panel open.
    expect(node(page, first).locator(".outputs .output").first).to_have_attribute("aria-label", "output port main")
    expect(node(page, first).locator(".inputs .input").first).to_have_attribute("aria-label", "input port main")
    violations = axe_violations(page)
    assert not violations, json.dumps(violations, indent=1)

    # Shift+Space builds a selection without a mouse (then Delete, Ctrl+C, Ctrl+D or the align tools act on it).
    node(page, first).focus()
    page.keyboard.press("Escape")  # clears the selection the Enter above made
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(0)
    node(page, first).focus()
    page.keyboard.press("Shift+Space")
    node(page, second).focus()
    page.keyboard.press("Shift+Space")
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(2)
    page.keyboard.press("Shift+Space")
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(1)
    page.keyboard.press("Shift+Space")
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(2)

    # Remove a connection from the panel's list; reload: it is gone for good.
    with page.expect_response(lambda r: r.url.endswith("/connections/delete")) as removed:
        panel.get_by_role("button", name="Remove connection Set (main) → Delay (main)").click()
    assert removed.value.status == 204
    page.reload()
    expect(page.locator("#canvas svg.connection")).to_have_count(1)
