"""Editor comfort, as a person uses it: palette search by keyboard, inline rename, sticky notes,
zoom / fit / overview map, and the shortcuts dialog. Each step is checked on the page and on
what the server stored (a reload, or the workflow's export JSON).

Runs against the embedded profile only (the features are browser-side plus plain row
endpoints; ``test_editor_flow.py`` covers both profiles).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect
from test_editor_flow import create_workflow, register

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("server", ["embedded"], indirect=True)]


# --- helpers ---------------------------------------------------------------------------------
def start_workflow(page: Page, server: Server, name: str = "Comfort") -> int:
    register(page, server.url, "comfort")
    workflow_id = create_workflow(page, server.url, name)
    expect(page.locator("#zoom-level")).to_have_text("100%")  # (server-rendered: create_workflow waited for the scripts)
    return workflow_id


def api_post(page: Page, path: str, form: dict[str, Any]) -> Any:
    """A form POST with the page's session and CSRF token (what the editor's fetch calls send)."""
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    return page.request.post(path, form=form, headers={"x-csrftoken": csrf, "hx-request": "true"})


def exported(page: Page, server: Server, wid: int) -> dict[str, Any]:
    response = page.request.get(f"{server.url}/workflows/{wid}/export")
    assert response.ok, response.text()
    return json.loads(response.body())


def canvas_nodes(page: Page) -> Locator:
    return page.locator("#canvas .drawflow-node")


def node_by_row(page: Page, node_id: str) -> Locator:
    return page.locator(f'#canvas .drawflow-node[data-node-id="{node_id}"]')


def visible_palette_types(page: Page) -> list[str]:
    return page.locator(".palette-item:visible").evaluate_all("els => els.map(e => e.dataset.type)")


def assert_no_js_errors(page_errors: PageErrors, allowed: str = "status of 422") -> None:
    assert not page_errors.page_errors, "\n".join(page_errors.page_errors)
    unexpected = [m for m in page_errors.console_errors if allowed not in m]
    assert not unexpected, "\n".join(unexpected)


# --- palette ---------------------------------------------------------------------------------
def test_palette_search_and_keyboard_add(page: Page, server: Server, page_errors: PageErrors) -> None:
    wid = start_workflow(page, server)
    items = page.locator(".palette-item")
    count = items.count()
    assert count >= 9
    expect(page.locator(".palette-item svg.pw-icon")).to_have_count(count)  # an icon per type
    expect(items.filter(has_text="Call any HTTP API.")).to_have_count(1)    # and its one-line description

    page.locator("#canvas").click(position={"x": 400, "y": 300})
    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search node types")
    expect(search).to_be_focused()
    page.keyboard.type("branch")
    expect(items.locator("visible=true")).to_have_count(2)
    assert visible_palette_types(page) == ["if", "merge"]
    expect(page.locator('.palette-group[data-category="Triggers"]')).to_be_hidden()

    search.fill("")
    page.keyboard.type("no such thing")
    expect(page.locator("#palette-empty")).to_be_visible()
    expect(items.locator("visible=true")).to_have_count(0)
    page.keyboard.press("Escape")  # clears the search
    expect(search).to_have_value("")
    expect(items.locator("visible=true")).to_have_count(count)

    # Arrow into the results, Enter adds the focused type.
    page.keyboard.type("manual")
    page.keyboard.press("ArrowDown")
    expect(page.locator('.palette-item[data-type="manual_trigger"]')).to_be_focused()
    with page.expect_response(lambda r: r.url.endswith("/nodes") and r.request.method == "POST") as created:
        page.keyboard.press("Enter")
    assert created.value.status == 201
    expect(canvas_nodes(page)).to_have_count(1)

    # Select the trigger, search by type name, Enter in the search box adds the first match next to it.
    page.locator("#canvas .drawflow-node .pw-node-type").first.click()
    page.keyboard.press("/")
    page.keyboard.type("http_req")
    assert visible_palette_types(page) == ["http_request"]
    with page.expect_response(lambda r: r.url.endswith("/nodes") and r.request.method == "POST") as created:
        page.keyboard.press("Enter")
    assert created.value.status == 201
    expect(canvas_nodes(page)).to_have_count(2)

    # ArrowUp from the first result goes back to the search box.
    search.fill("")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    expect(search).to_be_focused()

    nodes = {n["type"]: n for n in exported(page, server, wid)["nodes"]}
    assert set(nodes) == {"manual_trigger", "http_request"}
    assert nodes["http_request"]["position"]["x"] == nodes["manual_trigger"]["position"]["x"] + 240
    assert nodes["http_request"]["position"]["y"] == nodes["manual_trigger"]["position"]["y"]
    assert_no_js_errors(page_errors)


# --- inline rename -----------------------------------------------------------------------------
def test_inline_rename_unique_names_shown_as_text(page: Page, server: Server, page_errors: PageErrors) -> None:
    wid = start_workflow(page, server)
    base = f"{server.url}/workflows/{wid}"
    first = re.search(r'data-node-id="(\w+)"', api_post(page, f"{base}/nodes", {"type": "delay", "x": 40, "y": 80}).text()).group(1)
    second = re.search(r'data-node-id="(\w+)"', api_post(page, f"{base}/nodes", {"type": "delay", "x": 300, "y": 80}).text()).group(1)
    page.reload()
    expect(canvas_nodes(page)).to_have_count(2)

    # Double-click the title: an input; Enter saves. HTML in the name is text.
    title = page.locator(f"#title-{first}")
    title.dblclick()
    field = node_by_row(page, first).get_by_role("textbox", name="Node name")
    expect(field).to_be_focused()
    expect(field).to_have_value("Delay")
    field.fill('<img src=x onerror="window.__xss=1">Fetch')
    with page.expect_response(lambda r: r.url.endswith(f"/nodes/{first}/name")) as renamed:
        page.keyboard.press("Enter")
    assert renamed.value.status == 200
    expect(title).to_have_text('<img src=x onerror="window.__xss=1">Fetch')
    expect(field).to_have_count(0)
    expect(node_by_row(page, first).locator("img")).to_have_count(0)

    # F2 on the selected node; a duplicate name is refused and the canvas keeps the old name.
    node_by_row(page, second).locator(".pw-node-type").click()
    expect(node_by_row(page, second)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("F2")
    field = node_by_row(page, second).get_by_role("textbox", name="Node name")
    expect(field).to_be_focused()
    field.fill('<img src=x onerror="window.__xss=1">Fetch')
    with page.expect_response(lambda r: r.url.endswith(f"/nodes/{second}/name")) as refused:
        page.keyboard.press("Enter")
    assert refused.value.status == 422
    expect(page.locator("#flash")).to_contain_text("already named")
    expect(page.locator(f"#title-{second}")).to_have_text("Delay 2")

    # Escape cancels without asking the server; Delete inside the field edits text, not the graph.
    page.keyboard.press("F2")
    field = node_by_row(page, second).get_by_role("textbox", name="Node name")
    expect(field).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.press("Home")
    page.keyboard.press("Delete")
    expect(field).to_have_value("elay ")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" else None)
    page.keyboard.press("Escape")
    expect(field).to_have_count(0)
    expect(page.locator(f"#title-{second}")).to_have_text("Delay 2")
    expect(canvas_nodes(page)).to_have_count(2)
    assert requests == []

    # The settings panel, open on the renamed node, shows the new name (saving it keeps the rename).
    node_by_row(page, first).locator(".pw-node-type").click()
    expect(page.locator("#panel #node-name")).to_have_value('<img src=x onerror="window.__xss=1">Fetch')

    page.reload()
    expect(page.locator(f"#title-{first}")).to_have_text('<img src=x onerror="window.__xss=1">Fetch')
    expect(page.locator(f"#title-{second}")).to_have_text("Delay 2")
    names = {n["id"]: n["name"] for n in exported(page, server, wid)["nodes"]}
    assert names == {first: '<img src=x onerror="window.__xss=1">Fetch', second: "Delay 2"}
    assert page.evaluate("() => window.__xss") is None
    assert_no_js_errors(page_errors)


# --- sticky notes --------------------------------------------------------------------------------
NOTE = ("## Plan\n\n**fetch** the orders\n\n<script>window.__xss = 1</script>\n\n"
        '<img src=x onerror="window.__xss = 2">\n\n[bad](javascript:window.__xss=3) [good](https://example.com/docs)')


def test_sticky_notes_markdown_move_edit_delete(page: Page, server: Server, page_errors: PageErrors) -> None:
    wid = start_workflow(page, server)
    notes = page.locator("#canvas .pw-note")

    with page.expect_response(lambda r: r.url.endswith("/notes/") and r.request.method == "POST") as created:
        page.get_by_role("button", name="Add sticky note").click()
    assert created.value.status == 201
    expect(notes).to_have_count(1)
    note = notes.first
    field = note.get_by_role("textbox")
    expect(field).to_be_focused()
    field.fill(NOTE)
    with page.expect_response(lambda r: re.search(r"/notes/\d+$", r.url) is not None) as saved:
        page.keyboard.press("Control+Enter")
    assert saved.value.status == 200
    body = note.locator(".pw-note-body")
    expect(body.locator("h2")).to_have_text("Plan")
    expect(body.locator("strong")).to_have_text("fetch")
    expect(body).to_contain_text("<script>window.__xss = 1</script>")  # shown as text
    expect(body).to_contain_text('<img src=x onerror="window.__xss = 2">')
    expect(body).to_contain_text("[bad](javascript:window.__xss=3)")
    expect(body.locator("script, img")).to_have_count(0)
    expect(body.get_by_role("link")).to_have_count(1)
    expect(body.get_by_role("link", name="good")).to_have_attribute("href", "https://example.com/docs")
    assert page.evaluate("() => window.__xss") is None

    # Drag the note by its head; the new place is saved.
    start = [float(v) for v in (note.get_attribute("data-x"), note.get_attribute("data-y"))]
    head = note.locator(".pw-note-head").bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/geometry")) as moved:
        page.mouse.move(head["x"] + 20, head["y"] + 6)
        page.mouse.down()
        page.mouse.move(head["x"] + 140, head["y"] + 66, steps=8)
        page.mouse.up()
    assert moved.value.status == 204
    document = exported(page, server, wid)
    assert document["notes"][0]["position"] == {"x": start[0] + 120, "y": start[1] + 60}
    assert document["notes"][0]["text"] == NOTE

    # Resize by the corner.
    corner = note.locator(".pw-note-resize").bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/geometry")):
        page.mouse.move(corner["x"] + 5, corner["y"] + 5)
        page.mouse.down()
        page.mouse.move(corner["x"] + 65, corner["y"] + 45, steps=5)
        page.mouse.up()
    note_doc = exported(page, server, wid)["notes"][0]
    assert (note_doc["width"], note_doc["height"]) == (300, 200)

    # Reload: the note is where it was left, rendered the same; double-click edits it, leaving saves.
    page.reload()
    expect(notes).to_have_count(1)
    expect(note.locator(".pw-note-body strong")).to_have_text("fetch")
    box = note.bounding_box()
    canvas = page.locator("#canvas .drawflow").bounding_box()
    assert abs(box["x"] - canvas["x"] - (start[0] + 120)) <= 1 and abs(box["width"] - 300) <= 1
    note.locator(".pw-note-body").dblclick()
    field = note.get_by_role("textbox")
    expect(field).to_have_value(NOTE)
    field.fill("- first\n- second")
    with page.expect_response(lambda r: re.search(r"/notes/\d+$", r.url) is not None):
        page.locator("#canvas").click(position={"x": 5, "y": 5})  # leaving the field saves
    expect(note.locator(".pw-note-body li")).to_have_count(2)

    # Escape while editing changes nothing.
    note.focus()
    page.keyboard.press("Enter")
    expect(note.get_by_role("textbox")).to_be_focused()
    page.keyboard.type("discarded")
    page.keyboard.press("Escape")
    expect(note.locator(".pw-note-body li")).to_have_count(2)
    assert exported(page, server, wid)["notes"][0]["text"] == "- first\n- second"

    # Delete the focused note with the Delete key.
    expect(note).to_be_focused()
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.keyboard.press("Delete")
    assert deleted.value.status == 204
    expect(notes).to_have_count(0)
    page.reload()
    expect(page.locator("#zoom-level")).to_have_text("100%")
    expect(notes).to_have_count(0)
    assert exported(page, server, wid)["notes"] == []
    assert_no_js_errors(page_errors)


# --- zoom, fit, overview map, shortcuts dialog ----------------------------------------------------
def view_state(page: Page) -> dict[str, float]:
    return page.evaluate("""() => { const e = window.patchwireEditor;
        return {zoom: e.zoom, x: e.canvas_x, y: e.canvas_y}; }""")


def test_zoom_fit_minimap_and_shortcuts_dialog(page: Page, server: Server, page_errors: PageErrors) -> None:
    wid = start_workflow(page, server)
    base = f"{server.url}/workflows/{wid}"
    for x, y in ((40, 60), (2600, 1400)):
        assert api_post(page, f"{base}/nodes", {"type": "delay", "x": x, "y": y}).status == 201
    assert api_post(page, f"{base}/notes/", {"text": "far away", "x": -900, "y": 300}).status == 201
    page.reload()
    expect(canvas_nodes(page)).to_have_count(2)
    expect(page.locator("#canvas .pw-note")).to_have_count(1)
    canvas = page.locator("#canvas").bounding_box()

    def inside_canvas(locator: Locator) -> bool:
        box = locator.bounding_box()
        return (box["x"] >= canvas["x"] and box["y"] >= canvas["y"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"]
                and box["y"] + box["height"] <= canvas["y"] + canvas["height"])

    assert not inside_canvas(canvas_nodes(page).nth(1))

    # The overview shows both nodes, the note and the view.
    expect(page.locator("#minimap .pw-mini-node")).to_have_count(2)
    expect(page.locator("#minimap .pw-mini-note")).to_have_count(1)
    expect(page.locator("#minimap .pw-mini-view")).to_have_count(1)

    # Zoom to fit (shortcut 1): every node and note is in view.
    page.locator("#canvas").click(position={"x": 600, "y": 400})
    page.keyboard.press("1")
    expect(page.locator("#zoom-level")).not_to_have_text("100%")
    for el in [*canvas_nodes(page).all(), page.locator("#canvas .pw-note")]:
        assert inside_canvas(el), el
    fitted = view_state(page)["zoom"]
    assert 0.25 <= fitted < 1

    # Zoom buttons step by 10 %.
    page.get_by_role("button", name="Zoom in").click()
    assert view_state(page)["zoom"] == pytest.approx(fitted + 0.1)
    page.get_by_role("button", name="Zoom out").click()
    page.get_by_role("button", name="Zoom out").click()
    assert view_state(page)["zoom"] == pytest.approx(fitted - 0.1)
    expect(page.locator("#zoom-level")).to_have_text(f"{round((fitted - 0.1) * 100)}%")

    # Back to 100 % with 0, then click the far node's rectangle in the overview: the view centres on it.
    page.keyboard.press("0")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    expect(page.locator("#minimap")).to_have_attribute("data-zoom", "1.00")  # the map was redrawn for this view
    far = page.locator("#minimap .pw-mini-node").nth(1).bounding_box()
    page.mouse.click(far["x"] + far["width"] / 2, far["y"] + far["height"] / 2)
    far_node = canvas_nodes(page).nth(1).bounding_box()
    assert abs(far_node["x"] + far_node["width"] / 2 - (canvas["x"] + canvas["width"] / 2)) < 40
    assert abs(far_node["y"] + far_node["height"] / 2 - (canvas["y"] + canvas["height"] / 2)) < 40

    # Dragging in the overview pans continuously.
    before = view_state(page)
    view = page.locator("#minimap .pw-mini-view").bounding_box()
    page.mouse.move(view["x"] + view["width"] / 2, view["y"] + view["height"] / 2)
    page.mouse.down()
    page.mouse.move(view["x"] + view["width"] / 2 - 30, view["y"] + view["height"] / 2 - 10, steps=5)
    page.mouse.up()
    after = view_state(page)
    assert after["x"] > before["x"] + 100 and after["y"] > before["y"] + 20

    # ? opens the shortcuts dialog: every editor shortcut, focus kept inside, Escape closes.
    page.evaluate("""() => window.patchwireShortcuts.push(
        {group: 'Edit', keys: 'Ctrl+Z', description: 'Undo the last change'},
        {group: 'Extra', keys: 'Ctrl+K', description: 'A shortcut another module added'})""")
    page.locator("#canvas").click(position={"x": 600, "y": 400})
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    for text in ("Undo the last change", "Redo", "Ctrl", "Select all nodes", "Duplicate", "Copy", "Paste",
                 "Rename the selected node", "Zoom to fit", "Search node types", "A shortcut another module added"):
        expect(dialog).to_contain_text(text)
    expect(dialog.get_by_text("Undo", exact=True)).to_have_count(0)  # restated by a module: listed once
    for _ in range(4):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.getElementById('shortcuts-dialog').contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.getElementById('shortcuts-dialog').contains(document.activeElement)")
    page.keyboard.press("1")  # shortcuts are off while the dialog is open
    expect(page.locator("#zoom-level")).to_have_text("100%")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert_no_js_errors(page_errors)
