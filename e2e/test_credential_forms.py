"""The Credentials pages in a real browser: the chooser and the generated form, a secret never filled back,
the node form's picker (Create new in another tab, Refresh keeps the rest of the form), delete refused while
a workflow uses the credential, then deleted after the confirmation."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, drop_node, register

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("server", ["embedded"], indirect=True)]
# the server runs with a test node type that has a credential field (tests/webapp/credential_node.py)
PATCHWIRE_COMMAND = [sys.executable, "-m", "tests.webapp.credential_node"]
SECRET = "e2e-header-secret-4c1d"


def create_header_key(page: Page, base: str, name: str) -> int:
    page.goto(f"{base}/credentials/new")
    page.get_by_role("link", name="API key (header)").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Header name").fill("X-Api-Key")
    page.get_by_label("Value").fill(SECRET)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".saved")).to_have_text("Credential created.")
    return int(re.search(r"/credentials/(\d+)", page.url).group(1))


def test_create_pick_refresh_and_delete(page: Page, server: Server, page_errors: PageErrors) -> None:
    register(page, server.url)
    page.get_by_role("link", name="Credentials").click()
    expect(page.locator("#credentials-empty")).to_be_visible()
    first = create_header_key(page, server.url, "First key")
    expect(page.get_by_label("Value")).to_have_value("")  # the secret is never filled back
    expect(page.locator(".secret-state")).to_have_text("set — leave empty to keep")
    assert SECRET not in page.content()

    page.goto(f"{server.url}/workflows")
    create_workflow(page, server.url, "Uses a key")
    node = drop_node(page, "test_credential_call", 300, 120)
    form = page.locator(f'#panel form.node-form[data-node-id="{node.node_id}"]')
    picker = form.get_by_label("Credential")
    expect(picker.locator("option")).to_have_text(["— none —", "First key (API key (header))"])

    # "Create new" opens the form in another tab; back here, Refresh lists it without losing what was typed
    form.get_by_role("combobox", name="URL").fill("https://example.com/typed-before-refresh")
    with page.context.expect_page() as opened:
        form.get_by_role("link", name="Create new").click()
    other = opened.value
    expect(other.locator("h1")).to_have_text("New credential")
    second = create_header_key(other, server.url, "Second key")
    other.close()
    form.get_by_role("button", name="Refresh").click()
    expect(picker.locator("option")).to_have_count(3)
    picker.select_option(str(second))
    expect(form.get_by_role("combobox", name="URL")).to_have_value("https://example.com/typed-before-refresh")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#panel .node-save-state[data-state=saved]")).to_have_text("Saved")
    expect(page.locator("#panel").get_by_label("Credential")).to_have_value(str(second))

    # delete: refused while the workflow uses it (naming it), allowed for the unused one after the confirmation
    page.goto(f"{server.url}/credentials/{second}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete credential").click()
    expect(page.locator("#delete-refused")).to_contain_text("Uses a key")
    page.goto(f"{server.url}/credentials/{first}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete credential").click()
    expect(page).to_have_url(f"{server.url}/credentials/{first}")  # dismissed: still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete credential").click()
    expect(page).to_have_url(f"{server.url}/credentials?deleted=1")
    expect(page.locator("#credentials tbody tr")).to_have_count(1)
    unexpected = [e for e in page_errors.console_errors if f"/credentials/{second}/delete" not in e]  # the refusal's 409
    assert not page_errors.page_errors and not unexpected
