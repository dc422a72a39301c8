"""No generated OpenAPI document or docs pages at /schema: Litestar's defaults listed the internal page routes as
"Litestar API" and served docs pages whose CDN scripts the CSP blocks (blank pages). The public API (webhooks,
/healthz) is described by hand at /api/openapi.json and shown at /api/docs (tests/webapp/test_api_docs_pages.py)."""

from __future__ import annotations

import pytest

from tests.webapp.conftest import Browser

SCHEMA_PATHS = ["/schema", "/schema/", "/schema/openapi.json", "/schema/openapi.yaml", "/schema/swagger",
                "/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/oauth2-redirect.html"]


@pytest.mark.parametrize("path", SCHEMA_PATHS)
def test_no_schema_page_and_no_internal_route_is_published(browser: Browser, path: str) -> None:
    browser.register("schema@example.com")
    page = browser.get(path)
    assert page.status_code == 404, page.text[:300]
    text = page.text
    assert "Litestar API" not in text and "openapi" not in text.lower()
    assert "/workflows/{workflow_id" not in text and "/home/{part" not in text  # no route listing
    assert "cdn.jsdelivr" not in text and "unpkg.com" not in text          # no page made of CDN scripts
    assert "There is nothing here" in text                                  # the app's own, clear 404 page
    api = browser.get(path, headers={"accept": "application/json"})
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    assert "paths" not in api.json()
