"""Credentials in a real browser: an API key used by an HTTP Request node; a Gmail account connected through
the fake provider's consent page, revoked there, seen as *needs reconnect*, and reconnected under the same id.

The Google endpoints of the servers point at the provider fakes (tests/fakes), started once for the module.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, register, save, select_node
from test_editor_testing import Api

from tests.fakes import FakeProviders, settings_env

if TYPE_CHECKING:  # fixtures' types; conftest is not imported at run time
    from conftest import PageErrors, Server, Sink

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 30_000  # ms
API_KEY = "sk-e2e-5d0c9e1b7a3f4286"


@pytest.fixture(scope="module")
def server_env(fake_providers_server: FakeProviders) -> dict[str, str]:
    """The servers' Google endpoints and OAuth app are the fake's (tests/fakes)."""
    return settings_env(fake_providers_server, "google")


def new_credential(page: Page, base: str, type_name: str, name: str, fields: dict[str, str]) -> None:
    """From the Credentials page: a new credential of ``type_name`` with the fields filled in (by label)."""
    page.goto(f"{base}/credentials")
    page.get_by_role("link", name="New credential").click()
    page.locator(f'a[data-type="{type_name}"]').click()
    expect(page).to_have_url(re.compile(rf"/credentials/new\?type={type_name}$"))
    page.locator("#cred-name").fill(name)
    for label, value in fields.items():
        page.get_by_label(re.compile(rf"^{re.escape(label)}")).fill(value)
    page.locator("#credential-form").get_by_role("button", name=re.compile(r"^Create")).click()


def credential_id(page: Page, base: str) -> int:
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/credentials/\d+"))
    return int(re.search(r"/credentials/(\d+)", page.url).group(1))


def test_an_api_key_credential_authenticates_an_http_request_node(page: Page, server: Server, fresh_sink: Sink,
                                                                  page_errors: PageErrors) -> None:
    base, sink = server.url, fresh_sink
    register(page, base, "cred")

    # 1. The Credentials page: an API key in a header. The secret is never shown again.
    new_credential(page, base, "http_header", "Sink key", {"Header name": "X-Api-Key", "Value": API_KEY})
    cid = credential_id(page, base)
    expect(page.locator(".credential-page p.saved")).to_have_text("Credential created.")
    expect(page.locator(f"#cred-status-{cid}")).to_have_text("ok")
    assert API_KEY not in page.content()
    page.goto(f"{base}/credentials")
    expect(page.locator(f"#credential-{cid}")).to_contain_text("Sink key")
    expect(page.locator(f"#credential-{cid}")).to_contain_text("never")  # not used yet

    # 2. A workflow: Manual Trigger → HTTP Request, the credential picked in the node's form.
    page.goto(f"{base}/workflows")
    wid = create_workflow(page, base, "Call the sink with a key")
    api = Api(page, base)
    trigger, http = api.add_node(wid, "manual_trigger", 20, 60), api.add_node(wid, "http_request", 280, 60)
    api.post(f"/workflows/{wid}/connections", {"source": trigger, "target": http, "source_port": "main",
                                               "target_port": "main"})
    page.reload()
    expect(page.locator("#canvas .drawflow-node")).to_have_count(2)
    form = select_node(page, page.locator(f'#canvas .drawflow-node[data-node-id="{http}"]'), http)
    form.locator("#cfg-url").fill(f"{sink.url}/with-key")
    picker = form.locator("#cfg-credential")
    expect(picker.locator(f'option[value="{cid}"]')).to_have_text(re.compile(r"^Sink key"))
    picker.select_option(str(cid))
    save(page, form)

    # 3. Run: the sink got the key, the execution succeeded, and the page shows no secret.
    page.get_by_role("button", name="Run", exact=True).click()
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    [request] = sink.received()
    assert request["path"] == "/with-key"
    assert request["headers"].get("x-api-key") == API_KEY
    run_status.get_by_role("link").click()
    expect(page.locator("#execution-status")).to_have_attribute("data-status", "succeeded")
    page.locator("table.node-runs").get_by_role("link", name="HTTP Request", exact=True).click()
    expect(page.locator('#node-panel .node-output[data-node-name="HTTP Request"]')).to_contain_text("hello from the sink")
    assert API_KEY not in page.content()

    # 4. The credentials list now shows a last use.
    page.goto(f"{base}/credentials")
    expect(page.locator(f"#credential-{cid} td").nth(3)).to_have_text(re.compile(r"UTC$"))

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    assert not page_errors.console_errors, "console errors:\n" + "\n".join(page_errors.console_errors)


def consent(page: Page, fake: FakeProviders) -> None:
    """On the fake Google's consent page: Allow."""
    expect(page).to_have_url(re.compile(rf"^{re.escape(fake.url)}/google/o/oauth2/v2/auth"))
    expect(page.locator("#account")).to_have_text("ada@example.com")
    page.get_by_role("button", name="Allow").click()


def test_a_gmail_account_is_connected_revoked_and_reconnected(page: Page, server: Server, fake_providers: FakeProviders,
                                                              page_errors: PageErrors) -> None:
    base, fake = server.url, fake_providers
    register(page, base, "gmail")

    # 1. Create a Google credential: "Create and connect" goes to the consent page; Allow comes back connected.
    new_credential(page, base, "google", "My Gmail", {})
    consent(page, fake)
    cid = credential_id(page, base)
    expect(page.locator(".credential-page p.saved")).to_have_text("Connected.")
    expect(page.locator(f"#cred-status-{cid}")).to_have_attribute("data-status", "ok")
    expect(page.locator(".credential-page")).to_contain_text("ada@example.com")
    [token] = fake.google.live_tokens()
    assert token.access_token not in page.content()

    # 2. Test it: the fake's API knows the account.
    page.locator("#test-button").click()
    expect(page.locator("#test-result")).to_contain_text("ada@example.com")

    # 3. The user revokes the grant at Google: the next use finds out, and the page says so.
    assert fake.google.revoke_all() >= 1
    page.locator("#test-button").click()
    expect(page.locator("#test-result")).to_contain_text(re.compile("reconnect", re.I))
    page.reload()
    expect(page.locator(f"#cred-status-{cid}")).to_have_attribute("data-status", "needs_reconnect")
    expect(page.locator(f"#cred-status-{cid}")).to_have_text("needs reconnect")
    expect(page.locator("#reconnect-notice")).to_be_visible()
    page.goto(f"{base}/credentials")
    expect(page.locator(f"#cred-status-{cid}")).to_have_text("needs reconnect")

    # 4. Reconnect: the same credential (same id), healthy again, with a new token that works.
    page.goto(f"{base}/credentials/{cid}")
    page.locator("#connect-button").click()
    consent(page, fake)
    assert credential_id(page, base) == cid
    expect(page.locator(".credential-page p.saved")).to_have_text("Connected.")
    expect(page.locator(f"#cred-status-{cid}")).to_have_attribute("data-status", "ok")
    page.locator("#test-button").click()
    expect(page.locator("#test-result")).to_contain_text("ada@example.com")
    page.goto(f"{base}/credentials")
    expect(page.locator("#credentials tbody tr")).to_have_count(1)

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    # Expected: the failed Test (422), and the fake's consent page has no favicon.
    unexpected = [m for m in page_errors.console_errors
                  if not m.startswith("Failed to load resource: the server responded with a status of 422")
                  and f"'url': '{fake.url}/favicon.ico'" not in m]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
