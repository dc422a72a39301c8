"""A new user's first workflow, end to end, in a real browser against a real server.

Register → create a workflow → drag five nodes from the palette → configure them in the htmx
panel → wire them by mouse (and see a cycle refused) → reload (the graph persisted) → Run and
watch every status badge change live over the WebSocket → open the execution page and find the
loopback server's answer. Runs once per server profile (see ``conftest.server``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

if TYPE_CHECKING:  # fixtures' types; conftest is not imported at run time
    from conftest import PageErrors, Server, Sink

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 30_000  # ms: bound for each live status change

CONDITION = {"field": "body.ok", "type": "boolean", "operator": "is_true"}


@dataclass
class CanvasNode:
    df_id: str    # Drawflow's id: the DOM element is #node-<df_id>
    node_id: str  # the node row's id: the badge is #status-<node_id>


# --- small helpers ---------------------------------------------------------------------------
def register(page: Page, base: str, prefix: str = "e2e") -> None:
    """A new account (a fresh email each time), ending on the empty workflows list."""
    page.goto(f"{base}/register")
    page.get_by_label("Email").fill(f"{prefix}-{uuid.uuid4().hex[:10]}@example.com")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{base}/workflows")


def create_workflow(page: Page, base: str, name: str) -> int:
    """From the workflows list: a new workflow, its editor open; its id."""
    page.get_by_label("New workflow name").fill(name)
    page.get_by_role("button", name="Create workflow").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/workflows/\d+$"))
    wait_for_editor(page)
    return int(page.url.rsplit("/", 1)[1])


EDITOR_READY = "() => document.readyState === 'complete' && !!window.patchwireEditorHooks && !!window.patchwireLayout"


def wait_for_editor(page: Page) -> None:
    """Wait until every editor script has run (they are deferred; the last ones set these globals).

    The page's server-rendered markup is there before: a click or key press on it before then finds no
    handler and is lost. Call this after anything that loads the editor page (create, goto, reload)."""
    page.wait_for_function(EDITOR_READY)


def canvas_nodes(page: Page) -> Locator:
    return page.locator("#canvas .drawflow-node")


def canvas_connections(page: Page) -> Locator:
    return page.locator("#canvas svg.connection")


def drop_node(page: Page, type_name: str, x: int, y: int) -> CanvasNode:
    """Drag a palette item onto the canvas at (x, y) (canvas pixels); return the new node's ids."""
    before = canvas_nodes(page).count()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/nodes")) as created:
        page.locator(f'.palette-item[data-type="{type_name}"]').drag_to(
            page.locator("#canvas"), target_position={"x": x, "y": y})
    assert created.value.status == 201, created.value.text()
    expect(canvas_nodes(page)).to_have_count(before + 1)
    node = canvas_nodes(page).nth(before)
    df_id = node.get_attribute("id").removeprefix("node-")
    node_id = node.get_attribute("data-node-id")
    assert node_id, "the editor tags each Drawflow node with its row id"
    # The editor opens the new node's settings at once.
    expect(page.locator(f'#panel form.node-form[data-node-id="{node_id}"]')).to_be_visible()
    box = node.bounding_box()
    canvas_box = page.locator("#canvas").bounding_box()
    assert abs(box["x"] - canvas_box["x"] - x) <= 2 and abs(box["y"] - canvas_box["y"] - y) <= 2, \
        "the node lands where it was dropped"
    return CanvasNode(df_id, node_id)


def open_config(page: Page, node: CanvasNode) -> Locator:
    """Click the node on the canvas; the htmx panel loads its settings form."""
    form = select_node(page, page.locator(f"#node-{node.df_id}"), node.node_id)
    expect(page.locator(f"#node-{node.df_id}")).to_have_class(re.compile(r"\bselected\b"))
    return form


REPLACED = "data-e2e-replaced"


def select_node(page: Page, canvas_node: Locator, node_id: str) -> Locator:
    """Click a node on the canvas (by its type label) and return the settings form that the click loads.

    The panel may already show a form of this node (the editor opens a new node's settings at once;
    a save renders the form again) and the click replaces it when the GET answers: a locator for "the
    node's form" would match the old one, and what a test typed into it would be thrown away with it.
    So the forms showing now are marked first, and the form returned is the one without the mark.
    Clicking a node that is already selected loads nothing (Drawflow fires no event): its form is kept."""
    current = page.locator(f'#panel form.node-form[data-node-id="{node_id}"]')
    if "selected" in (canvas_node.get_attribute("class") or "").split() and current.count() == 1:
        canvas_node.locator(".pw-node-type").click()
        return current
    page.evaluate("(mark) => document.querySelectorAll('#panel form.node-form').forEach(f => f.setAttribute(mark, ''))",
                  REPLACED)
    with page.expect_response(lambda r: r.request.method == "GET" and r.url.endswith(f"/nodes/{node_id}")):
        canvas_node.locator(".pw-node-type").click()
    form = page.locator(f'#panel form.node-form[data-node-id="{node_id}"]:not([{REPLACED}])')
    expect(form).to_be_visible()
    return form


