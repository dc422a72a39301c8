"""Bad requests get a clear 4xx, never a 500, and change nothing: ids beyond 64 bits, JSON nested too deep,
bodies that are not UTF-8, bodies of the wrong type or size (webapp/requests.py, engine/limits.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select, update

from engine.limits import MAX_ID, MAX_JSON_DEPTH
from engine.models import Execution, Node, Workflow
from tests.webapp.conftest import Browser

BEYOND = [MAX_ID + 1, 2**64, 0]
DEEP = "[" * 10_000 + "]" * 10_000
JSON_CLIENT = {"accept": "application/json"}


def canvas(browser: Browser) -> tuple[int, str, str]:
    browser.register("bad@example.com")
    wid = browser.create_workflow("Target")
    trigger = browser.add_node(wid, "manual_trigger", 10, 20)
    step = browser.add_node(wid, "set", 30, 40)
    assert browser.connect(wid, trigger, step).status_code == 201
    return wid, trigger, step


def rows(db_call: Any, wid: int) -> list[tuple[Any, ...]]:
    """What a refused request must leave alone: the workflow row and its nodes, as stored."""
    def read(db: Any) -> Any:
        async def go() -> list[tuple[Any, ...]]:
            workflow = await db.get(Workflow, wid)
            nodes = (await db.scalars(select(Node).where(Node.workflow_id == wid).order_by(Node.id))).all()
            return [(workflow.name, workflow.draft_revision, workflow.settings)] + [
                (n.id, n.name, n.pos_x, n.pos_y, n.version, n.config, n.pinned_output) for n in nodes]
        return go()
    return db_call(read)


ID_ROUTES = [
    ("get", "/workflows/{id}"), ("get", "/workflows/{id}/export"), ("get", "/workflows/{id}/versions"),
    ("get", "/workflows/{id}/settings"), ("get", "/workflows/{id}/overview"), ("get", "/workflows/{id}/notes/"),
    ("get", "/workflows/{wid}/notes/{id}"), ("get", "/executions/{id}"), ("get", "/executions/{id}/live"),
    ("get", "/executions/{id}/data/output"), ("get", "/workflows/{id}/nodes/{node}/data"),
    ("post", "/workflows/{id}/run"), ("post", "/workflows/{id}/publish"), ("post", "/workflows/{id}/rename"),
    ("post", "/workflows/{wid}/versions/{id}/restore"), ("post", "/workflows/{id}/nodes"),
    ("delete", "/workflows/{id}"), ("get", "/executions/{wid}/nodes/{node}/attempts/{id}/output"),
]


@pytest.mark.parametrize("big", BEYOND)
def test_ids_out_of_range_are_404_naming_the_range_on_every_id_route(browser: Browser, db_call: Any, big: int) -> None:
    wid, trigger, _ = canvas(browser)
    before = rows(db_call, wid)
    for method, template in ID_ROUTES:
        url = template.format(id=big, wid=wid, node=trigger)
        response = browser.get(url, headers={"hx-request": "true"}) if method == "get" else getattr(browser, method)(url)
        assert response.status_code == 404, (url, response.status_code, response.text[:300])
        assert f"ids are whole numbers from 1 to {MAX_ID}" in response.text, url
        assert response.headers["hx-retarget"] == "#flash"  # the browser's partial lands in the flash area
    api = browser.get(f"/workflows/{big}", headers=JSON_CLIENT)
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["detail"] == f"There is nothing with workflow_id {big}: ids are whole numbers from 1 to {MAX_ID}."
    assert rows(db_call, wid) == before


def test_a_websocket_with_an_id_out_of_range_is_refused_without_a_server_error(browser: Browser) -> None:
    from litestar.exceptions import WebSocketDisconnect

    canvas(browser)
    with pytest.raises(WebSocketDisconnect) as refused, browser.websocket(f"/ws/executions/{2**64}") as socket:
        socket.receive_text()
    assert refused.value.code == 4404


@pytest.mark.parametrize("path", ["/ws/executions/abc", "/ws/executions/a%2Fb", "/ws/nothing"])
def test_a_websocket_to_no_route_is_closed_4404_not_as_a_server_error(browser: Browser, path: str) -> None:
    from litestar.exceptions import WebSocketDisconnect

    canvas(browser)
    with pytest.raises(WebSocketDisconnect) as refused, browser.websocket(path) as socket:
        socket.receive_text()
    assert refused.value.code == 4404


@pytest.mark.parametrize("path", ["/ws/executions", "/ws/executions/changed", "/ws/executions/1"])
def test_a_websocket_without_a_session_is_closed_4401_not_as_a_server_error(browser: Browser, path: str) -> None:
    from litestar.exceptions import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, browser.websocket(path) as socket:
        socket.receive_text()
    assert refused.value.code == 4401


def test_a_workflow_that_has_run_can_be_deleted(browser: Browser, db_call: Any) -> None:
    """Found by the fuzz sweep: its executions pin its versions (ON DELETE RESTRICT), so deleting it was a 500."""
    wid, _, _ = canvas(browser)
    started = browser.post(f"/workflows/{wid}/run")
    execution_id = int(re.search(r"/executions/(\d+)", started.text).group(1))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    assert browser.delete(f"/workflows/{wid}").status_code == 200
    assert db_call(lambda db: db.get(Workflow, wid)) is None
    assert db_call(lambda db: db.get(Execution, execution_id)) is None


@pytest.mark.parametrize("path", ["positions", "nodes/delete"])
def test_json_nested_too_deep_is_400_naming_the_limit(browser: Browser, db_call: Any, path: str) -> None:
    wid, _, _ = canvas(browser)
    before = rows(db_call, wid)
    headers = {"content-type": "application/json"}
    partial = browser.post(f"/workflows/{wid}/{path}", content=DEEP, headers=headers)
    assert partial.status_code == 400 and "text/html" in partial.headers["content-type"]
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in partial.text
    api = browser.post(f"/workflows/{wid}/{path}", content=DEEP, headers={**headers, **JSON_CLIENT})
    assert api.status_code == 400 and api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["detail"] == (f"The request body is nested more than {MAX_JSON_DEPTH} levels deep; "
                                    f"at most {MAX_JSON_DEPTH} levels are allowed.")
    assert rows(db_call, wid) == before


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 10_000])
def test_a_pin_nested_too_deep_is_refused_and_not_stored(browser: Browser, db_call: Any, depth: int) -> None:
    wid, trigger, _ = canvas(browser)
    before = rows(db_call, wid)
    data = '{"main": [{"a": ' + "[" * depth + "]" * depth + "}]}"
    refused = browser.post(f"/workflows/{wid}/nodes/{trigger}/pin", {"data": data})
    assert refused.status_code == 422, refused.text[:300]
    assert f"Pinned data is nested more than {MAX_JSON_DEPTH} levels deep" in refused.text
    assert rows(db_call, wid) == before
    assert browser.get(f"/workflows/{wid}/nodes/{trigger}/data").status_code == 200


def test_a_pin_at_the_depth_limit_is_stored() -> None:
    from engine.testruns import parse_pinned

    value = {"main": [{"a": json.loads("[" * (MAX_JSON_DEPTH - 3) + "]" * (MAX_JSON_DEPTH - 3))}]}
    assert parse_pinned(json.dumps(value), ("main",)) == value


def test_data_stored_deeper_than_the_limit_is_shown_cut_and_can_be_unpinned(browser: Browser, db_call: Any) -> None:
    """A pin stored before the limit existed answered 500 on every view of the node until unpinned."""
    wid, trigger, _ = canvas(browser)
    deep: Any = []
    for _ in range(900):
        deep = [deep]
    db_call(lambda db: _store_pin(db, trigger, {"main": [{"a": deep}]}))
    data = browser.get(f"/workflows/{wid}/nodes/{trigger}/data?view=json")  # the JSON tree says where it is cut
    assert data.status_code == 200 and f"nested deeper than {MAX_JSON_DEPTH} levels: not shown" in data.text
    assert browser.post(f"/workflows/{wid}/nodes/{trigger}/unpin").status_code == 200
    assert db_call(lambda db: db.get(Node, trigger)).pinned_output is None


async def _store_pin(db: Any, node_id: str, value: Any) -> None:
    await db.execute(update(Node).where(Node.id == node_id).values(pinned_output=value))
    await db.commit()


@pytest.mark.parametrize(("content", "content_type"), [
    (b"name=\xff", "application/x-www-form-urlencoded"),
    (b"name=%FF", "application/x-www-form-urlencoded"),
    (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--b--\r\n', "multipart/form-data; boundary=b"),
])
def test_a_form_that_is_not_utf8_is_400_and_changes_nothing(browser: Browser, db_call: Any, content: bytes,
                                                            content_type: str) -> None:
    wid, _, _ = canvas(browser)
    before = rows(db_call, wid)
    response = browser.post(f"/workflows/{wid}/rename", content=content, headers={"content-type": content_type})
    assert response.status_code == 400 and "UTF-8" in response.text
    assert rows(db_call, wid) == before


def test_a_form_posted_without_the_csrf_header_is_read_strictly_too(browser: Browser, db_call: Any) -> None:
    """The CSRF check reads the form itself when the header is missing: a bad body is a 400 there as well."""
    wid, _, _ = canvas(browser)
    body = b'--b\r\nContent-Disposition: form-data; name="_csrf_token"\r\n\r\n\xff\r\n--b--\r\n'
    browser.client.cookies = browser.cookies
    response = browser.client.post(f"/workflows/{wid}/rename", content=body,
                                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400 and "not valid text" in response.text


def test_a_multipart_upload_that_is_not_utf8_is_400(browser: Browser, db_call: Any) -> None:
    canvas(browser)
    response = browser.post("/workflows/import", files={"document": (None, b'{"name": "\xff"}')})
    assert response.status_code == 400 and "not valid text" in response.text
    assert db_call(lambda db: db.scalar(select(func.count()).select_from(Workflow))) == 1


def test_raw_utf8_in_a_form_is_read_as_utf8(browser: Browser, db_call: Any) -> None:
    wid, _, _ = canvas(browser)
    response = browser.post(f"/workflows/{wid}/rename", content="name=Café ✓".encode(),
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert db_call(lambda db: db.get(Workflow, wid)).name == "Café ✓"


def test_a_json_body_that_is_not_utf8_is_400(browser: Browser, db_call: Any) -> None:
    wid, trigger, _ = canvas(browser)
    before = rows(db_call, wid)
    body = b'{"positions": [{"node": "' + trigger.encode() + b'\xff", "x": 1, "y": 2}]}'
    response = browser.post(f"/workflows/{wid}/positions", content=body,
                            headers={"content-type": "application/json", **JSON_CLIENT})
    assert response.status_code == 400
    bad_byte = body.index(b"\xff")
    assert response.json()["detail"] == f"The request body is not valid UTF-8 text (byte {bad_byte})."
    assert rows(db_call, wid) == before


@pytest.mark.parametrize(("path", "content", "content_type", "expected"), [
    ("positions", '{"positions": []}', "text/plain", "takes a JSON body (Content-Type: application/json), not text/plain"),
    ("positions", '{"positions": []}', "", "takes a JSON body (Content-Type: application/json), not a body without a type"),
    ("positions", "positions=1", "application/x-www-form-urlencoded", "takes a JSON body"),
    ("positions", '{"positions": []}', "application/json; charset=latin-1", "charset 'latin-1' is not accepted"),
    ("rename", '{"name": "x"}', "application/json", "takes a form (Content-Type: application/x-www-form-urlencoded"),
    ("nodes/{node}", '{"name": "x"}', "application/json", "takes a form"),
    ("rename", "name=x", "text/xml", "not text/xml"),
])
def test_a_body_of_the_wrong_type_is_415_and_changes_nothing(browser: Browser, db_call: Any, path: str, content: str,
                                                             content_type: str, expected: str) -> None:
    wid, trigger, _ = canvas(browser)
    before = rows(db_call, wid)
    headers = {"content-type": content_type} if content_type else {}
    response = browser.post(f"/workflows/{wid}/{path.format(node=trigger)}", content=content.encode(),
                            headers={**headers, **JSON_CLIENT})
    assert response.status_code == 415, response.text[:300]
    assert expected in response.json()["detail"]
    assert rows(db_call, wid) == before


def test_a_body_over_the_limit_is_413_naming_it(browser: Browser, db_call: Any) -> None:
    wid, _, _ = canvas(browser)
    before = rows(db_call, wid)
    body = b'{"positions": [' + b" " * (2 * 1024 * 1024) + b"]}"
    response = browser.post(f"/workflows/{wid}/positions", content=body,
                            headers={"content-type": "application/json", **JSON_CLIENT})
    assert response.status_code == 413
    assert response.json()["detail"] == ("The request body is larger than 2,097,152 bytes (2 MiB), "
                                         "the limit of this address.")
    assert rows(db_call, wid) == before


def test_an_error_workflow_id_out_of_range_is_a_field_error(browser: Browser, db_call: Any) -> None:
    wid, _, _ = canvas(browser)
    before = rows(db_call, wid)
    response = browser.post(f"/workflows/{wid}/settings", {"error_workflow_id": str(2**64)})
    assert response.status_code == 422 and f"&lt;= {MAX_ID}" in response.text
    assert rows(db_call, wid) == before


def test_a_sub_workflow_id_out_of_range_is_refused_at_import(browser: Browser) -> None:
    browser.register("import@example.com")
    document = {"format": "patchwire.workflow", "name": "Caller", "nodes": [
        {"id": "t", "type": "manual_trigger", "name": "Start"},
        {"id": "s", "type": "sub_workflow", "name": "Call", "config": {"workflow_id": 2**64}}],
        "connections": [{"source": "t", "target": "s"}]}
    response = browser.post("/workflows/import", {"document": json.dumps(document)}, headers=JSON_CLIENT)
    assert response.status_code == 422, response.text[:300]
    (problem,) = response.json()["problems"]
    assert problem["node_id"] == "s" and f"<= {MAX_ID}" in problem["message"] and "workflow_id" in problem["message"]
    assert browser.get("/workflows/", headers=JSON_CLIENT).text.count("Caller") == 0


def test_a_stored_sub_workflow_id_out_of_range_refuses_the_run_cleanly(browser: Browser, db_call: Any) -> None:
    wid, _, step = canvas(browser)
    call = browser.add_node(wid, "sub_workflow")
    assert browser.connect(wid, step, call).status_code == 201

    async def store_bad_id(db: Any) -> None:  # as an import before the ids were bounded left it
        await db.execute(update(Node).where(Node.id == call).values(config={"workflow_id": 2**64}))
        await db.commit()

    db_call(store_bad_id)
    response = browser.post(f"/workflows/{wid}/run", headers=JSON_CLIENT)
    assert response.status_code == 422, response.text[:300]
    assert "workflow_id" in response.text and str(MAX_ID) in response.text
    assert db_call(lambda db: db.scalar(select(Execution.id))) is None


def test_running_a_sub_workflow_id_out_of_range_fails_the_node(browser: Browser, client: Any) -> None:
    """The run-time backstop: an id the database cannot hold is a node error, never an OverflowError."""
    from engine.errors import NodeError
    from engine.subworkflows import SQLSubWorkflows

    browser.register("backstop@example.com")
    sub_workflows = SQLSubWorkflows(None, client.app.state.runtime.sessions, 1, ())  # type: ignore[arg-type]

    async def call() -> str:
        try:
            await sub_workflows.run(2**64, [])
        except NodeError as exc:
            return str(exc)
        return "ran"

    message = client.blocking_portal.call(call)
    assert re.fullmatch(rf"there is no workflow {2**64} of yours \(ids are whole numbers from 1 to {MAX_ID}\)", message)
