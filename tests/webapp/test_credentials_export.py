"""Export writes a credential reference (type and name), never an id or a secret; import maps references to
the importing person's credentials by type and name and reports the missing ones (web, CLI and n8n)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Node
from tests.webapp.conftest import Browser
from tests.webapp.credential_node import registered
from tests.webapp.test_credentials_pages import create, created_id

ROOT = Path(__file__).resolve().parents[2]
SECRET = "export-secret-71c2d9"


@pytest.fixture(autouse=True)
def credential_node() -> Any:
    with registered():
        yield


def header(browser: Browser, name: str = "Weather API", secret: str = SECRET) -> int:
    return created_id(create(browser, "http_header", name, **{"public.header_name": "X-Key", "secret.value": secret}))


def workflow_with(browser: Browser, credential_id: int | None, name: str = "Weather") -> int:
    workflow_id = browser.create_workflow(name)
    start = browser.add_node(workflow_id, "manual_trigger")
    call = browser.add_node(workflow_id, "test_credential_call", x=240)
    browser.connect(workflow_id, start, call)
    saved = browser.configure(workflow_id, call, {"name": "Call", "url": "https://example.com",
                                                  "credential": "" if credential_id is None else str(credential_id)})
    assert saved.status_code == 200, saved.text
    return workflow_id


def import_json(browser: Browser, document: bytes | str) -> Any:
    text = document.decode() if isinstance(document, bytes) else document
    return browser.post("/workflows/import", {"document": text, "format": "auto"}, headers={"accept": "application/json"},
                        files={"file": ("", b"", "application/octet-stream")})


def call_config(db_call: Any, workflow_id: int) -> dict[str, Any]:
    return db_call(lambda db: db.scalar(select(Node.config).where(Node.workflow_id == workflow_id,
                                                                  Node.type_name == "test_credential_call")))


def test_export_names_the_credential_and_import_maps_it_back(browser: Browser, db_call: Any) -> None:
    browser.register("exporter@example.com")
    credential_id = header(browser)
    workflow_id = workflow_with(browser, credential_id)
    exported = browser.get(f"/workflows/{workflow_id}/export").content
    call = next(n for n in json.loads(exported)["nodes"] if n["type"] == "test_credential_call")
    assert call["config"]["credential"] == {"type": "http_header", "name": "Weather API"}
    assert SECRET.encode() not in exported and b'"X-Key"' not in exported
    imported = import_json(browser, exported)
    assert imported.status_code == 201 and imported.json()["missing_credentials"] == []
    assert call_config(db_call, imported.json()["workflow_id"])["credential"] == credential_id
    # a node without a credential exports null and imports as null
    empty = workflow_with(browser, None, "No credential")
    document = browser.get(f"/workflows/{empty}/export").content
    assert '"credential"' not in document.decode() or b'"credential": null' in document
    assert call_config(db_call, import_json(browser, document).json()["workflow_id"]).get("credential") is None


def test_import_by_someone_else_reports_the_missing_credentials(browser: Browser, second_browser: Browser,
                                                                 db_call: Any) -> None:
    browser.register("sharer@example.com")
    exported = browser.get(f"/workflows/{workflow_with(browser, header(browser))}/export").content
    second_browser.register("receiver@example.com")
    # a credential of the same name but another type does not count
    bearer = created_id(create(second_browser, "http_bearer", "Weather API", **{"secret.token": "bearer-token-1234"}))
    imported = import_json(second_browser, exported)
    assert imported.status_code == 201
    assert imported.json()["missing_credentials"] == [{"node": "Call", "field": "credential", "type": "http_header",
                                                       "type_title": "API key (header)", "name": "Weather API"}]
    workflow_id = imported.json()["workflow_id"]
    assert call_config(db_call, workflow_id).get("credential") is None
    # the browser's import shows the report once on the new workflow's page
    response = second_browser.post("/workflows/import", {"document": exported.decode(), "format": "auto"},
                                   files={"file": ("", b"", "application/octet-stream")})
    page = second_browser.get(response.headers["hx-redirect"]).text
    assert 'id="import-missing-credentials"' in page and "API key (header) “Weather API”" in page
    assert 'href="/credentials/new?type=http_header"' in page
    # once they have one of that type and name, the same file maps to theirs
    second_browser.post(f"/credentials/{bearer}/delete", htmx=False)
    theirs = header(second_browser, secret="their-own-9999")
    again = import_json(second_browser, exported)
    assert again.json()["missing_credentials"] == []
    assert call_config(db_call, again.json()["workflow_id"])["credential"] == theirs


def test_malformed_references_are_refused_with_nothing_created(browser: Browser, db_call: Any) -> None:
    browser.register("malformed@example.com")
    for reference, message in [({"type": "http_header"}, "a credential reference is"),
                               ({"type": "smtp", "name": "Mail"}, "this node does not accept 'smtp' credentials"),
                               ("Weather API", "expected a credential id or a reference")]:
        document = {"name": "Bad", "nodes": [{"id": "c", "type": "test_credential_call", "name": "Call",
                                              "config": {"credential": reference}}]}
        response = import_json(browser, json.dumps(document))
        assert response.status_code == 422, reference
        assert message in json.dumps(response.json())
    assert db_call(lambda db: db.scalar(select(Node.id).limit(1))) is None


def test_the_cli_exports_references_and_reports_missing_credentials(browser: Browser, database_url: str,
                                                                     tmp_path: Path) -> None:
    browser.register("cli@example.com")
    workflow_id = workflow_with(browser, header(browser))
    env = {**os.environ, "PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PYTHONPATH": str(ROOT), "PATCHWIRE_LOG_LEVEL": "WARNING"}

    def cli(*args: str) -> dict[str, Any]:
        result = subprocess.run([sys.executable, "-m", "tests.webapp.credential_node", *args], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    exported = cli("export", str(workflow_id))
    call = next(n for n in exported["nodes"] if n["type"] == "test_credential_call")
    assert call["config"]["credential"] == {"type": "http_header", "name": "Weather API"}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(exported))
    browser.register("cli-other@example.com")  # a second account (the browser's session moves to it)
    assert cli("import", str(path), "--owner", "cli@example.com")["missing_credentials"] == []
    report = cli("import", str(path), "--owner", "cli-other@example.com")
    assert report["missing_credentials"][0]["name"] == "Weather API"


N8N = {
    "name": "From n8n",
    "nodes": [
        {"parameters": {}, "id": "t", "name": "Start", "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1,
         "position": [0, 0]},
        {"parameters": {"url": "https://api.example.com/x", "authentication": "genericCredentialType",
                        "genericAuthType": "httpHeaderAuth", "options": {}},
         "credentials": {"httpHeaderAuth": {"id": "17", "name": "Weather API"}},
         "id": "h", "name": "Fetch", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [200, 0]},
        {"parameters": {"url": "https://api.example.com/y", "authentication": "genericCredentialType",
                        "genericAuthType": "httpDigestAuth", "options": {}},
         "credentials": {"httpDigestAuth": {"id": "18", "name": "Digest"}},
         "id": "d", "name": "Digest fetch", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2,
         "position": [200, 200]},
    ],
    "connections": {"Start": {"main": [[{"node": "Fetch", "type": "main", "index": 0},
                                        {"node": "Digest fetch", "type": "main", "index": 0}]]}},
}


def test_n8n_http_credentials_become_references(browser: Browser, db_call: Any) -> None:
    from nodes import registry

    if "credential" not in registry.latest("http_request").Config.__struct_fields__:
        pytest.skip("the HTTP Request node has no credential field in this build")
    browser.register("n8n@example.com")
    first = import_json(browser, json.dumps(N8N)).json()
    assert first["missing_credentials"] == [{"node": "Fetch", "field": "credential", "type": "http_header",
                                             "type_title": "API key (header)", "name": "Weather API"}]
    unmapped = {(e["node"], e.get("parameter")) for e in first["report"]["unmapped"]}
    assert ("Digest fetch", "authentication") in unmapped and ("Fetch", "authentication") not in unmapped
    credential_id = header(browser)
    second = import_json(browser, json.dumps(N8N)).json()
    assert second["missing_credentials"] == []
    configs = db_call(lambda db: db.scalars(select(Node.config).where(Node.workflow_id == second["workflow_id"],
                                                                      Node.type_name == "http_request")))
    assert sorted(str(c.get("credential")) for c in configs) == sorted([str(credential_id), "None"])