def save(page: Page, form: Locator) -> None:
    node_id = form.get_attribute("data-node-id")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(f"/nodes/{node_id}")) as saved:
        form.get_by_role("button", name="Save").click()
    assert saved.value.status == 200, saved.value.text()
    expect(page.locator("#panel .node-save-state[data-state=saved]")).to_have_text("Saved")
    expect(page.locator("#panel .field-error")).to_have_count(0)


def drag_connection(page: Page, source: CanvasNode, output: str, target: CanvasNode, input_: str) -> Any:
    """Draw a connection with the mouse; return the server's response to the save."""
    start = page.locator(f"#node-{source.df_id} .outputs .{output}").bounding_box()
    end = page.locator(f"#node-{target.df_id} .inputs .{input_}").bounding_box()
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/connections")) as saved:
        page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
        page.mouse.down()
        page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=10)
        page.mouse.up()
    return saved.value


def connection(page: Page, source: CanvasNode, output: str, target: CanvasNode, input_: str) -> Locator:
    return page.locator(f"#canvas svg.connection.node_out_node-{source.df_id}.node_in_node-{target.df_id}"
                        f".{output}.{input_}")


def exported_graph(page: Page) -> tuple[set[str], set[tuple[str, str, str, str]]]:
    """Node row ids and (source, output class, target, input class) links from Drawflow's export()."""
    data = page.evaluate("() => window.patchwireEditor.export().drawflow.Home.data")
    row = {df_id: node["data"]["node_id"] for df_id, node in data.items()}
    links = {(row[df_id], out_cls, row[c["node"]], c["output"])
             for df_id, node in data.items() for out_cls, port in node["outputs"].items()
             for c in port["connections"]}
    return set(row.values()), links


WIRE_OFFSETS_JS = """() => {
  // For every drawn connection: how far its path's ends are from the centres of the two ports.
  const editor = window.patchwireEditor, pc = editor.precanvas.getBoundingClientRect();
  const centre = (el) => { const r = el.getBoundingClientRect();
    return [(r.x + r.width / 2 - pc.x) / editor.zoom, (r.y + r.height / 2 - pc.y) / editor.zoom]; };
  return [...document.querySelectorAll('#canvas svg.connection')].map((svg) => {
    const [, inNode, outNode, outCls, inCls] = [...svg.classList];
    const nums = svg.querySelector('.main-path').getAttribute('d').match(/-?[0-9.]+/g).map(Number);
    const [sx, sy] = centre(document.querySelector(`#${outNode.slice(9)} .outputs .${outCls}`));
    const [ex, ey] = centre(document.querySelector(`#${inNode.slice(8)} .inputs .${inCls}`));
    const [x1, y1, x2, y2] = [nums[0], nums[1], nums[nums.length - 2], nums[nums.length - 1]];
    return Math.max(Math.abs(x1 - sx), Math.abs(y1 - sy), Math.abs(x2 - ex), Math.abs(y2 - ey));
  });
}"""


def assert_wires_attached(page: Page) -> None:
    """Every connection's path starts and ends on its ports (no wire left behind when a node resizes).

    Polled per animation frame for a moment: the editor redraws wires from a ResizeObserver,
    which runs in the frame after a badge changed a node's size.
    """
    try:
        page.wait_for_function(f"() => {{ const o = ({WIRE_OFFSETS_JS})(); return o.length && Math.max(...o) <= 2; }}",
                               polling="raf", timeout=2_000)
    except PlaywrightTimeoutError:
        raise AssertionError(f"connection ends are off their ports by {page.evaluate(WIRE_OFFSETS_JS)} px") from None


def status(page: Page, node: CanvasNode) -> Locator:
    return page.locator(f"#node-{node.df_id} #status-{node.node_id}")


