"""Importing workflows: upload and paste, Patchwire and n8n formats; bad input is refused precisely
and leaves the database exactly as it was."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.models import Connection, Node, Workflow, WorkflowNote
from tests.webapp.conftest import Browser
from webapp.workflows.importing import MAX_IMPORT_BYTES, MAX_IMPORT_NODES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "n8n"
XSS = "<img src=x onerror=alert(1)>"


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "patchwire.workflow", "format_version": 1, "name": "Imported flow",
        "nodes": [
            {"id": "start", "type": "manual_trigger", "name": "Start", "position": {"x": 40, "y": 120}},
            {"id": "fetch", "type": "http_request", "name": "Fetch",
             "config": {"url": "https://example.com/api"}, "position": {"x": 280, "y": 120}},
        ],
        "connections": [{"source": "start", "target": "fetch"}],
    }
    doc.update(overrides)
    return doc


def counts(db_call: Any) -> tuple[int, int, int]:
    async def read(db: Any) -> tuple[int, int, int]:
        return tuple([await db.scalar(select(func.count()).select_from(m)) for m in (Workflow, Node, Connection)])

    return db_call(read)


def upload(browser: Browser, content: bytes | str, *, filename: str = "flow.json", fmt: str = "auto",
           htmx: bool = True, **kw: Any) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return browser.post("/workflows/import", {"format": fmt}, htmx=htmx,
                        files={"file": (filename, data, "application/json")}, **kw)


def paste(browser: Browser, text: str, fmt: str = "auto", **kw: Any) -> Any:
    # multipart like the browser's form (enctype="multipart/form-data"), without a file
    return browser.post("/workflows/import", {"document": text, "format": fmt},
                        files={"file": ("", b"", "application/octet-stream")}, **kw)


def new_workflow_id(response: Any) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["hx-redirect"].rsplit("/", 1)[1])


# --- good input -------------------------------------------------------------------------------
def test_upload_creates_a_workflow_with_fresh_ids_and_shows_a_summary_once(browser: Browser, db_call: Any) -> None:
    browser.register("upload@example.com")
    response = upload(browser, json.dumps(document()))
    wid = new_workflow_id(response)
    workflow = db_call(lambda db: db.get(Workflow, wid))
    assert workflow.name == "Imported flow"
    node_ids = db_call(lambda db: db.scalars(select(Node.id).where(Node.workflow_id == wid)))
    assert len(set(node_ids)) == 2 and not {"start", "fetch"} & set(node_ids)
    page = browser.get(f"/workflows/{wid}").text
    assert 'id="import-report"' in page and "2 nodes and 1\n    connection imported" in page
    assert 'id="import-report"' not in browser.get(f"/workflows/{wid}").text  # shown once
    exported = json.loads(browser.get(f"/workflows/{wid}/export").content)
    assert [n["name"] for n in exported["nodes"]] == ["Start", "Fetch"] and len(exported["connections"]) == 1


def test_paste_creates_a_workflow_and_plain_form_posts_redirect(browser: Browser, db_call: Any) -> None:
    browser.register("paste@example.com")
    wid = new_workflow_id(paste(browser, json.dumps(document(name="Pasted"))))
    assert db_call(lambda db: db.get(Workflow, wid)).name == "Pasted"
    plain = paste(browser, json.dumps(document(name="No JS")), htmx=False, follow_redirects=False)
    assert plain.status_code == 303 and re.fullmatch(r"/workflows/\d+", plain.headers["location"])


def test_export_then_import_round_trips(browser: Browser) -> None:
    browser.register("roundtrip@example.com")
    first = new_workflow_id(upload(browser, json.dumps(document())))
    exported = browser.get(f"/workflows/{first}/export")
    assert exported.headers["content-disposition"] == f'attachment; filename="workflow-{first}.json"'
    second = new_workflow_id(upload(browser, exported.content))
    again = json.loads(browser.get(f"/workflows/{second}/export").content)
    original = json.loads(exported.content)
    strip = lambda doc: [(n["name"], n["type"], n["config"], n["position"]) for n in doc["nodes"]]  # noqa: E731
    assert strip(again) == strip(original) and second != first


def test_api_clients_get_json_and_problem_json(browser: Browser, db_call: Any) -> None:
    browser.register("api@example.com")
    ok = upload(browser, json.dumps(document()), htmx=False, headers={"accept": "application/json"})
    assert ok.status_code == 201 and ok.json()["nodes"] == 2 and ok.json()["url"].startswith("/workflows/")
    before = counts(db_call)
    bad = upload(browser, "{nope", htmx=False, headers={"accept": "application/json"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["problems"][0]["message"] == "Not valid JSON: Expecting property name enclosed in double " \
                                                   "quotes at line 1, column 2."
    assert counts(db_call) == before


# --- bad input: a precise message, nothing created -----------------------------------------------
def _many_nodes(n: int) -> str:
    nodes = [{"id": f"n{i}", "type": "set", "name": f"Set {i}"} for i in range(n)]
    return json.dumps(document(nodes=nodes, connections=[]))


BAD_INPUTS = [
    pytest.param(b"", "Nothing to import", id="empty"),
    pytest.param(b"this is not json", "Not valid JSON: Expecting value at line 1, column 1.", id="not-json"),
    pytest.param(b"\xff\xfe{}", "Not valid JSON: the file is not UTF-8 text (byte 0)", id="not-utf8"),
    pytest.param(b"[1, 2]", "Not a workflow: the JSON is a list", id="a-list"),
    pytest.param(json.dumps({"nodes": []}).encode(), "Object missing required field name", id="no-name"),
    pytest.param(json.dumps(document(extra=1)).encode(), "Object contains unknown field extra", id="unknown-field"),
    pytest.param(json.dumps(document(nodes=[{"id": "a", "type": "set", "name": 5}])).encode(),
                 "node 'a' (nodes[0]), name: Expected str, got int", id="wrong-type"),
    pytest.param(json.dumps(document(nodes=[{"id": "a", "type": "send_rocket", "name": "Rocket"}],
                                     connections=[])).encode(),
                 "Rocket: unknown node type", id="unknown-type"),
    pytest.param(json.dumps(document(nodes=[{"id": "a", "type": "set", "name": "One"},
                                            {"id": "a", "type": "set", "name": "Two"}], connections=[])).encode(),
                 "Duplicate node id 'a'.", id="duplicate-id"),
    pytest.param(json.dumps(document(connections=[{"source": "start", "target": "ghost"}])).encode(),
                 "Connection start.main → ghost.main refers to a node that does not exist: 'ghost'.",
                 id="dangling-connection"),
    pytest.param(json.dumps(document(connections=[{"source": "start", "source_port": "nope", "target": "fetch"}])).encode(),
                 "Start has no output port 'nope' (it has: main).", id="bad-port"),
    pytest.param(json.dumps(document(nodes=[{"id": "a", "type": "set", "name": "A"}, {"id": "b", "type": "set", "name": "B"}],
                                     connections=[{"source": "a", "target": "b"}, {"source": "b", "target": "a"}])).encode(),
                 "The connections form a cycle through: A (a), B (b).", id="cycle"),
    pytest.param(json.dumps(document(nodes=[{"id": "h", "type": "http_request", "name": "H",
                                             "config": {"url": "https://x.example", "verb": "GET"}}],
                                     connections=[])).encode(),
                 "H: verb: unknown field", id="bad-config"),
    pytest.param(_many_nodes(MAX_IMPORT_NODES + 1).encode(),
                 f"Too many nodes: {MAX_IMPORT_NODES + 1}; an import has at most {MAX_IMPORT_NODES} nodes.",
                 id="too-many-nodes"),
    pytest.param(b" " * MAX_IMPORT_BYTES + b"{}", f"Too large: {MAX_IMPORT_BYTES + 2:,} bytes", id="too-large"),
]


@pytest.mark.parametrize(("content", "message"), BAD_INPUTS)
def test_bad_input_is_refused_with_a_precise_message_and_nothing_changes(browser: Browser, db_call: Any,
                                                                          content: bytes, message: str) -> None:
    browser.register("bad@example.com")
    browser.create_workflow("Existing")
    before = counts(db_call)
    response = upload(browser, content)
    assert response.status_code == 422, response.text
    assert "Not imported." in response.text and message in html.unescape(response.text), response.text
    assert "<html" not in response.text  # a partial for the dialog, not a page
    assert counts(db_call) == before


def test_pasted_bad_json_is_refused_too(browser: Browser, db_call: Any) -> None:
    browser.register("badpaste@example.com")
    before = counts(db_call)
    response = paste(browser, '{"name": "x", "nodes": [}')
    assert response.status_code == 422 and "Not valid JSON: Expecting value at line 1, column 25." in response.text
    assert counts(db_call) == before


def test_markup_in_names_is_shown_as_text(browser: Browser) -> None:
    browser.register("xss@example.com")
    nodes = [{"id": "a", "type": "manual_trigger", "name": XSS}]
    wid = new_workflow_id(upload(browser, json.dumps(document(name=f"Flow {XSS}", nodes=nodes, connections=[]))))
    page = browser.get(f"/workflows/{wid}").text
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert XSS not in browser.get("/workflows/").text


def test_imports_belong_to_the_importer_and_sub_workflows_map_only_to_their_workflows(
        browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("owner@example.com")
    second_browser.register("other@example.com")
    others = second_browser.create_workflow("Escalate")
    raw = (FIXTURES / "tickets_switch_merge.json").read_text()
    wid = new_workflow_id(upload(browser, raw))
    workflow = db_call(lambda db: db.get(Workflow, wid))
    owner = db_call(lambda db: db.scalar(select(Workflow.owner_id).where(Workflow.id == others)))
    assert workflow.owner_id != owner
    assert second_browser.get(f"/workflows/{wid}").status_code == 404
    page = browser.get(f"/workflows/{wid}").text
    assert "needs a Patchwire workflow id" in page  # the other user's "Escalate" is not used
    mine = browser.create_workflow("Escalate")
    again = new_workflow_id(upload(browser, raw))
    configs = db_call(lambda db: db.scalars(select(Node.config).where(Node.workflow_id == again,
                                                                       Node.type_name == "sub_workflow")))
    assert list(configs) == [{"workflow_id": mine}]


def test_an_import_gets_a_name_of_its_own_per_owner(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("names@example.com")
    second_browser.register("names2@example.com")
    raw = (FIXTURES / "orders_http_if.json").read_text()
    name = json.loads(raw)["name"]
    ids = [new_workflow_id(upload(browser, raw)) for _ in range(3)]
    ids.append(new_workflow_id(upload(browser, json.dumps(document(name=f"{name} (imported 2)")))))
    names = [db_call(lambda db, wid=wid: db.get(Workflow, wid)).name for wid in ids]
    assert names == [name, f"{name} (imported)", f"{name} (imported 2)", f"{name} (imported 3)"]
    theirs = new_workflow_id(upload(second_browser, raw))
    assert db_call(lambda db: db.get(Workflow, theirs)).name == name


# --- n8n ----------------------------------------------------------------------------------------
def test_n8n_import_is_detected_and_the_report_is_shown(browser: Browser, db_call: Any) -> None:
    browser.register("n8n@example.com")
    wid = new_workflow_id(upload(browser, (FIXTURES / "orders_http_if.json").read_text()))
    rows = db_call(lambda db: db.execute(select(Node.name, Node.type_name, Node.type_version)
                                         .where(Node.workflow_id == wid)))
    assert sorted(rows) == sorted([("When clicking ‘Test workflow’", "manual_trigger", 1),
                                   ("HTTP Request", "http_request", 1), ("Big order?", "if", 2),
                                   ("Flag big", "set", 1), ("Flag small", "set", 1)])
    ports = db_call(lambda db: db.scalars(select(Connection.source_port).where(Connection.workflow_id == wid)))
    assert sorted(ports) == ["false", "main", "main", "true"]
    notes = db_call(lambda db: db.execute(select(WorkflowNote.text, WorkflowNote.pos_x, WorkflowNote.pos_y,
                                                 WorkflowNote.width, WorkflowNote.height)
                                          .where(WorkflowNote.workflow_id == wid)))
    assert list(notes) == [("## Orders\nFetches orders and flags the big ones.", 200, 80, 300, 240)]
    page = browser.get(f"/workflows/{wid}").text
    report = page[page.index('id="import-report"'):]
    assert "Imported (n8n format)" in report
    assert "n8n-nodes-base.slack has no Patchwire equivalent" in report
    assert "kept verbatim as text (not evaluated): ={{ $now.toISO() }}" in report
    assert "dropped because 'Tell Slack' was not imported" in html.unescape(report)


def test_n8n_dangling_connections_are_imported_without_them_and_reported(browser: Browser) -> None:
    browser.register("n8ndangling@example.com")
    dangling = {"name": "x", "nodes": [{"name": "A", "type": "n8n-nodes-base.noOp", "typeVersion": 1, "parameters": {}}],
                "connections": {"A": {"main": [[{"node": "Ghost", "type": "main", "index": 0}]]}}}
    wid = new_workflow_id(upload(browser, json.dumps(dangling), fmt="n8n"))
    page = browser.get(f"/workflows/{wid}").text
    report = html.unescape(page[page.index('id="import-report"'):])
    assert "A (output 0) → 'Ghost': dropped, there is no node named 'Ghost' in the file" in report


def test_n8n_format_can_be_chosen_and_a_broken_n8n_file_is_refused(browser: Browser, db_call: Any) -> None:
    browser.register("n8nbad@example.com")
    before = counts(db_call)
    loop = {"name": "x", "nodes": [{"name": "A", "type": "n8n-nodes-base.noOp"}, {"name": "B", "type": "n8n-nodes-base.noOp"}],
            "connections": {"A": {"main": [[{"node": "B", "type": "main", "index": 0}]]},
                            "B": {"main": [[{"node": "A", "type": "main", "index": 0}]]}}}
    response = upload(browser, json.dumps(loop), fmt="n8n")
    assert response.status_code == 422 and "The connections form a cycle through: A" in response.text
    not_n8n = upload(browser, json.dumps({"name": "x"}), fmt="n8n")
    assert not_n8n.status_code == 422 and "Not an n8n workflow" in not_n8n.text
    assert counts(db_call) == before
    forced = upload(browser, json.dumps({"name": "Empty n8n", "nodes": []}), fmt="n8n")
    assert new_workflow_id(forced)
