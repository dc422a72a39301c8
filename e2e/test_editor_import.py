"""Importing workflows in a real browser: upload through the file chooser, paste JSON, an n8n file
with its report, a bad file refused (nothing created), and markup in a node name shown as text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import register, wait_for_editor

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("server", ["embedded"], indirect=True)]

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "n8n"
XSS = "<img src=x onerror=alert(1)>"


def document(name: str) -> dict[str, object]:
    return {"format": "patchwire.workflow", "name": name, "nodes": [
        {"id": "start", "type": "manual_trigger", "name": XSS, "position": {"x": 40, "y": 80}},
        {"id": "greet", "type": "set", "name": "Greet", "position": {"x": 300, "y": 80},
         "config": {"fields": [{"name": "hello", "value": "{{ item.name }}"}]}}],
        "connections": [{"source": "start", "target": "greet"}]}


def open_import(page: Page, where: str) -> None:
    if where == "editor":  # the editor's Import is in the toolbar's "More" menu
        page.locator("#toolbar-more > summary").click()
    page.locator(f"#import-{where} > summary").click()
    expect(page.locator(f"#import-{where} .import-body")).to_be_visible()


def expect_editor(page: Page, base: str, nodes: int, wires: int) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/workflows/\d+$"))
    wait_for_editor(page)
    expect(page.locator("#canvas .drawflow-node")).to_have_count(nodes)
    expect(page.locator("#canvas svg.connection")).to_have_count(wires)


def test_upload_through_the_file_chooser_and_markup_stays_text(page: Page, server: Server, tmp_path: Path,
                                                                page_errors: PageErrors) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    register(page, server.url)
    path = tmp_path / "greet.json"
    path.write_text(json.dumps(document("Uploaded")))
    open_import(page, "list")
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Workflow file").first.click()
    chooser.value.set_files(str(path))
    page.locator("#import-list").get_by_role("button", name="Import file").click()
    expect_editor(page, server.url, nodes=2, wires=1)
    expect(page.locator("#import-report")).to_contain_text("2 nodes and 1 connection imported")
    name = page.locator("#canvas .pw-node-name").filter(has_text="onerror")
    expect(name).to_have_text(XSS)  # the markup is the node's text…
    assert page.locator("#canvas img, #import-report img, #panel img").count() == 0  # …never an element
    name.click()
    expect(page.locator("#panel form.node-form input[name=name]")).to_have_value(XSS)
    assert dialogs == [] and not page_errors.page_errors


def test_paste_json_from_the_editor_toolbar(page: Page, server: Server) -> None:
    register(page, server.url)
    page.get_by_label("New workflow name").fill("Where I was")
    page.get_by_role("button", name="Create workflow").click()
    expect(page.locator(".wf-title")).to_have_text("Where I was")
    first = page.url
    open_import(page, "editor")
    page.locator("#import-text-editor").fill(json.dumps(document("Pasted flow")))
    page.locator("#import-editor").get_by_role("button", name="Import pasted JSON").click()
    expect(page.locator(".wf-title")).to_have_text("Pasted flow")
    assert page.url != first
    expect_editor(page, server.url, nodes=2, wires=1)


def test_n8n_file_is_imported_and_the_report_shows_what_was_not_mapped(page: Page, server: Server) -> None:
    register(page, server.url)
    open_import(page, "list")
    form = page.locator("#import-list form").first
    form.locator("input[type=file]").set_input_files(str(FIXTURES / "orders_http_if.json"))
    form.get_by_label("Format").select_option("n8n")
    form.get_by_role("button", name="Import file").click()
    expect_editor(page, server.url, nodes=5, wires=4)
    report = page.locator("#import-report")
    expect(report).to_contain_text("Imported (n8n format)")
    expect(page.locator("#import-mapped tbody tr")).to_have_count(6)  # five nodes, and the sticky note as a note
    expect(page.locator("#import-mapped")).to_contain_text("Sticky Note")
    expect(page.locator("#import-skipped")).to_contain_text("Tell Slack: n8n-nodes-base.slack has no Patchwire equivalent")
    expect(page.locator("#import-expressions")).to_contain_text("={{ $now.toISO() }}")
    expect(page.locator("#import-connections")).to_contain_text("dropped because 'Tell Slack' was not imported")


def test_a_bad_file_shows_the_message_and_creates_nothing(page: Page, server: Server, tmp_path: Path) -> None:
    register(page, server.url)
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps({"name": "Broken", "nodes": [{"id": "a", "type": "set", "name": "A"}],
                               "connections": [{"source": "a", "target": "ghost"}]}))
    open_import(page, "list")
    form = page.locator("#import-list form").first
    form.locator("input[type=file]").set_input_files(str(bad))
    with page.expect_response(lambda r: r.url.endswith("/workflows/import")) as answered:
        form.get_by_role("button", name="Import file").click()
    assert answered.value.status == 422
    expect(page.locator("#import-result-list")).to_contain_text(
        "Connection a.main → ghost.main refers to a node that does not exist: 'ghost'.")
    expect(page).to_have_url(f"{server.url}/workflows")
    page.reload()
    expect(page.locator("#workflows")).to_contain_text("No workflows yet")