# --- the test -------------------------------------------------------------------------------
def test_new_user_builds_and_runs_a_workflow(page: Page, server: Server, fresh_sink: Sink,
                                             page_errors: PageErrors, docs_shot: Any) -> None:
    sink = fresh_sink
    base = server.url

    # 1. Register, land on the (empty) workflows list, create a workflow. -------------------------
    register(page, base)
    expect(page.locator("#workflows")).to_contain_text("No workflows yet")
    create_workflow(page, base, "Greet the sink")
    expect(page.locator(".wf-title")).to_have_text("Greet the sink")
    editor_url = page.url

    # 2. Drag nodes from the palette, configure each one in the panel. ----------------------------
    trigger = drop_node(page, "manual_trigger", 20, 60)
    http = drop_node(page, "http_request", 250, 60)
    branch = drop_node(page, "if", 480, 60)
    shout = drop_node(page, "set", 730, 20)
    not_ok = drop_node(page, "set", 730, 230)

    # Running the unfinished workflow is refused; the run panel and the badges say why.
    with page.expect_response(lambda r: r.url.endswith("/run")) as refused:
        page.get_by_role("button", name="Run", exact=True).click()
    assert refused.value.status == 422
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "invalid")
    expect(run_status).to_contain_text("HTTP Request: url: This field is required.")
    expect(run_status).to_contain_text("If: conditions: This field is required.")
    expect(status(page, http)).to_have_attribute("data-status", "invalid")
    expect(status(page, branch)).to_have_attribute("data-status", "invalid")
    for node in (trigger, shout, not_ok):
        expect(status(page, node)).to_have_attribute("data-status", "idle")
        expect(status(page, node)).to_be_hidden()

    form = open_config(page, trigger)
    expect(form.locator("h2")).to_have_text("Manual Trigger")

    form = open_config(page, http)
    form.locator("#cfg-url").fill(f"{sink.url}/greet?from=patchwire")
    expect(form.locator("#cfg-method")).to_have_value("GET")
    save(page, form)

    form = open_config(page, branch)
    form.get_by_role("button", name="Add condition").click()  # the condition builder: one row
    row = form.locator("li.condition-row")
    row.get_by_label("Field", exact=True).fill(CONDITION["field"])
    row.get_by_label("Type", exact=True).select_option(CONDITION["type"])
    row.get_by_label("Operator", exact=True).select_option(CONDITION["operator"])
    save(page, form)

    form = open_config(page, shout)
    form.locator("#node-name").fill("Shout")
    form.locator('input[name="fields.name"]').first.fill("greeting_upper")
    form.locator('input[name="fields.value"]').first.fill("{{ item.body.greeting | upper }}")
    save(page, form)
    expect(page.locator(f"#title-{shout.node_id}")).to_have_text("Shout")  # OOB swap renamed it on the canvas

    form = open_config(page, not_ok)
    form.locator("#node-name").fill("Not ok")
    form.locator('input[name="fields.name"]').first.fill("note")
    form.locator('input[name="fields.value"]').first.fill("the sink said no")
    save(page, form)
    expect(page.locator(f"#title-{not_ok.node_id}")).to_have_text("Not ok")

    # Saved values survive reopening the panel.
    form = open_config(page, branch)
    expect(form.locator("li.condition-row .condition-field")).to_have_value("body.ok")
    expect(form.locator("li.condition-row .condition-operator")).to_have_value("is_true")

    # 3. Wire the ports with the mouse. -----------------------------------------------------------
    wires = [(trigger, "output_1", http, "input_1"), (http, "output_1", branch, "input_1"),
             (branch, "output_1", shout, "input_1"), (branch, "output_2", not_ok, "input_1")]
    for wire in wires:
        response = drag_connection(page, *wire)
        assert response.status == 201, response.text()
        expect(connection(page, *wire)).to_have_count(1)
    expect(canvas_connections(page)).to_have_count(4)
    expect(page.locator("#save-state")).to_have_text("Saved")
    assert_wires_attached(page)

    # A loop back (Shout → HTTP Request) is refused by the server and removed from the canvas.
    response = drag_connection(page, shout, "output_1", http, "input_1")
    assert response.status == 422
    expect(page.locator("#flash")).to_contain_text("cycle")
    expect(page.locator("#save-state")).to_have_text("Not saved")
    expect(connection(page, shout, "output_1", http, "input_1")).to_have_count(0)
    expect(canvas_connections(page)).to_have_count(4)
    page.locator("#flash .alert").click()  # clicking the message dismisses it
    expect(page.locator("#flash")).to_be_empty()

    # Drag "Not ok" 40 px further down by its body; its wires follow and the position is saved.
    grip = page.locator(f"#node-{not_ok.df_id} .pw-node-type").bounding_box()
    with page.expect_response(lambda r: r.url.endswith(f"/nodes/{not_ok.node_id}/position")) as moved:
        page.mouse.move(grip["x"] + 10, grip["y"] + 4)
        page.mouse.down()
        page.mouse.move(grip["x"] + 10, grip["y"] + 44, steps=10)
        page.mouse.up()
    assert moved.value.status == 204
    assert_wires_attached(page)
    position = page.evaluate(f"() => {{ const n = window.patchwireEditor.getNodeFromId({not_ok.df_id});"
                             " return [n.pos_x, n.pos_y]; }")
    assert abs(position[0] - 730) <= 2 and 262 <= position[1] <= 278, position  # Drawflow moves in whole px per step

    # 4. Reload: the graph was saved as it was drawn. ---------------------------------------------
    page.reload()
    expect(canvas_nodes(page)).to_have_count(5)
    expect(canvas_connections(page)).to_have_count(4)
    df_of = {el.get_attribute("data-node-id"): el.get_attribute("id").removeprefix("node-")
             for el in canvas_nodes(page).all()}
    trigger, http, branch, shout, not_ok = (CanvasNode(df_of[n.node_id], n.node_id)
                                            for n in (trigger, http, branch, shout, not_ok))
    for wire in wires:
        expect(connection(page, *wire)).to_have_count(1)
    node_ids, links = exported_graph(page)
    assert node_ids == {n.node_id for n in (trigger, http, branch, shout, not_ok)}
    assert links == {(s.node_id, o, t.node_id, i) for s, o, t, i in wires}
    expect(page.locator(f"#title-{shout.node_id}")).to_have_text("Shout")
    assert page.evaluate(f"() => {{ const n = window.patchwireEditor.getNodeFromId({not_ok.df_id});"
                         " return [n.pos_x, n.pos_y]; }") == [round(position[0]), round(position[1])]
    for node in (trigger, http, branch, shout, not_ok):
        expect(status(page, node)).to_have_attribute("data-status", "idle")
    assert_wires_attached(page)

    # 5. Run, and watch the badges change live (no reload). ---------------------------------------
    sink.hold()  # the HTTP Request node stays "running" until the screenshot is taken
    page.evaluate("() => { window.__sameDocument = true; }")
    page.get_by_role("button", name="Run", exact=True).click()
    run_status = page.locator("#run-status")
    expect(run_status.get_by_role("link")).to_have_text(re.compile(r"^#\d+$"))
    # Mid-run: the trigger is done, the HTTP Request waits for the held sink, the rest is queued.
    expect(status(page, trigger)).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(status(page, http)).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT)
    expect(status(page, shout)).to_have_attribute("data-status", "queued")
    expect(run_status).to_have_attribute("data-status", "running")
    if server.profile == "embedded":
        page.screenshot(path=docs_shot("editor-screenshot.png"))
    sink.release()
    for node, final in ((http, "succeeded"), (branch, "succeeded"), (shout, "succeeded"), (not_ok, "skipped")):
        expect(status(page, node)).to_have_attribute("data-status", final, timeout=RUN_TIMEOUT)
    expect(status(page, trigger)).to_have_attribute("data-status", "succeeded")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(run_status.locator(".exec-status")).to_have_text("succeeded")
    assert_wires_attached(page)  # the badges grew some nodes; the wires followed their ports
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded during the run"
    assert page.url == editor_url

    # The sink got exactly one request, with an Idempotency-Key.
    received = sink.received()
    assert len(received) == 1, received
    request = received[0]
    assert request["method"] == "GET" and request["path"] == "/greet?from=patchwire"
    assert request["headers"].get("idempotency-key"), request["headers"]

    first_execution = run_status.get_by_role("link").get_attribute("href")

    # Run it again in the same page: a new execution, every badge back to queued, then final again.
    page.get_by_role("button", name="Run", exact=True).click()
    expect(run_status.get_by_role("link")).not_to_have_attribute("href", first_execution)
    second_execution = run_status.get_by_role("link").get_attribute("href")
    # workflow.finished comes last on the socket: once the run panel says so, every badge is final.
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    for node, final in ((trigger, "succeeded"), (http, "succeeded"), (branch, "succeeded"),
                        (shout, "succeeded"), (not_ok, "skipped")):
        expect(status(page, node)).to_have_attribute("data-status", final)
    received = sink.received()
    assert len(received) == 2, received
    assert received[1]["headers"].get("idempotency-key") not in (None, request["headers"]["idempotency-key"])
    assert page.evaluate("() => window.__sameDocument === true")

    # 6. The execution page shows each node's input and output. -----------------------------------
    run_status.get_by_role("link").click()
    expect(page).to_have_url(f"{base}{second_execution}")
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "succeeded")
    page.locator("table.node-runs").get_by_role("link", name="HTTP Request", exact=True).click()
    http_output = page.locator('#node-panel .node-output[data-node-name="HTTP Request"]')
    expect(http_output).to_be_visible()
    expect(http_output).to_contain_text("hello from the sink")
    expect(http_output).to_contain_text("ok: true")
    page.locator("table.node-runs").get_by_role("link", name="Shout", exact=True).click()
    expect(page.locator('#node-panel .node-output[data-node-name="Shout"]')).to_contain_text("HELLO FROM THE SINK")
    runs = page.locator("table.node-runs tr[id^=run-]")
    expect(runs).to_have_count(5)
    expect(page.locator('table.node-runs tr:has(td > a:text-is("Not ok")) .exec-status')).to_have_text("skipped")

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    # Expected: the refused run and the refused cycle (422).
    unexpected = [m for m in page_errors.console_errors
                  if not m.startswith("Failed to load resource: the server responded with a status of 422")]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
