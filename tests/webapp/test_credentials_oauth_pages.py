"""An OAuth credential through the Credentials pages, against the provider fakes: create from the form →
connect → consent → healthy with its account shown; Test; revoked at the provider → Test says so, the
credential needs a reconnect (badge, page, editor banner); Reconnect keeps the id."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from engine.models import Credential
from engine.settings import load_settings
from tests.fakes import FakeProviders, settings_env
from tests.webapp.conftest import Browser
from tests.webapp.credential_node import registered
from webapp.app import create_app


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path, fake_providers: FakeProviders) -> Callable[[], Any]:
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", **settings_env(fake_providers)}
    return lambda: create_app(load_settings(env))


@pytest.fixture
def client(app_factory: Callable[[], Any]) -> Iterator[TestClient[Any]]:
    with TestClient(app=app_factory()) as test_client:
        yield test_client


def through_consent(browser: Browser, connect_path: str) -> Any:
    """Connect → the fake's consent page → Allow → our callback; returns the callback's answer."""
    authorize = browser.get(connect_path, follow_redirects=False)
    assert authorize.status_code == 303, authorize.text
    with httpx.Client(timeout=10) as http:
        page = http.get(authorize.headers["location"])
        answer = http.post(str(page.url), data={"decision": "allow"})
    callback = httpx.URL(answer.headers["location"])
    return browser.get(f"{callback.path}?{callback.query.decode()}", follow_redirects=False)


def test_google_from_the_form_to_needs_reconnect_and_back(browser: Browser, db_call: Any,
                                                         fake_providers: FakeProviders) -> None:
    browser.register("ada@example.com")
    created = browser.post("/credentials", {"type": "google", "name": "Ada's Gmail"}, htmx=False,
                           follow_redirects=False)
    assert created.status_code == 303  # to its page, which goes on to /connect by itself (a meta refresh)
    credential_id = int(re.match(r"/credentials/(\d+)\?created=1&connect=1$", created.headers["location"]).group(1))
    connect = f"/credentials/{credential_id}/connect"
    assert f'content="0; url={connect}"' in browser.get(created.headers["location"]).text

    done = through_consent(browser, connect)
    assert done.headers["location"] == f"/credentials/{credential_id}?connected=1"
    page = browser.get(done.headers["location"]).text
    assert "Connected." in page and f'id="cred-status-{credential_id}"' in page and 'data-status="ok"' in page
    assert re.search(r'id="shown-account">[^<]*@', page)  # the connected account, shown not edited
    assert f'href="/credentials/{credential_id}/connect">Reconnect</a>' in page
    assert browser.post(f"/credentials/{credential_id}/test").text.count("✓ Connected as") == 1

    with registered():
        workflow_id = browser.create_workflow("Mail digest")
        node_id = browser.add_node(workflow_id, "test_credential_call")
        # google is not a type this test node accepts: refused like any other type mismatch
        refused = browser.configure(workflow_id, node_id, {"name": "Call", "credential": str(credential_id)})
        assert refused.status_code == 422 and "is a Google (Gmail, Sheets) credential" in refused.text

    fake_providers.google.revoke_all()
    fake_providers.google.expire_all()
    failed = browser.post(f"/credentials/{credential_id}/test")
    assert failed.status_code == 422 and "✗" in failed.text and "needs to be reconnected" in failed.text
    assert re.search(rf'id="cred-status-{credential_id}" hx-swap-oob="true"[^>]*>needs reconnect<', failed.text)
    row = db_call(lambda db: db.get(Credential, credential_id, populate_existing=True))
    assert row.status == "needs_reconnect"
    assert 'id="reconnect-notice"' in browser.get(f"/credentials/{credential_id}").text
    assert 'data-status="needs_reconnect"' in browser.get("/credentials").text

    again = through_consent(browser, f"/credentials/{credential_id}/connect")  # Reconnect: same id
    assert again.headers["location"] == f"/credentials/{credential_id}?connected=1"
    assert db_call(lambda db: db.get(Credential, credential_id, populate_existing=True)).status == "ok"
    assert "✓ Connected as" in browser.post(f"/credentials/{credential_id}/test").text
