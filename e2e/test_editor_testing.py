"""Test while building, in a real browser against a real ``patchwire serve`` (embedded profile).

A person runs up to a node and watches the badges, reads the node's output as a JSON tree, pins it (the
canvas shows a pin), edits the pin as JSON, runs one node alone on the pinned data, and types an
expression whose preview follows. Assertions are on the DOM and on the stored rows (the server's SQLite).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register, select_node

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000


def stored(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    path = Path(server.env["PATCHWIRE_DATA_DIR"]) / "patchwire.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


class Api:
    """The editor's own endpoints, called with the page's session: builds the workflow quickly."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base

    def post(self, url: str, form: dict[str, str] | None = None) -> Any:
        token = self.page.locator("meta[name=csrf-token]").get_attribute("content")
        response = self.page.request.post(f"{self.base}{url}", form=form or {},
                                          headers={"X-CSRFToken": token, "HX-Request": "true"})
        assert response.ok, response.text()
        return response

    def add_node(self, wid: int, type_name: str, x: int, y: int) -> str:
        html = self.post(f"/workflows/{wid}/nodes", {"type": type_name, "x": str(x), "y": str(y)}).text()
        return re.search(r'data-node-id="([0-9a-f]+)"', html).group(1)

    def connect(self, wid: int, source: str, target: str, port: str = "main") -> None:
        self.post(f"/workflows/{wid}/connections", {"source": source, "target": target, "source_port": port,
                                                    "target_port": "main"})


def build(page: Page, base: str) -> tuple[int, dict[str, str]]:
    register(page, base)
    wid = create_workflow(page, base, "Test while building")
    api = Api(page, base)
    ids = {"t": api.add_node(wid, "manual_trigger", 20, 60), "a": api.add_node(wid, "set", 240, 60),
           "b": api.add_node(wid, "set", 460, 60), "c": api.add_node(wid, "set", 680, 60)}
    for key, name, field, value in [("a", "A", "a", "{{ 1 }}"), ("b", "B", "b", "{{ item.a + 1 }}"),
                                    ("c", "C", "c", "{{ item.b * 10 }}")]:
        api.post(f"/workflows/{wid}/nodes/{ids[key]}", {"name": name, "fields.name": field, "fields.value": value,
                                                        "keep_existing": "on"})
    for source, target in [("t", "a"), ("a", "b"), ("b", "c")]:
        api.post(f"/workflows/{wid}/connections", {"source": ids[source], "target": ids[target],
                                                   "source_port": "main", "target_port": "main"})
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(4)
    return wid, ids


def select(page: Page, node_id: str) -> None:
    select_node(page, page.locator(f'#canvas .drawflow-node[data-node-id="{node_id}"]'), node_id)
    expect(page.locator(f'#node-data[data-node-id="{node_id}"]')).to_be_attached()


