"""Workflows list and the editor's partials: every change persisted as rows, bad input refused cleanly."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from engine.models import Connection, Node, Workflow
from tests.webapp.conftest import Browser


def count(db_call: Any, model: Any) -> int:
    return db_call(lambda db: db.scalar(select(func.count()).select_from(model)))


def test_create_rename_delete_workflow(browser: Browser, db_call: Any) -> None:
    browser.register("wf@example.com")
    workflow_id = browser.create_workflow("First")
    assert "First" in browser.get("/workflows/").text
    renamed = browser.post(f"/workflows/{workflow_id}/rename", {"name": "  Renamed   flow "})
    assert renamed.status_code == 200 and "Renamed flow" in renamed.text
    empty = browser.post(f"/workflows/{workflow_id}/rename", {"name": "   "})
    assert empty.status_code == 422 and "must not be empty" in empty.text
    assert empty.headers["hx-retarget"] == "#flash"
    assert db_call(lambda db: db.scalar(select(Workflow.name))) == "Renamed flow"
    assert browser.delete(f"/workflows/{workflow_id}").status_code == 200
    assert count(db_call, Workflow) == 0


def test_nodes_and_connections_are_rows_and_the_editor_shows_them(browser: Browser, db_call: Any) -> None:
    browser.register("graph@example.com")
    wid = browser.create_workflow()
    trigger = browser.add_node(wid, "manual_trigger", 10, 20)
    delay = browser.add_node(wid, "delay", 300, 20)
    assert browser.connect(wid, trigger, delay).status_code == 201
    assert browser.post(f"/workflows/{wid}/nodes/{delay}/position", {"x": 444, "y": 55}).status_code == 204
    page = browser.get(f"/workflows/{wid}").text
    assert f'data-node-id="{trigger}"' in page and f'data-node-id="{delay}"' in page
    assert f'"source": "{trigger}"' in page and 'data-x="444.0"' in page
    assert count(db_call, Node) == 2 and count(db_call, Connection) == 1
    browser.post(f"/workflows/{wid}/connections/delete",
                 {"source": trigger, "target": delay, "source_port": "main", "target_port": "main"})
    assert count(db_call, Connection) == 0
    assert browser.delete(f"/workflows/{wid}/nodes/{delay}").status_code == 204
    assert count(db_call, Node) == 1


def test_second_node_of_a_type_gets_a_unique_name(browser: Browser) -> None:
    browser.register("names@example.com")
    wid = browser.create_workflow()
    browser.add_node(wid, "delay")
    second = browser.post(f"/workflows/{wid}/nodes", {"type": "delay", "x": 0, "y": 0})
    assert "Delay 2" in second.text


def test_config_form_validates_inline_and_keeps_saved_config(browser: Browser, db_call: Any) -> None:
    browser.register("config@example.com")
    wid = browser.create_workflow()
    http = browser.add_node(wid, "http_request")
    panel = browser.get(f"/workflows/{wid}/nodes/{http}")
    assert 'name="url"' in panel.text and 'name="method"' in panel.text
    good = browser.configure(wid, http, {"name": "Fetch", "url": "https://example.com/api", "method": "POST",
                                         "headers.name": ["X-Test"], "headers.value": ["1"], "body": '{"a": 1}',
                                         "timeout": "5"})
    assert good.status_code == 200 and "Saved." in good.text
    assert 'id="title-' in good.text and "Fetch" in good.text  # out-of-band title update for the canvas
    assert f'id="status-{http}" data-status="idle" hx-swap-oob="true"' in good.text  # clears an "invalid" mark
    # the body shows (and is read) only for methods with a body (display_when): POST here; TRACE is refused below
    bad = browser.configure(wid, http, {"name": "Fetch", "url": "not a url", "method": "POST", "body": "{oops",
                                        "timeout": "-3"})
    assert bad.status_code == 422
    assert "Not valid JSON" in bad.text
    assert "<html" not in bad.text and "Traceback" not in bad.text
    huge = browser.configure(wid, http, {"name": "Fetch", "url": "https://x.example/" + "a" * 200_000})
    assert huge.status_code == 422 and "Too long" in huge.text
    bad_values = browser.configure(wid, http, {"name": "Fetch", "url": "ftp://nope", "method": "TRACE", "timeout": "-3"})
    assert bad_values.status_code == 422
    assert "full http:// or https:// URL" in bad_values.text or "Expected" in bad_values.text
    config = db_call(lambda db: db.scalar(select(Node.config).where(Node.id == http)))
    assert config["url"] == "https://example.com/api" and config["body"] == {"a": 1}
    assert config["headers"] == [{"name": "X-Test", "value": "1"}]


def test_duplicate_node_names_are_refused(browser: Browser) -> None:
    browser.register("dupes@example.com")
    wid = browser.create_workflow()
    first = browser.add_node(wid, "delay")
    second = browser.add_node(wid, "delay")
    browser.configure(wid, first, {"name": "Wait", "seconds": "1"})
    response = browser.configure(wid, second, {"name": "Wait", "seconds": "1"})
    assert response.status_code == 422 and "already has this name" in response.text


def test_bad_graph_edits_get_specific_messages(browser: Browser, db_call: Any) -> None:
    browser.register("bad@example.com")
    wid = browser.create_workflow()
    unknown = browser.post(f"/workflows/{wid}/nodes", {"type": "teleport", "x": 0, "y": 0})
    assert unknown.status_code == 422 and "unknown node type 'teleport'" in unknown.text.replace("&#39;", "'").lower()
    a, b, c = (browser.add_node(wid, "delay") for _ in range(3))
    assert browser.connect(wid, a, b).status_code == 201
    assert browser.connect(wid, b, c).status_code == 201
    cycle = browser.connect(wid, c, a)
    assert cycle.status_code == 422 and "would create a cycle" in cycle.text
    # The flash says what was refused, alone: no "Invalid input." lead before the sentence.
    assert "Invalid input" not in cycle.text
    assert re.search(r"<strong>Connecting Delay( \d)? → Delay( \d)? would create a cycle; workflows must not loop "
                     r"back\.</strong>", cycle.text), cycle.text
    api = browser.post(f"/workflows/{wid}/connections", {"source": c, "target": a, "source_port": "main",
                                                          "target_port": "main"}, headers={"accept": "application/json"})
    assert api.status_code == 422 and api.json()["title"] == "Invalid input" and "cycle" in api.json()["detail"]
    self_loop = browser.connect(wid, a, a)
    assert self_loop.status_code == 422
    port = browser.connect(wid, a, c, source_port="true")
    assert port.status_code == 422 and "has no output port" in port.text.replace("&#39;", "'")
    again = browser.connect(wid, a, b)
    assert again.status_code == 409 and "already connected" in again.text
    far = browser.post(f"/workflows/{wid}/nodes/{a}/position", {"x": "1e12", "y": 0})
    assert far.status_code == 422
    nan = browser.post(f"/workflows/{wid}/nodes/{a}/position", {"x": "left", "y": 0})
    assert nan.status_code == 400
    assert count(db_call, Connection) == 2 and count(db_call, Node) == 3


def test_export_is_the_documented_format(browser: Browser) -> None:
    import json

    browser.register("export@example.com")
    wid = browser.create_workflow("Exported")
    trigger = browser.add_node(wid, "manual_trigger")
    delay = browser.add_node(wid, "delay")
    browser.connect(wid, trigger, delay)
    document = json.loads(browser.get(f"/workflows/{wid}/export").content)
    assert document["format"] == "patchwire.workflow" and document["name"] == "Exported"
    assert {n["type"] for n in document["nodes"]} == {"manual_trigger", "delay"}
    assert document["connections"] == [{"source": trigger, "target": delay, "source_port": "main", "target_port": "main"}]


def test_a_failed_save_shows_what_was_typed_and_blank_optional_fields_take_defaults(browser: Browser,
                                                                                    db_call: Any) -> None:
    browser.register("typed@example.com")
    wid = browser.create_workflow()
    http = browser.add_node(wid, "http_request")
    bad = browser.configure(wid, http, {"name": "Fetch", "url": "https://typed.example/x", "method": "POST",
                                        "body": "{oops"})
    assert bad.status_code == 422
    assert 'value="https://typed.example/x"' in bad.text and "{oops" in bad.text
    deep = browser.configure(wid, http, {"name": "Fetch", "url": "https://x.example", "method": "POST",
                                         "body": "[" * 50_000})
    assert deep.status_code == 422 and "nested more than 64 levels deep; at most 64 levels are allowed" in deep.text
    good = browser.configure(wid, http, {"name": "Fetch", "url": "https://x.example", "timeout": ""})
    assert good.status_code == 200
    config = db_call(lambda db: db.scalar(select(Node.config).where(Node.id == http)))
    assert config["timeout"] == 30.0


def test_a_node_of_an_uninstalled_type_can_still_be_seen_and_deleted(browser: Browser, db_call: Any) -> None:
    from sqlalchemy import update

    browser.register("ghost@example.com")
    wid = browser.create_workflow()
    ghost = browser.add_node(wid, "delay")

    async def uninstall(db: Any) -> None:
        await db.execute(update(Node).where(Node.id == ghost).values(type_name="retired_type"))
        await db.commit()

    db_call(uninstall)
    page = browser.get(f"/workflows/{wid}")
    assert page.status_code == 200 and "Unknown type" in page.text
    assert "not installed" in browser.get(f"/workflows/{wid}/nodes/{ghost}").text
    assert browser.delete(f"/workflows/{wid}/nodes/{ghost}").status_code == 204


def test_a_node_with_an_invalid_config_is_marked_on_the_canvas(browser: Browser) -> None:
    browser.register("badge@example.com")
    wid = browser.create_workflow()
    added = browser.post(f"/workflows/{wid}/nodes", {"type": "http_request", "x": 0, "y": 0})
    assert 'data-status="invalid"' in added.text and "url: This field is required." in added.text
    node = re.search(r'data-node-id="([0-9a-f]+)"', added.text).group(1)
    assert 'data-status="invalid"' in browser.get(f"/workflows/{wid}").text  # after a reload too
    fixed = browser.configure(wid, node, {"name": "HTTP Request", "url": "https://example.com/", "method": "GET"})
    assert fixed.status_code == 200 and f'id="status-{node}" data-status="idle"' in fixed.text  # the badge clears
    assert 'data-status="invalid"' not in browser.get(f"/workflows/{wid}").text
    assert 'data-status="invalid"' not in browser.post(f"/workflows/{wid}/nodes", {"type": "delay"}).text
