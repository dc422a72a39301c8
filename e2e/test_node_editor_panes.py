"""The node editor's three panes, in a real browser against a real ``patchwire serve`` (embedded profile).

A person opens a node that has no input yet, runs the previous nodes from its input pane, runs the node,
reads its input as a table, a JSON tree and a schema (each field carrying the expression that reaches it),
shows an earlier node's output, reads the output, and closes the editor with Escape.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register, select_node
from test_editor_testing import Api

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000


def build(page: Page, base: str) -> tuple[int, dict[str, str]]:
    """Trigger → A (a = 1, user.name = "Ada") → B (b = a + 1)."""
    register(page, base)
    wid = create_workflow(page, base, "Node editor panes")
    api = Api(page, base)
    ids = {"t": api.add_node(wid, "manual_trigger", 20, 60), "a": api.add_node(wid, "set", 240, 60),
           "b": api.add_node(wid, "set", 460, 60)}
    api.post(f"/workflows/{wid}/nodes/{ids['a']}", {"name": "A", "fields.name": "a", "fields.value": "{{ 1 }}",
                                                   "keep_existing": "on"})
    api.post(f"/workflows/{wid}/nodes/{ids['b']}", {"name": "B", "fields.name": "b", "fields.value": "{{ item.a + 1 }}",
                                                   "keep_existing": "on"})
    for source, target in [("t", "a"), ("a", "b")]:
        api.post(f"/workflows/{wid}/connections", {"source": ids[source], "target": ids[target],
                                                   "source_port": "main", "target_port": "main"})
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(3)
    return wid, ids


def finished_run(page: Page, label: str) -> int:
    expect(page.locator("#run-test-label")).to_have_text(label)  # the new run's panel, not the last one's
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    return int(re.search(r"\d+", run_status.get_by_role("link").inner_text()).group())


def view(page: Page, box: str, name: str) -> Any:
    """Switch a pane's data to a view; the pane is swapped: wait for the new one."""
    page.locator(f"{box} .view-switch").get_by_role("button", name=name, exact=True).click()
    return expect(page.locator(f'{box}[data-view="{name.lower()}"]')).to_be_visible()


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_person_reads_a_nodes_input_and_output_in_three_panes(page: Page, server: Server, page_errors: PageErrors,
                                                                 docs_shot: Any) -> None:
    wid, ids = build(page, server.url)
    select_node(page, page.locator(f'#canvas .drawflow-node[data-node-id="{ids["b"]}"]'), ids["b"])
    editor = page.locator("#node-editor")
    expect(editor).to_be_visible()
    wide = editor.get_by_role("button", name="Wide", exact=True)
    if wide.get_attribute("aria-pressed") != "true":  # the e2e browser starts in the side column (conftest.py)
        wide.click()
    expect(wide).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#editor-root.ne-wide")).to_be_attached()
    for name in ("Input", "Parameters", "Output"):
        expect(editor.get_by_role("region", name=name)).to_be_visible()
    inputs = page.locator("#input-data-box")

    # 1. No input yet: "Run the previous nodes" runs up to A; the input pane fills with A's output. ------------
    expect(inputs).to_contain_text("No input data yet")
    expect(page.locator("#node-data")).to_contain_text("No run data yet")
    inputs.get_by_role("button", name="Run the previous nodes").click()
    first = finished_run(page, "Test run up to “A”")
    expect(inputs.locator(".data-source")).to_contain_text(f"#{first}", timeout=RUN_TIMEOUT)
    expect(inputs.locator("table.dv-table th.dv-col")).to_have_text(["a"])
    expect(inputs.locator("table.dv-table td.dv-cell")).to_have_text(["1"])

    # 2. Run this node: its output shows the result; its input is its last run's input. ----------------------
    page.locator(".ne-output").get_by_role("button", name="Run this node").click()
    second = finished_run(page, "Test run of “B” alone")
    output = page.locator("#node-data")
    expect(output.locator(".data-source")).to_contain_text(f"#{second}", timeout=RUN_TIMEOUT)
    expect(inputs.locator(".data-source")).to_contain_text(f"last run’s input, execution #{second}",
                                                           timeout=RUN_TIMEOUT)
    expect(output.locator("table.dv-table th.dv-col")).to_have_text(["a", "b"])
    expect(output.locator("table.dv-table td.dv-cell")).to_have_text(["1", "2"])
    expect(output.locator("th.dv-col", has_text="b")).to_have_attribute("data-expr", 'nodes["B"][0].b')

    # 3. The input as a table, a JSON tree and a schema: every field is draggable with its expression. --------
    column = inputs.locator("th.dv-col", has_text="a")
    expect(column).to_have_attribute("data-expr", "item.a")
    expect(column).to_have_attribute("draggable", "true")
    view(page, "#input-data-box", "JSON")
    expect(inputs.locator(".json-tree .jt-key", has_text="a")).to_have_attribute("data-expr", "item.a")
    view(page, "#input-data-box", "Schema")
    field = inputs.locator(".dv-schema .dv-field", has_text="a")
    expect(field).to_have_attribute("data-expr", "item.a")
    expect(inputs.locator(".dv-schema .dv-type")).to_have_text(["number"])
    page.screenshot(path=docs_shot("node-editor.png"))

    # The chosen view is remembered: the output pane, loaded again, keeps its own (Table); the input keeps Schema.
    view(page, "#node-data", "JSON")
    expect(output.locator(".json-tree .jt-key", has_text="b")).to_have_attribute("data-expr", 'nodes["B"][0].b')

    # 4. An earlier node's output, as expressions reach it (nodes["A"]). ---------------------------------------
    inputs.get_by_label("Data shown in the input pane").select_option(label="Output of “A”")
    expect(inputs).to_have_attribute("data-source", ids["a"])
    expect(inputs.locator(".dv-schema .dv-field", has_text="a")).to_have_attribute("data-expr", 'nodes["A"][0].a')

    # 5. Escape closes the editor; the canvas is as it was; a click on the node opens it again. ---------------
    page.locator("#node-name").focus()
    page.keyboard.press("Escape")
    expect(editor).to_be_hidden()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(3)
    expect(page.locator("#panel .ne-closed")).to_be_visible()
    page.locator("#panel .ne-closed").get_by_role("button").click()
    expect(editor).to_be_visible()
    expect(inputs.locator(".dv-schema")).to_be_visible()
    page.locator(".ne-close").click()
    expect(editor).to_be_hidden()
    assert not page_errors.page_errors and not page_errors.console_errors, page_errors
