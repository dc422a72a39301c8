"""The n8n HTTP Request import chooses n8n's output: the response body as the item (``response: "body"``), or
the full response when the n8n node asked for it — from n8n export JSON of v1, v3 and v4.x nodes; and an
imported Manual Trigger → HTTP Request → Set run through the web app against a loopback API: the Set node
reads ``$json.field`` from the response as it does in n8n."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Node, NodeRun
from tests.loopback import serve_http
from tests.webapp.conftest import Browser
from tests.webapp.test_execution_detail import run
from tests.webapp.test_import import new_workflow_id, upload
from webapp.workflows import n8n


def http_node(type_version: float, parameters: dict[str, Any], name: str = "HTTP Request") -> dict[str, Any]:
    return {"parameters": parameters, "id": "5b2a1f0e-9c3d-4e8f-a7b6-0d1c2e3f4a5b", "name": name,
            "type": "n8n-nodes-base.httpRequest", "typeVersion": type_version, "position": [460, 300]}


def workflow(*nodes: dict[str, Any]) -> dict[str, Any]:
    trigger = {"parameters": {}, "id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "name": "When clicking ‘Test workflow’",
               "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [240, 300]}
    chain = [trigger, *nodes]
    return {"name": "HTTP import", "nodes": chain, "pinData": {}, "settings": {"executionOrder": "v1"},
            "connections": {a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
                            for a, b in zip(chain, chain[1:], strict=False)}}


def imported(node: dict[str, Any]) -> tuple[dict[str, Any], n8n.ImportReport]:
    doc, report = n8n.convert(workflow(node))
    [http] = [n for n in doc["nodes"] if n["type"] == "http_request"]
    return http["config"], report


def unmapped(report: n8n.ImportReport) -> list[tuple[str | None, str]]:
    return [(e.parameter, e.message) for e in report.unmapped]


# n8n 1.x, HTTP Request v4.2 as exported: default options
V4_DEFAULT = {"url": "https://api.example.com/users/1", "options": {}}
# v4.1: "Include Response Headers and Status" on, "Never Error" on
V4_FULL = {"method": "POST", "url": "https://api.example.com/users", "sendBody": True,
           "bodyParameters": {"parameters": [{"name": "name", "value": "Ada"}]},
           "options": {"response": {"response": {"fullResponse": True, "neverError": True}}}}
# n8n 0.2xx, HTTP Request v3: the same option tree
V3_DEFAULT = {"url": "https://api.example.com/users", "authentication": "none", "options": {}}
V3_FULL = {"url": "https://api.example.com/users", "authentication": "none",
           "options": {"response": {"response": {"fullResponse": True, "responseFormat": "json"}}}}
# v1: fullResponse is a plain option; the format is a parameter of its own
V1_FULL = {"url": "https://api.example.com/users", "responseFormat": "json", "options": {"fullResponse": True}}
V1_STRING = {"url": "https://api.example.com/page", "responseFormat": "string", "dataPropertyName": "html",
             "options": {}}


@pytest.mark.parametrize(("version", "parameters"), [(4.2, V4_DEFAULT), (3, V3_DEFAULT), (1, {"url": "https://x.io"})])
def test_an_n8n_http_request_outputs_the_body_as_the_item(version: float, parameters: dict[str, Any]) -> None:
    config, report = imported(http_node(version, parameters))
    assert config["response"] == "body"
    assert report.unmapped == []


@pytest.mark.parametrize(("version", "parameters", "parameter"), [(4.1, V4_FULL, "options.response"),
                                                                   (3, V3_FULL, "options.response"),
                                                                   (1, V1_FULL, "options.fullResponse")])
def test_n8n_full_response_becomes_full_and_the_status_name_difference_is_reported(
        version: float, parameters: dict[str, Any], parameter: str) -> None:
    config, report = imported(http_node(version, parameters))
    assert config["response"] == "full"
    [(where, message)] = unmapped(report)
    assert where == parameter
    assert "status (not statusCode)" in message and "statusMessage" in message


def test_v4_full_response_keeps_never_error_too() -> None:
    config, _ = imported(http_node(4.1, V4_FULL))
    assert config["fail_on_error_status"] is False and config["method"] == "POST"
    assert config["body"] == {"name": "Ada"}


def test_a_file_response_or_text_under_another_name_is_reported() -> None:
    file_format = {"url": "https://x.io/logo.png",
                   "options": {"response": {"response": {"responseFormat": "file", "outputPropertyName": "logo"}}}}
    config, report = imported(http_node(4.2, file_format))
    assert config["response"] == "body"
    assert unmapped(report) == [("options.response", "response format 'file' is not supported: the body is read as "
                                                     "JSON, or as text ({data: …}) when it is not JSON")]
    _, report = imported(http_node(1, V1_STRING))
    assert unmapped(report) == [("responseFormat", "text response put in 'html': ours is always in data")]
    text = {"url": "https://x.io", "options": {"response": {"response": {"responseFormat": "text"}}}}
    assert imported(http_node(4.2, text))[1].unmapped == []


# --- imported and run -------------------------------------------------------------------------------------
USER = {"id": 7, "name": "Ada Lovelace", "email": "ada@example.com"}


@pytest.fixture
def users_api() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = json.dumps(USER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Handler, "users-api") as url:
        yield url


def test_an_imported_set_after_an_http_request_reads_the_response_fields(browser: Browser, db_call: Any,
                                                                         users_api: str) -> None:
    browser.register("n8nhttp@example.com")
    edit = {"parameters": {"mode": "manual", "assignments": {"assignments": [
                {"id": "a1", "name": "who", "value": "={{ $json.name }}", "type": "string"},
                {"id": "a2", "name": "mail", "value": "={{ $json.email }}", "type": "string"}]},
            "options": {}},
            "id": "9e8d7c6b-5a49-4837-a625-14f3e2d1c0b9", "name": "Edit Fields", "type": "n8n-nodes-base.set",
            "typeVersion": 3.4, "position": [680, 300]}
    document = workflow(http_node(4.2, {"url": f"{users_api}/users/7", "options": {}}), edit)
    wid = new_workflow_id(upload(browser, json.dumps(document)))
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    edit_id = db_call(lambda db: db.scalar(select(Node.id).where(Node.workflow_id == wid, Node.name == "Edit Fields")))
    output = db_call(lambda db: db.scalar(select(NodeRun.output).where(NodeRun.execution_id == execution_id,
                                                                       NodeRun.node_id == edit_id)))
    assert output["main"] == [{"who": "Ada Lovelace", "mail": "ada@example.com"}]


def test_the_panel_offers_the_output_option_and_saves_it(browser: Browser, db_call: Any) -> None:
    browser.register("httpoutput@example.com")
    wid = browser.create_workflow("Output")
    node = browser.add_node(wid, "http_request")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    select = panel[panel.index('name="response"'):]
    select = select[:select.index("</select>")]
    assert re.search(r'<option value="full"[^>]*selected', select) and 'value="body"' in select
    saved = browser.configure(wid, node, {"name": "Fetch", "url": "https://example.com/users", "response": "body"})
    assert saved.status_code == 200 and "Saved." in saved.text
    config = db_call(lambda db: db.scalar(select_config(node)))
    assert config["response"] == "body"
    refused = browser.configure(wid, node, {"name": "Fetch", "url": "https://example.com/users", "response": "raw"})
    assert refused.status_code in (200, 422) and "Saved." not in refused.text
    assert db_call(lambda db: db.scalar(select_config(node)))["response"] == "body"  # nothing saved is lost


def select_config(node_id: str) -> Any:
    return select(Node.config).where(Node.id == node_id)
