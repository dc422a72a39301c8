"""Editing in the editor as a person does it: undo / redo, selection, clipboard, align and auto-layout.

Every check looks at the canvas AND at the stored graph (GET /workflows/{id}/export), and the
results of undo / redo are checked again after a reload. Embedded profile only: these are
editor features, the server profile does not change them.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect
from test_editor_flow import (
    CanvasNode,
    canvas_connections,
    canvas_nodes,
    create_workflow,
    drag_connection,
    drop_node,
    open_config,
    register,
)

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("server", ["embedded"], indirect=True)]


# --- helpers -----------------------------------------------------------------------------------
def start(page: Page, server: Server, name: str = "Editing") -> int:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    register(page, server.url, "edit")
    return new_workflow(page, server, name)


def new_workflow(page: Page, server: Server, name: str) -> int:
    page.goto(f"{server.url}/workflows")
    workflow_id = create_workflow(page, server.url, name)
    expect(page.locator("#editor-root")).to_have_attribute("data-undo", "0")
    return workflow_id


def stored(page: Page, server: Server, workflow_id: int) -> dict[str, Any]:
    response = page.request.get(f"{server.url}/workflows/{workflow_id}/export")
    assert response.ok, response.text()
    return json.loads(response.body())


def stored_nodes(page: Page, server: Server, workflow_id: int) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in stored(page, server, workflow_id)["nodes"]}


def links(document: dict[str, Any]) -> set[tuple[str, str]]:
    names = {n["id"]: n["name"] for n in document["nodes"]}
    return {(names[c["source"]], names[c["target"]]) for c in document["connections"]}


def by_name(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in document["nodes"] if n["name"] == name)


def history_sizes(page: Page, undo: int, redo: int) -> None:
    """Wait until the undo and redo stacks have these sizes (a step moves only once the server accepted it)."""
    root = page.locator("#editor-root")
    expect(root).to_have_attribute("data-undo", str(undo))
    expect(root).to_have_attribute("data-redo", str(redo))


def node_of(page: Page, node_id: str) -> Locator:
    return page.locator(f'#canvas .drawflow-node[data-node-id="{node_id}"]')


def canvas_node(page: Page, name: str) -> CanvasNode:
    el = page.locator("#canvas .drawflow-node", has=page.locator(".pw-node-name", has_text=re.compile(f"^{name}$")))
    expect(el).to_have_count(1)
    return CanvasNode(el.get_attribute("id").removeprefix("node-"), el.get_attribute("data-node-id"))


def click_empty_canvas(page: Page) -> None:
    """A click on empty canvas, bottom middle: clear of the nodes, the canvas tools (bottom left) and
    the overview map (bottom right), whose click would pan the view."""
    box = page.locator("#canvas").bounding_box()
    page.locator("#canvas").click(position={"x": box["width"] / 2, "y": box["height"] - 30})


def drag_by(page: Page, node: CanvasNode, dx: int, dy: int, *, shift: bool = False) -> None:
    grip = page.locator(f"#node-{node.df_id} .pw-node-type").bounding_box()
    page.mouse.move(grip["x"] + 10, grip["y"] + 4)
    page.mouse.down()
    page.mouse.move(grip["x"] + 10 + dx, grip["y"] + 4 + dy, steps=10)
    page.mouse.up()


def no_js_errors(page_errors: PageErrors, allowed: str = "status of 422") -> None:
    assert not page_errors.page_errors, "\n".join(page_errors.page_errors)
    unexpected = [m for m in page_errors.console_errors if allowed not in m]
    assert not unexpected, "\n".join(unexpected)


# --- undo / redo -----------------------------------------------------------------------------------
def test_undo_and_redo_every_kind_of_edit_and_the_results_survive_a_reload(page: Page, server: Server,
                                                                           page_errors: PageErrors) -> None:
    wid = start(page, server)
    trigger = drop_node(page, "manual_trigger", 40, 80)
    delay = drop_node(page, "delay", 320, 80)                                      # 2 "add" steps
    assert drag_connection(page, trigger, "output_1", delay, "input_1").status == 201  # connect
    with page.expect_response(lambda r: r.url.endswith(f"/nodes/{delay.node_id}/position")):
        drag_by(page, delay, 0, 60)                                                 # move
    history_sizes(page, 4, 0)
    moved = stored_nodes(page, server, wid)[delay.node_id]["position"]
    assert 130 <= moved["y"] <= 150, moved

    form = open_config(page, delay)  # replaces the form the drop opened: type into the new one
    form.locator("#node-name").fill("Pause")
    form.locator("#cfg-seconds").fill("5")
    form.get_by_role("button", name="Save").click()                                 # config edit
    expect(page.locator("#panel .node-save-state[data-state=saved]")).to_have_text("Saved")
    history_sizes(page, 5, 0)

    page.locator(f"#node-{delay.df_id} .pw-node-type").click()
    page.keyboard.press("Delete")                                                    # delete
    expect(canvas_nodes(page)).to_have_count(1)
    history_sizes(page, 6, 0)
    assert [n["name"] for n in stored(page, server, wid)["nodes"]] == ["Manual Trigger"]

    # Undo the delete: the node comes back with its config, settings, position and connection.
    page.keyboard.press("Control+z")
    history_sizes(page, 5, 1)
    doc = stored(page, server, wid)
    pause = by_name(doc, "Pause")
    assert pause["id"] != delay.node_id, "a re-created node gets a new id"
    assert pause["config"]["seconds"] == 5 and pause["position"] == moved
    assert links(doc) == {("Manual Trigger", "Pause")}
    expect(canvas_nodes(page)).to_have_count(2)
    expect(canvas_connections(page)).to_have_count(1)

    # Undo the config edit (on the re-created node: ids were remapped), then the move, the connection, the add.
    page.get_by_role("button", name="Undo").click()
    history_sizes(page, 4, 2)
    doc = stored(page, server, wid)
    restored = by_name(doc, "Delay")
    assert restored["config"].get("seconds") != 5
    expect(page.locator(f"#title-{restored['id']}")).to_have_text("Delay")
    page.keyboard.press("Control+z")
    history_sizes(page, 3, 3)
    assert by_name(stored(page, server, wid), "Delay")["position"] == {"x": 320, "y": 80}
    expect(node_of(page, restored["id"])).to_have_css("top", "80px")
    page.keyboard.press("Control+z")
    history_sizes(page, 2, 4)
    assert stored(page, server, wid)["connections"] == []
    expect(canvas_connections(page)).to_have_count(0)
    page.keyboard.press("Control+z")
    history_sizes(page, 1, 5)
    assert [n["name"] for n in stored(page, server, wid)["nodes"]] == ["Manual Trigger"]
    expect(canvas_nodes(page)).to_have_count(1)

    page.reload()
    expect(canvas_nodes(page)).to_have_count(1)
    expect(canvas_connections(page)).to_have_count(0)
    history_sizes(page, 0, 0)  # the history lives in the page; the undone state is stored

    # Again, and this time redo everything (Ctrl+Shift+Z, Ctrl+Y and the toolbar button).
    delay = drop_node(page, "delay", 320, 80)
    assert drag_connection(page, trigger_after_reload(page), "output_1", delay, "input_1").status == 201
    with page.expect_response(lambda r: r.url.endswith(f"/nodes/{delay.node_id}/position")):
        drag_by(page, delay, 40, 0)
    history_sizes(page, 3, 0)
    for _ in range(3):
        page.keyboard.press("Control+z")
    history_sizes(page, 0, 3)
    assert [n["name"] for n in stored(page, server, wid)["nodes"]] == ["Manual Trigger"]
    page.keyboard.press("Control+Shift+z")   # add
    history_sizes(page, 1, 2)
    page.keyboard.press("Control+y")         # connect (to the re-created node)
    history_sizes(page, 2, 1)
    page.get_by_role("button", name="Redo").click()  # move
    history_sizes(page, 3, 0)
    expect(page.get_by_role("button", name="Redo")).to_be_disabled()
    doc = stored(page, server, wid)
    assert links(doc) == {("Manual Trigger", "Delay")}
    x = by_name(doc, "Delay")["position"]["x"]
    assert 350 <= x <= 370, x

    # Disconnect: select the wire, Delete; undo brings it back, redo removes it again.
    page.locator("#canvas svg.connection .main-path").click()
    page.keyboard.press("Delete")
    history_sizes(page, 4, 0)
    assert stored(page, server, wid)["connections"] == []
    page.keyboard.press("Control+z")
    history_sizes(page, 3, 1)
    assert links(stored(page, server, wid)) == {("Manual Trigger", "Delay")}
    page.reload()
    expect(canvas_nodes(page)).to_have_count(2)
    expect(canvas_connections(page)).to_have_count(1)
    assert by_name(stored(page, server, wid), "Delay")["position"]["x"] == x
    no_js_errors(page_errors)


def trigger_after_reload(page: Page) -> CanvasNode:
    return canvas_node(page, "Manual Trigger")


def test_a_refused_undo_shows_the_error_and_keeps_the_stacks(page: Page, server: Server) -> None:
    wid = start(page, server)
    drop_node(page, "delay", 60, 80)
    history_sizes(page, 1, 0)
    # Someone else deletes the workflow meanwhile: the undo (a delete) is refused with 404.
    page.request.delete(f"{server.url}/workflows/{wid}",
                        headers={"X-CSRFToken": page.locator("meta[name=csrf-token]").get_attribute("content")})
    page.keyboard.press("Control+z")
    expect(page.locator("#flash")).to_contain_text("Not found")
    expect(page.locator("#save-state")).to_have_text("Not saved")
    history_sizes(page, 1, 0)
    expect(canvas_nodes(page)).to_have_count(1)


# --- selection, duplicate, delete ---------------------------------------------------------------------
def test_select_duplicate_and_delete_the_selection(page: Page, server: Server, page_errors: PageErrors) -> None:
    wid = start(page, server)
    a = drop_node(page, "manual_trigger", 40, 80)
    b = drop_node(page, "delay", 300, 80)
    c = drop_node(page, "delay", 300, 300)
    drag_connection(page, a, "output_1", b, "input_1")
    click_empty_canvas(page)

    # Shift-click adds and removes nodes; the selection is visible and announced.
    page.locator(f"#node-{a.df_id} .pw-node-type").click(modifiers=["Shift"])
    page.locator(f"#node-{b.df_id} .pw-node-type").click(modifiers=["Shift"])
    page.locator(f"#node-{c.df_id} .pw-node-type").click(modifiers=["Shift"])
    page.locator(f"#node-{c.df_id} .pw-node-type").click(modifiers=["Shift"])
    for node, on in ((a, "true"), (b, "true"), (c, "false")):
        expect(page.locator(f"#node-{node.df_id}")).to_have_attribute("aria-selected", on)
    expect(page.locator(f"#node-{a.df_id}")).to_have_class(re.compile(r"\bpw-selected\b"))
    expect(page.locator(f"#node-{a.df_id}")).to_have_css("top", "80px")  # shift-click did not drag

    # Ctrl+D: offset copies of A and B with their connection; the copies become the selection.
    page.keyboard.press("Control+d")
    expect(canvas_nodes(page)).to_have_count(5)
    expect(canvas_connections(page)).to_have_count(2)
    doc = stored(page, server, wid)
    assert links(doc) == {("Manual Trigger", "Delay"), ("Manual Trigger 2", "Delay 3")}
    assert by_name(doc, "Delay 3")["position"] == {"x": 340, "y": 120}
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(2)

    # Escape clears; a Shift+drag rectangle on the empty canvas selects what it touches.
    page.keyboard.press("Escape")
    expect(page.locator(".drawflow-node[aria-selected=true]")).to_have_count(0)
    box = page.locator("#canvas").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 280, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 560, box["y"] + 420, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    selected = page.locator(".drawflow-node[aria-selected=true]")
    expect(selected).to_have_count(3)  # B, C and the copy of B
    page.keyboard.press("Delete")
    expect(canvas_nodes(page)).to_have_count(2)
    assert sorted(n["name"] for n in stored(page, server, wid)["nodes"]) == ["Manual Trigger", "Manual Trigger 2"]
    page.keyboard.press("Control+z")  # one step restores all three and their connections
    expect(canvas_nodes(page)).to_have_count(5)
    expect(canvas_connections(page)).to_have_count(2)
    assert len(links(stored(page, server, wid))) == 2

    # Select mode: a plain drag selects; Ctrl+A selects everything; Delete + undo once more.
    page.get_by_role("button", name="Select mode").click()
    expect(page.get_by_role("button", name="Select mode")).to_have_attribute("aria-pressed", "true")
    page.mouse.move(box["x"] + 20, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 200, steps=5)
    page.mouse.up()
    expect(selected).to_have_count(2)  # the trigger and its copy
    page.keyboard.press("Control+a")
    expect(selected).to_have_count(5)
    page.keyboard.press("Backspace")
    expect(canvas_nodes(page)).to_have_count(0)
    assert stored(page, server, wid)["nodes"] == []
    page.keyboard.press("Control+z")
    expect(canvas_nodes(page)).to_have_count(5)
    page.reload()
    expect(canvas_nodes(page)).to_have_count(5)
    expect(canvas_connections(page)).to_have_count(2)
    no_js_errors(page_errors)


# --- clipboard ---------------------------------------------------------------------------------------
def test_copy_in_one_workflow_and_paste_into_another(page: Page, server: Server, page_errors: PageErrors) -> None:
    source = start(page, server, "Source")
    a = drop_node(page, "manual_trigger", 40, 80)
    b = drop_node(page, "delay", 300, 80)
    form = page.locator(f'#panel form.node-form[data-node-id="{b.node_id}"]')
    form.locator("#cfg-seconds").fill("7")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#panel .node-save-state[data-state=saved]")).to_have_text("Saved")
    drag_connection(page, a, "output_1", b, "input_1")
    click_empty_canvas(page)
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    expect(page.locator("#save-state")).to_have_text("Copied 2 nodes")
    copied = json.loads(page.evaluate("() => navigator.clipboard.readText()"))
    assert copied["format"] == "patchwire.workflow" and len(copied["nodes"]) == 2 and len(copied["connections"]) == 1

    # Another tab, another workflow: Ctrl+V adds both nodes and their connection, one undo step.
    other = page.context.new_page()
    target = new_workflow(other, server, "Target")
    other.keyboard.press("Control+v")
    expect(canvas_nodes(other)).to_have_count(2)
    expect(canvas_connections(other)).to_have_count(1)
    expect(other.locator(".drawflow-node[aria-selected=true]")).to_have_count(2)
    doc = stored(other, server, target)
    assert links(doc) == {("Manual Trigger", "Delay")}
    assert by_name(doc, "Delay")["config"]["seconds"] == 7
    assert by_name(doc, "Delay")["position"] == {"x": 340, "y": 120}
    assert not {n["id"] for n in doc["nodes"]} & {a.node_id, b.node_id}
    history_sizes(other, 1, 0)
    other.keyboard.press("Control+z")
    expect(canvas_nodes(other)).to_have_count(0)
    assert stored(other, server, target)["nodes"] == []
    other.keyboard.press("Control+y")
    expect(canvas_nodes(other)).to_have_count(2)
    other.reload()
    expect(canvas_nodes(other)).to_have_count(2)
    expect(canvas_connections(other)).to_have_count(1)

    # Pasting back into the source: unique names, offset positions.
    page.keyboard.press("Control+v")
    expect(canvas_nodes(page)).to_have_count(4)
    names = {n["name"] for n in stored(page, server, source)["nodes"]}
    assert names == {"Manual Trigger", "Delay", "Manual Trigger 2", "Delay 2"}
    no_js_errors(page_errors)


BAD_PASTES = [
    ("just some text", "Not a Patchwire workflow"),
    ('{"hello": "world"}', "Not a Patchwire workflow: Object contains unknown field hello"),
    ('{"name": "x", "nodes": [{"id": "a", "type": "teleport", "name": "Beam"}]}', "unknown node type 'teleport'"),
    ('{"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A"}], '
     '"connections": [{"source": "a", "target": "ghost"}]}', "refers to a node that does not exist: 'ghost'"),
    ('{"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A"}, {"id": "a", "type": "delay", "name": "B"}]}',
     "Duplicate node id 'a'"),
    (json.dumps({"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A", "config": {"pad": "x" * 1_100_000}}]}),
     "Too large: the pasted text is"),
]


def test_bad_pastes_show_a_precise_message_and_change_nothing(page: Page, server: Server,
                                                              page_errors: PageErrors) -> None:
    wid = start(page, server)
    drop_node(page, "delay", 60, 80)
    click_empty_canvas(page)
    before = stored(page, server, wid)
    for text, message in BAD_PASTES:
        page.evaluate("(text) => navigator.clipboard.writeText(text)", text)
        with page.expect_response(lambda r: r.url.endswith("/paste")) as answer:
            page.keyboard.press("Control+v")
        assert answer.value.status == 422
        expect(page.locator("#flash")).to_contain_text("Nothing was pasted")
        expect(page.locator("#flash")).to_contain_text(message)
        expect(canvas_nodes(page)).to_have_count(1)
        history_sizes(page, 1, 0)
        assert stored(page, server, wid) == before
        page.locator("#flash .alert").click()
        expect(page.locator("#flash")).to_be_empty()
    no_js_errors(page_errors)


# --- align and auto-layout -------------------------------------------------------------------------------
def test_align_and_auto_layout_save_positions_in_one_step(page: Page, server: Server,
                                                          page_errors: PageErrors) -> None:
    wid = start(page, server)
    a = drop_node(page, "manual_trigger", 600, 300)
    b = drop_node(page, "delay", 80, 40)
    c = drop_node(page, "delay", 340, 420)
    drag_connection(page, a, "output_1", b, "input_1")
    drag_connection(page, b, "output_1", c, "input_1")
    click_empty_canvas(page)
    history_sizes(page, 5, 0)
    before = {k: n["position"] for k, n in stored_nodes(page, server, wid).items()}

    with page.expect_response(lambda r: r.url.endswith("/positions")) as saved:
        page.locator("#arrange-menu > summary").click()  # the toolbar's "Arrange" menu
        page.get_by_role("button", name="Auto-layout").click()
    assert saved.value.status == 204
    history_sizes(page, 6, 0)
    after = {k: n["position"] for k, n in stored_nodes(page, server, wid).items()}
    assert after != before
    # left to right along the wires, each rank to the right of the previous one
    assert after[a.node_id]["x"] < after[b.node_id]["x"] < after[c.node_id]["x"], after
    for node in (a, b, c):
        expect(node_of(page, node.node_id)).to_have_css("left", f"{after[node.node_id]['x']:g}px")

    page.keyboard.press("Control+z")  # the whole layout is one step
    history_sizes(page, 5, 1)
    assert {k: n["position"] for k, n in stored_nodes(page, server, wid).items()} == before

    # Align the selection's left edges; the other node stays.
    page.locator(f"#node-{b.df_id} .pw-node-type").click(modifiers=["Shift"])
    page.locator(f"#node-{c.df_id} .pw-node-type").click(modifiers=["Shift"])
    page.locator("#arrange-menu > summary").click()  # the toolbar's "Arrange" menu
    page.get_by_role("button", name="Align left").click()
    history_sizes(page, 6, 0)
    page.reload()
    expect(canvas_nodes(page)).to_have_count(3)
    nodes = stored_nodes(page, server, wid)
    assert nodes[b.node_id]["position"]["x"] == nodes[c.node_id]["position"]["x"] == 80
    assert nodes[a.node_id]["position"] == before[a.node_id]
    no_js_errors(page_errors)
