"""The public API's OpenAPI document (/api/openapi.json) and docs page (/api/docs): only the public paths (the
webhooks and /healthz), a structurally valid OpenAPI 3.1 document, no login needed, the viewer from vendored files."""

from __future__ import annotations

import re
from typing import Any

import pytest

from nodes.webhook_trigger import HTTP_METHODS
from tests.webapp.conftest import Browser
from webapp.apidocs.document import PUBLIC_PATHS

OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


@pytest.fixture
def document(browser: Browser) -> dict[str, Any]:
    answer = browser.get("/api/openapi.json")  # no login
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    return answer.json()


def test_the_document_lists_only_the_public_api(document: dict[str, Any]) -> None:
    assert sorted(document["paths"]) == sorted(PUBLIC_PATHS) == ["/healthz", "/webhook/{path}"]
    assert not any(p.startswith(("/workflows", "/executions", "/credentials", "/login", "/home", "/schema"))
                   for p in document["paths"])
    webhook = document["paths"]["/webhook/{path}"]
    assert {m.upper() for m in webhook if m in OPERATIONS} == set(HTTP_METHODS)
    responses = webhook["post"]["responses"]
    assert {"200", "202", "204", "400", "401", "403", "404", "405", "409", "413", "429", "500", "503"} == set(responses)
    assert "Retry-After" in responses["429"]["headers"] and "Allow" in responses["405"]["headers"]
    assert "requestBody" in webhook["post"] and "requestBody" not in webhook["get"]
    assert document["paths"]["/healthz"]["get"]["responses"]["200"]


def test_the_document_is_structurally_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in ((m, o) for m, o in item.items() if m in OPERATIONS):
            declared = {p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])
                        if p["in"] == "path"}
            assert declared == templated, (path, method)
            assert operation["responses"] and all(re.fullmatch(r"[1-5]\d\d|default", code)
                                                  for code in operation["responses"])
            assert all(r["description"] for r in operation["responses"].values())
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(document["components"]["securitySchemes"])
            operation_ids.append(operation["operationId"])
        assert all(p["required"] is True for p in item.get("parameters", []) if p["in"] == "path")
    assert len(operation_ids) == len(set(operation_ids))
    assert refs(document)
    for ref in refs(document):
        assert resolve(document, ref) is not None


def test_the_docs_page_is_public_and_loads_only_vendored_files(browser: Browser) -> None:
    page = browser.get("/api/docs")
    assert page.status_code == 200, page.text[:300]
    text = page.text
    scripts = re.findall(r'<script src="([^"]+)"', text)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in scripts and "/static/js/api-docs.js" in scripts
    assert all(s.startswith("/static/") for s in scripts)
    assert "<script>" not in text and " onload=" not in text
    assert 'data-url="/api/openapi.json"' in text
    for path in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css",
                 "/static/js/api-docs.js"):
        assert browser.get(path).status_code == 200, path
    redirect = browser.get("/api", follow_redirects=False)
    assert redirect.status_code in (301, 302, 307, 308) and redirect.headers["location"] == "/api/docs"