def status(page: Page, node_id: str) -> Any:
    return page.locator(f"#status-{node_id}")


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_person_tests_while_building(page: Page, server: Server, page_errors: PageErrors) -> None:
    base = server.url
    wid, ids = build(page, base)
    run_status = page.locator("#run-status")

    # 1. Run up to B, from the keyboard: A and the trigger run, C is left alone; badges change live. ---------
    select(page, ids["b"])
    page.get_by_role("button", name="Run up to this node").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#run-test-label")).to_have_text("Test run up to “B”")
    for key in "tab":
        expect(status(page, ids[key])).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(status(page, ids["c"])).to_have_attribute("data-status", "idle")
    expect(status(page, ids["c"])).to_be_hidden()
    execution_id = int(re.search(r"\d+", run_status.get_by_role("link").inner_text()).group())
    assert stored(server, "SELECT node_id, status FROM node_runs WHERE execution_id = ? ORDER BY id", execution_id) == [
        (ids["t"], "succeeded"), (ids["a"], "succeeded"), (ids["b"], "succeeded")]

    # 2. The panel's data was refreshed when the run finished: B's output, shown as a tree (the JSON view). ----
    expect(page.locator("#node-data .data-source")).to_contain_text(f"#{execution_id}", timeout=RUN_TIMEOUT)
    page.locator("#node-data .view-switch").get_by_role("button", name="JSON").click()
    expect(page.locator('#node-data[data-view="json"]')).to_be_attached()
    output = page.locator("#node-data .last-output")
    expect(output).to_contain_text("b: 2", timeout=RUN_TIMEOUT)
    expect(output.locator(".jt-key", has_text="b")).to_have_count(1)
    expect(output.locator(".jt-num")).to_have_text(["1", "2"])
    expect(page.locator("#node-data .data-source")).to_contain_text(f"#{execution_id}")

    # 3. Pin B's last output: the canvas shows a pin with an accessible name; the row holds it. --------------
    pin = page.locator(f'#canvas .drawflow-node[data-node-id="{ids["b"]}"]').get_by_role("img", name=re.compile("Output pinned"))
    expect(pin).to_have_count(0)
    page.get_by_role("button", name="Pin output").click()
    expect(pin).to_be_visible()
    expect(page.locator("#node-data .pinned-output")).to_contain_text("Pinned output")
    assert json.loads(stored(server, "SELECT pinned_output FROM nodes WHERE id = ?", ids["b"])[0][0]) == \
        {"main": [{"a": 1, "b": 2}]}

    # A bad pin is refused with the reason; the good one is kept.
    page.get_by_text("Pin JSON you type or paste").click()
    page.get_by_label("Pinned output (JSON: output name → list of items)").fill('{"main": [7]}')
    page.get_by_role("button", name="Pin output").click()
    expect(page.locator("#flash")).to_contain_text("Output “main”, item 1 must be a JSON object, not int")
    page.locator("#flash .alert").click()  # clicking the message dismisses it
    expect(page.locator("#flash")).to_be_empty()
    # Typed JSON (with markup in a string, shown as text), then saved as the pin.
    page.get_by_label("Pinned output (JSON: output name → list of items)").fill(
        '{"main": [{"a": 1, "b": 7, "note": "<script>window.__pwned = 1</script>"}]}')
    page.get_by_role("button", name="Pin output").click()
    pinned = page.locator("#node-data .pinned-output")
    expect(pinned).to_contain_text('"<script>window.__pwned = 1</script>"')
    assert page.evaluate("() => window.__pwned === undefined")
    assert json.loads(stored(server, "SELECT pinned_output FROM nodes WHERE id = ?", ids["b"])[0][0])["main"][0]["b"] == 7

    # 4. Run C alone: it is fed B's pin, nothing else runs. ----------------------------------------------
    select(page, ids["c"])
    expect(page.locator("#node-data")).to_contain_text("No run data yet")
    page.get_by_role("button", name="Run this node").click()
    expect(page.locator("#run-test-label")).to_have_text("Test run of “C” alone")
    expect(status(page, ids["c"])).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    second = int(re.search(r"\d+", run_status.get_by_role("link").inner_text()).group())
    c_out = stored(server, "SELECT output FROM node_runs WHERE execution_id = ? AND node_id = ?", second, ids["c"])
    assert json.loads(c_out[0][0])["main"][0]["c"] == 70
    expect(page.locator("#node-data .last-output .jt-num")).to_contain_text(["1", "7", "70"], timeout=RUN_TIMEOUT)

    # 5. Type an expression in C's field: its {{ }} part is marked and its value previewed from C's last input.
    field = page.locator('#panel form.node-form input[name="fields.value"]').first
    preview = page.locator("#panel output.expr-preview").nth(0)
    field.fill("b+1 = {{ item.b + 1 }}")
    expect(preview.locator("mark.expr")).to_have_text("{{ item.b + 1 }}")
    expect(preview.locator(".expr-value code")).to_have_text("b+1 = 8")
    field.fill("{{ item.nope.deeper }}")
    expect(preview.get_by_role("alert")).to_contain_text("“C”, field “fields.value”, expression {{ item.nope.deeper }}")
    assert field.evaluate("el => el.tagName") == "INPUT"  # the real field stays a plain input

    # 6. Unpin: the badge goes away, the row is cleared.
    select(page, ids["b"])
    page.get_by_role("button", name="Unpin").click()
    expect(pin).to_have_count(0)
    assert stored(server, "SELECT pinned_output FROM nodes WHERE id = ?", ids["b"])[0][0] is None

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    unexpected = [m for m in page_errors.console_errors
                  if not m.startswith("Failed to load resource: the server responded with a status of 422")]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
