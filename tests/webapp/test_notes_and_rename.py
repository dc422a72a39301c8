"""Sticky notes (owner-scoped rows, markdown rendered safely) and renaming nodes on the canvas."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from engine.graph import decode_document
from engine.models import Node, User, WorkflowNote
from nodes import registry
from tests.webapp.conftest import Browser
from webapp.markdown import render_markdown
from webapp.workflows.services import WorkflowService


def add_note(browser: Browser, wid: int, text: str = "hello", **geometry: Any) -> tuple[int, Any]:
    response = browser.post(f"/workflows/{wid}/notes/", {"text": text, "x": 10, "y": 20, **geometry})
    assert response.status_code == 201, response.text
    return int(re.search(r'data-note-id="(\d+)"', response.text).group(1)), response


def test_notes_are_rows_the_editor_lists_and_the_export_carries(browser: Browser, db_call: Any) -> None:
    browser.register("notes@example.com")
    wid = browser.create_workflow("Noted")
    note_id, created = add_note(browser, wid, "# Plan\n\n**fetch** then _branch_", width=300, height=200)
    assert "<h1>Plan</h1>" in created.text and "<strong>fetch</strong>" in created.text
    assert 'data-width="300.0"' in created.text

    saved = browser.post(f"/workflows/{wid}/notes/{note_id}", {"text": "- one\n- two"})
    assert saved.status_code == 200 and "<li>one</li>" in saved.text
    moved = browser.post(f"/workflows/{wid}/notes/{note_id}/geometry", {"x": 400, "y": -50, "width": 260, "height": 120})
    assert moved.status_code == 204
    note = db_call(lambda db: db.scalar(select(WorkflowNote)))
    assert (note.text, note.pos_x, note.pos_y, note.width, note.height) == ("- one\n- two", 400, -50, 260, 120)

    listed = browser.get(f"/workflows/{wid}/notes/")
    assert listed.status_code == 200 and f'id="note-{note_id}"' in listed.text and "<li>two</li>" in listed.text

    document = json.loads(browser.get(f"/workflows/{wid}/export").content)
    assert document["notes"] == [{"text": "- one\n- two", "position": {"x": 400.0, "y": -50.0},
                                  "width": 260.0, "height": 120.0}]

    assert browser.delete(f"/workflows/{wid}/notes/{note_id}").status_code == 204
    assert db_call(lambda db: db.scalar(select(WorkflowNote))) is None
    assert browser.delete(f"/workflows/{wid}/notes/{note_id}").status_code == 404


def test_notes_of_another_person_are_404(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("owner-notes@example.com")
    wid = browser.create_workflow("Private")
    note_id, _ = add_note(browser, wid, "secret plan")
    second_browser.register("intruder-notes@example.com")
    other_wid = second_browser.create_workflow("Mine")
    for method, url, data in [
        ("get", f"/workflows/{wid}/notes/", None),
        ("get", f"/workflows/{wid}/notes/{note_id}", None),
        ("post", f"/workflows/{wid}/notes/", {"text": "pwned"}),
        ("post", f"/workflows/{wid}/notes/{note_id}", {"text": "pwned"}),
        ("post", f"/workflows/{wid}/notes/{note_id}/geometry", {"x": 1, "y": 1, "width": 200, "height": 100}),
        ("delete", f"/workflows/{wid}/notes/{note_id}", None),
        # the note id under the intruder's own workflow: still not theirs
        ("get", f"/workflows/{other_wid}/notes/{note_id}", None),
        ("post", f"/workflows/{other_wid}/notes/{note_id}", {"text": "pwned"}),
        ("delete", f"/workflows/{other_wid}/notes/{note_id}", None),
    ]:
        response = getattr(second_browser, method)(url, **({"data": data} if data is not None else {}))
        assert response.status_code == 404, f"{method.upper()} {url} gave {response.status_code}"
        assert "secret plan" not in response.text
    notes = db_call(lambda db: db.scalars(select(WorkflowNote)))
    assert [(n.workflow_id, n.text) for n in notes] == [(wid, "secret plan")]


@pytest.mark.parametrize("data, status, message", [
    ({"text": "x" * 10_001}, 422, "too long"),
    ({"text": "ok", "width": "5"}, 422, "width must be between"),
    ({"text": "ok", "height": "99999"}, 422, "height must be between"),
    ({"text": "ok", "x": "1e9"}, 422, "out of range"),
    ({"text": "ok", "x": "left"}, 400, ""),
])
def test_bad_note_input_is_a_clear_4xx(browser: Browser, db_call: Any, data: dict[str, Any], status: int,
                                       message: str) -> None:
    browser.register("bad-notes@example.com")
    wid = browser.create_workflow()
    response = browser.post(f"/workflows/{wid}/notes/", data)
    assert response.status_code == status, response.text
    assert message in response.text and "Traceback" not in response.text
    assert response.headers.get("hx-retarget") == "#flash"
    assert db_call(lambda db: db.scalar(select(WorkflowNote))) is None


def test_geometry_needs_every_field(browser: Browser) -> None:
    browser.register("geometry@example.com")
    wid = browser.create_workflow()
    note_id, _ = add_note(browser, wid)
    response = browser.post(f"/workflows/{wid}/notes/{note_id}/geometry", {"x": 1})
    assert response.status_code == 400, response.text


XSS = [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('<img src=x onerror="alert(1)">', "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"),
    ("[click](javascript:alert(1))", "[click](javascript:alert(1))"),
    ("[click](JavaScript:alert(1))", "[click](JavaScript:alert(1))"),
    ("[click](java&#x73;cript:alert(1))", "[click](javascript:alert(1))"),
    ("<javascript:alert(1)>", "&lt;javascript:alert(1)&gt;"),
    ("[data](data:text/html;base64,PHNjcmlwdD4=)", "[data](data:text/html;base64,PHNjcmlwdD4=)"),
    ("![pixel](https://tracker.example/p.png)", "!<a href=\"https://tracker.example/p.png\""),
]


@pytest.mark.parametrize("source, expected", XSS)
def test_markdown_is_rendered_without_html_or_unsafe_links(source: str, expected: str) -> None:
    html = render_markdown(source)
    assert expected in html
    assert set(re.findall(r"<(\w+)", html)) <= {"p", "a"}, html  # no <script>, no <img>: only markdown's own tags
    assert not re.search(r'href="(?!https?:|mailto:)', html), html


def test_markdown_keeps_safe_links_and_formatting() -> None:
    html = render_markdown("See [docs](https://example.com/a?b=1) or [mail](mailto:ops@example.com), **now**")
    assert '<a href="https://example.com/a?b=1" rel="nofollow noopener noreferrer" target="_blank">docs</a>' in html
    assert '<a href="mailto:ops@example.com"' in html and "<strong>now</strong>" in html


def test_a_stored_note_is_served_escaped(browser: Browser) -> None:
    browser.register("xss-note@example.com")
    wid = browser.create_workflow()
    _, created = add_note(browser, wid, '<script>alert("x")</script> [a](javascript:alert(1))')
    assert "<script>" not in created.text and "&lt;script&gt;" in created.text
    assert 'href="javascript' not in created.text
    # the markdown source travels in an attribute for the editor: escaped there too
    assert 'data-text="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in created.text


def test_rename_node_is_unique_and_escaped(browser: Browser, db_call: Any) -> None:
    browser.register("rename@example.com")
    wid = browser.create_workflow()
    first = browser.add_node(wid, "delay")
    second = browser.add_node(wid, "delay")
    renamed = browser.post(f"/workflows/{wid}/nodes/{first}/name", {"name": "  Wait   a bit "})
    assert renamed.status_code == 200
    assert renamed.text.strip() == f'<span class="pw-node-name" id="title-{first}">Wait a bit</span>'

    taken = browser.post(f"/workflows/{wid}/nodes/{second}/name", {"name": "Wait a bit"})
    assert taken.status_code == 422
    assert "already named “Wait a bit”" in taken.text and taken.headers["hx-retarget"] == "#flash"
    empty = browser.post(f"/workflows/{wid}/nodes/{second}/name", {"name": "   "})
    assert empty.status_code == 422 and "must not be empty" in empty.text
    names = db_call(lambda db: db.scalars(select(Node.name).order_by(Node.created_at)))
    assert list(names) == ["Wait a bit", "Delay 2"]

    # renaming to its own name is fine; HTML in a name is text everywhere
    assert browser.post(f"/workflows/{wid}/nodes/{first}/name", {"name": "Wait a bit"}).status_code == 200
    script = browser.post(f"/workflows/{wid}/nodes/{second}/name", {"name": "<img src=x onerror=alert(1)>"})
    assert script.status_code == 200 and "&lt;img src=x onerror=alert(1)&gt;" in script.text
    page = browser.get(f"/workflows/{wid}").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_rename_of_another_persons_node_is_404(browser: Browser, second_browser: Browser) -> None:
    browser.register("rename-owner@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    second_browser.register("rename-intruder@example.com")
    assert second_browser.post(f"/workflows/{wid}/nodes/{node}/name", {"name": "pwned"}).status_code == 404


def test_export_with_notes_imports_again(browser: Browser, db_call: Any) -> None:
    browser.register("roundtrip@example.com")
    wid = browser.create_workflow("Round trip")
    browser.add_node(wid, "manual_trigger")
    add_note(browser, wid, "remember *this*")
    document = decode_document(browser.get(f"/workflows/{wid}/export").content)
    assert [n.text for n in document.notes] == ["remember *this*"]
    assert "notes" not in msgspec.to_builtins(document.graph)  # the graph that runs has no notes

    async def import_it(db: Any) -> int:
        owner = await db.scalar(select(User.id).where(User.email == "roundtrip@example.com"))
        return (await WorkflowService(db, owner, registry).import_document(document)).id

    new_id = db_call(import_it)
    texts = db_call(lambda db: db.scalars(select(WorkflowNote.text).where(WorkflowNote.workflow_id == new_id)))
    assert list(texts) == ["remember *this*"]
