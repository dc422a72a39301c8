"""The API docs page in a real browser against a real ``patchwire serve``: /api/docs renders the public API's
document with the vendored Swagger UI — the webhook path and the health check are shown, an operation opens
with its answers — with no console error, no page error and no Content-Security-Policy violation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e

# Collected from the first script on: the page's own scripts cannot hide a violation from it.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def violations(page: Page) -> list[Any]:
    return page.evaluate("window.__cspViolations")


def test_the_api_docs_page_renders_under_the_csp(server: Server, page: Page, page_errors: PageErrors) -> None:
    page.add_init_script(WATCH_CSP)
    answer = page.goto(f"{server.url}/api/docs")  # no login: the page is public, as the API is
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    webhook = page.locator('.opblock[id^="operations-Webhooks-webhook_post"]')
    expect(webhook.locator(".opblock-summary-path")).to_have_text("/webhook/{path}")
    expect(page.locator(".opblock-summary-path", has_text="/healthz")).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("Patchwire public HTTP API")
    assert page.locator("#api-docs-loading").count() == 0  # Swagger UI replaced the placeholder
    # one operation opens with its answers (Swagger UI's React rendering, its inline styles under the CSP)
    webhook.locator(".opblock-summary").first.click()
    expect(webhook.locator(".responses-table .response[data-code='429']")).to_be_visible()
    expect(webhook.locator(".responses-table .response[data-code='202']")).to_be_visible()
    # nothing but this app's own addresses was asked for
    assert violations(page) == []
    assert page_errors.page_errors == [] and page_errors.console_errors == []
    assert not [m for m in page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
                if not m.startswith(server.url)]


def test_the_document_lists_no_internal_route(server: Server, page: Page) -> None:
    document = page.request.get(f"{server.url}/api/openapi.json").json()
    assert sorted(document["paths"]) == ["/healthz", "/webhook/{path}"]
    schema = page.request.get(f"{server.url}/schema/openapi.json", headers={"accept": "application/json"})
    assert schema.status == 404
