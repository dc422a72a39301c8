"""Mapping data and writing expressions, in a real browser against a real ``patchwire serve`` (embedded profile).

A person runs a Manual trigger → A (Set) → B (Set) workflow up to B, opens B, drags a field of B's input into
a value (the ``{{ item.… }}`` text appears and the preview shows its value), tries to drop one onto a
checkbox (a message, nothing changed), types ``{{ item.`` and picks a field from the completions with the
keyboard, and writes a long expression in the wider editor, which writes it back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Locator, Page, expect
from test_editor_flow import create_workflow, register, select_node

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000


def post(page: Page, base: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """A form post with the page's session (repeated names allowed: a Set node's rows)."""
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    response = page.request.post(f"{base}{url}", data=urlencode(pairs), headers={
        "X-CSRFToken": token, "HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"})
    assert response.ok, response.text()
    return response.text()


def add_node(page: Page, base: str, wid: int, type_name: str, x: int) -> str:
    html = post(page, base, f"/workflows/{wid}/nodes", [("type", type_name), ("x", str(x)), ("y", "60")])
    return re.search(r'data-node-id="([0-9a-f]+)"', html).group(1)


def build(page: Page, base: str) -> tuple[int, dict[str, str]]:
    """Manual trigger → A (name = Ada, city = Paris) → B (greeting = "Hello ", place = "", note = "")."""
    register(page, base)
    wid = create_workflow(page, base, "Mapping")
    ids = {"t": add_node(page, base, wid, "manual_trigger", 20), "a": add_node(page, base, wid, "set", 260),
           "b": add_node(page, base, wid, "set", 500)}
    post(page, base, f"/workflows/{wid}/nodes/{ids['a']}", [
        ("name", "A"), ("fields.name", "name"), ("fields.value", "Ada"), ("fields.name", "city"),
        ("fields.value", "Paris"), ("keep_existing", "on")])
    post(page, base, f"/workflows/{wid}/nodes/{ids['b']}", [
        ("name", "B"), ("fields.name", "greeting"), ("fields.value", "Hello "), ("fields.name", "place"),
        ("fields.value", ""), ("fields.name", "note"), ("fields.value", ""), ("keep_existing", "on")])
    for source, target in [("t", "a"), ("a", "b")]:
        post(page, base, f"/workflows/{wid}/connections", [("source", ids[source]), ("target", ids[target]),
                                                           ("source_port", "main"), ("target_port", "main")])
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(3)
    return wid, ids


def drag(page: Page, source: Locator, target: Locator) -> None:
    """An HTML5 drag from ``source`` to ``target`` with one DataTransfer, as the browser dispatches it.

    The mapping itself is tested with a real mouse drag (``drag_to``); the refused drops use this: the
    drag's events are dispatched with a ``DataTransfer`` made in the page, so the drop lands exactly on a
    checkbox or the name field; the handlers are the ones a real drag runs. Between ``dragover`` and ``drop``
    the valid targets are highlighted."""
    data = page.evaluate_handle("() => new DataTransfer()")
    source.dispatch_event("dragstart", {"dataTransfer": data})
    target.dispatch_event("dragenter", {"dataTransfer": data})
    target.dispatch_event("dragover", {"dataTransfer": data})
    expect(page.locator("#panel.expr-dragging")).to_have_count(1)
    target.dispatch_event("drop", {"dataTransfer": data})
    source.dispatch_event("dragend", {"dataTransfer": data})


def preview_of(page: Page, field: Locator) -> Locator:
    """The preview under a field (it describes the field: aria-describedby)."""
    ids = (field.get_attribute("aria-describedby") or "").split()
    preview_id = next(i for i in ids if i.startswith("expr-preview-"))
    return page.locator(f"#{preview_id}")


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_person_maps_data_and_writes_expressions(page: Page, server: Server, page_errors: PageErrors) -> None:
    base = server.url
    wid, ids = build(page, base)
    node = page.locator(f'#canvas .drawflow-node[data-node-id="{ids["b"]}"]')
    form = select_node(page, node, ids["b"])
    values = form.locator('input[name="fields.value"]')
    expect(values).to_have_count(3)  # the three rows (more come with "Add row")
    greeting, place, note = values.nth(0), values.nth(1), values.nth(2)

    # Before any data: an expression that parses waits quietly; a syntax error is red.
    place.fill("{{ item.city }}")
    expect(preview_of(page, place).locator(".expr-waiting")).to_have_text(
        "no data yet — run the previous nodes to preview")
    expect(preview_of(page, place).get_by_role("alert")).to_have_count(0)
    place.fill("{{ item.city + }}")
    expect(preview_of(page, place).get_by_role("alert")).to_contain_text("syntax error")
    place.fill("")

    # 1. Run up to B: B gets its input, and the input pane shows it (wide layout: the panes side by side). --
    wide = page.locator("#node-editor").get_by_role("button", name="Wide", exact=True)
    if wide.get_attribute("aria-pressed") != "true":  # the e2e browser starts in the side column (conftest.py)
        wide.click()
    expect(wide).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Run up to this node").click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    last_input = page.locator("#input-data-box")
    expect(last_input.locator(".data-source")).to_contain_text("last run’s input", timeout=RUN_TIMEOUT)
    name_key = last_input.locator('[draggable="true"][data-expr="item.name"]').first
    expect(name_key).to_be_visible()

    # 2. Drag the input's "name" into the greeting with the mouse: the expression is inserted at the end of
    # the text, and the preview shows its value.
    greeting.scroll_into_view_if_needed()
    name_key.scroll_into_view_if_needed()
    box = greeting.bounding_box()
    assert box is not None
    name_key.drag_to(greeting, target_position={"x": box["width"] - 4, "y": box["height"] / 2})
    expect(greeting).to_have_value("Hello {{ item.name }}")
    expect(preview_of(page, greeting).locator(".expr-value code")).to_have_text("Hello Ada")
    expect(page.locator("#panel.expr-dragging")).to_have_count(0)  # the highlight ends with the drag

    # From the keyboard: a focused key, Enter, goes to the last expression field at its caret.
    greeting.focus()
    greeting.press("End")
    city_key = last_input.locator('[data-expr="item.city"]').first
    city_key.focus()
    city_key.press("Enter")
    expect(greeting).to_have_value("Hello {{ item.name }}{{ item.city }}")
    expect(page.get_by_role("status").filter(has_text="Inserted")).to_have_text(
        "Inserted {{ item.city }} into “Fields value 1”.")
    expect(preview_of(page, greeting).locator(".expr-value code")).to_have_text("Hello AdaParis")

    # 3. A checkbox cannot take an expression: a message in place, nothing changed. ---------------------------
    keep = form.get_by_label("Keep incoming fields")
    expect(keep).to_be_checked()
    drag(page, name_key, keep)
    message = page.locator("#expr-drop-message")
    expect(message).to_have_text(re.compile("“Keep incoming fields” can’t take an expression: nothing was changed"))
    expect(message).to_have_attribute("role", "alert")
    expect(keep).to_be_checked()
    expect(greeting).to_have_value("Hello {{ item.name }}{{ item.city }}")
    drag(page, name_key, form.get_by_label("Name", exact=True))  # the node's name is not a parameter
    expect(message).to_have_text(re.compile("“Name” can’t take an expression"))
    expect(form.get_by_label("Name", exact=True)).to_have_value("B")

    # 4. Autocomplete: after "{{ item." the item's fields are offered; Enter inserts the chosen one. ---------
    place.click()
    place.press_sequentially("{{ item.")
    listbox = page.get_by_role("listbox", name="Completions")
    expect(listbox).to_be_visible()
    expect(place).to_have_attribute("aria-expanded", "true")
    options = listbox.get_by_role("option")
    expect(options.locator(".expr-option-text")).to_contain_text(["item.name", "item.city"])
    place.press_sequentially("ci")
    expect(options.locator(".expr-option-text")).to_have_text(["item.city"])
    expect(options.first).to_have_attribute("aria-selected", "true")
    place.press("Enter")
    expect(place).to_have_value("{{ item.city")
    expect(listbox).to_be_hidden()
    place.press_sequentially(" }}")
    expect(preview_of(page, place).locator(".expr-value code")).to_have_text("Paris")
    # Filters after "|", from the sandbox; Escape closes the list, Ctrl+Space opens it again.
    place.press("End")
    place.press("ArrowLeft")
    place.press("ArrowLeft")
    place.press_sequentially("| up")
    expect(options.locator(".expr-option-text")).to_have_text(["upper"])
    place.press("Escape")
    expect(listbox).to_be_hidden()
    expect(place).to_have_value("{{ item.city | up}}")
    place.press("Control+Space")
    expect(options.locator(".expr-option-text")).to_have_text(["upper"])
    place.press("Tab")
    expect(place).to_have_value("{{ item.city | upper}}")
    expect(preview_of(page, place).locator(".expr-value code")).to_have_text("PARIS")

    # 5. The wider editor: a long expression with its live preview, written back when it closes. -------------
    note.click()
    page.get_by_role("button", name=re.compile(r"Open a wider editor for .*3")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    area = dialog.get_by_role("combobox")
    area.press_sequentially('{{ nodes[')  # the nodes upstream of B, not B itself
    expect(options.locator(".expr-option-text")).to_contain_text(['nodes["A"]'])
    expect(options.filter(has_text='nodes["B"]')).to_have_count(0)
    area.press_sequentially('"A"][0].')
    expect(options.locator(".expr-option-text")).to_contain_text(['nodes["A"][0].name', 'nodes["A"][0].city'])
    area.fill('{{ item.name ~ " lives in " ~ item.city }}')
    expect(dialog.locator("output .expr-value code")).to_have_text("Ada lives in Paris")
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    expect(note).to_have_value('{{ item.name ~ " lives in " ~ item.city }}')
    expect(preview_of(page, note).locator(".expr-value code")).to_have_text("Ada lives in Paris")

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    # The autosave of the syntax error typed above is refused (422: docs/editor.md, Saving); nothing else may fail.
    refused = f"422 (Unprocessable Entity) @ {{'url': '{base}/workflows/{wid}/nodes/{ids['b']}'"
    unexpected = [m for m in page_errors.console_errors if refused not in m]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
