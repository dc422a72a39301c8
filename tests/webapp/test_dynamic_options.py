"""Dynamic options: a dropdown's choices loaded by the node type — the Sub-workflow picker (the owner's
workflows) and a test node listing Slack channels through a connected Slack credential against the Slack
fake (cursor pagination, search, invalid_auth, rate limiting, a timeout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from engine.settings import load_settings
from tests.fakes import FakeProviders, settings_env
from tests.fakes.slack import CHANNELS
from tests.webapp.conftest import Browser
from tests.webapp.slack_channels_node import PAGE_SIZE, registered
from tests.webapp.test_oauth_connect import consent, new_credential, start
from webapp.app import create_app


@pytest.fixture
def oauth_env(database_url: str, tmp_path: Path, fake_providers: FakeProviders) -> dict[str, str]:
    return {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
            "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", **settings_env(fake_providers)}


@pytest.fixture
def app_factory(oauth_env: dict[str, str]) -> Callable[[], Any]:
    return lambda: create_app(load_settings(oauth_env))


@pytest.fixture
def client(app_factory: Callable[[], Any]) -> Iterator[TestClient[Any]]:
    with registered(), TestClient(app=app_factory()) as test_client:
        yield test_client


def slack_node(browser: Browser, client: TestClient[Any], fake: FakeProviders, email: str) -> tuple[int, str]:
    browser.register(email)
    credential_id = new_credential(client, email, "slack")
    done = browser.get(consent(fake, "slack", start(browser, credential_id)), follow_redirects=False)
    assert done.status_code == 303, done.text
    wid = browser.create_workflow("Slack")
    node = browser.add_node(wid, "test_slack_channel_post")
    saved = browser.configure(wid, node, {"name": "Post", "credential": str(credential_id), "channel": ""})
    assert saved.status_code == 200, saved.text
    return wid, node


def listed(browser: Browser, wid: int, node: str, query: str = "") -> dict[str, Any]:
    response = browser.get(f"/workflows/{wid}/nodes/{node}/options/channel", params={"q": query} if query else None)
    assert response.status_code == 200, response.text
    return response.json()


def test_channels_are_listed_across_pages_through_the_credential(browser: Browser, client: TestClient[Any],
                                                                 fake_providers: FakeProviders) -> None:
    wid, node = slack_node(browser, client, fake_providers, "chan@example.com")
    answer = listed(browser, wid, node)
    expected = [c for c in CHANNELS if not c["is_archived"]]
    assert answer["error"] is None
    assert answer["choices"] == [{"value": c["id"], "label": f"#{c['name']}"} for c in expected]
    calls = [r for r in fake_providers.slack.requests if r.path.endswith("/conversations.list")]
    assert len(calls) == -(-len(expected) // PAGE_SIZE) > 1  # every page, by next_cursor
    assert all(r.headers["authorization"].startswith("Bearer xoxe.xoxb-") for r in calls)
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert f'data-url="/workflows/{wid}/nodes/{node}/options/channel"' in panel
    assert "Enter an id by hand" in panel


def test_search_filters_on_the_server(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders) -> None:
    wid, node = slack_node(browser, client, fake_providers, "search@example.com")
    assert [c["label"] for c in listed(browser, wid, node, "proj-1")["choices"]] == [
        "#proj-10", "#proj-11", "#proj-12"]
    assert listed(browser, wid, node, "nothing-like-it")["choices"] == []


def test_a_refused_token_shows_slacks_reason_and_the_manual_id_still_saves(
        browser: Browser, client: TestClient[Any], fake_providers: FakeProviders) -> None:
    wid, node = slack_node(browser, client, fake_providers, "revoked@example.com")
    fake_providers.slack.revoke_all()
    answer = listed(browser, wid, node)
    assert answer["choices"] == []
    assert answer["error"].startswith("The list could not be loaded:") and "Slack answered" in answer["error"]
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    credential = __import__("re").search(r'name="credential"[^>]*>.*?value="(\d+)" selected', panel, __import__("re").S)
    form = {"name": "Post", "credential": credential.group(1) if credential else "", "channel": "C0MANUAL1"}
    assert browser.configure(wid, node, form).status_code == 200
    assert 'value="C0MANUAL1"' in browser.get(f"/workflows/{wid}/nodes/{node}").text


def test_invalid_auth_is_named(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders) -> None:
    import httpx

    answer = httpx.get(f"{fake_providers.url}/slack/api/conversations.list",
                       headers={"Authorization": "Bearer xoxb-not-a-token"})
    assert answer.status_code == 200 and answer.json() == {"ok": False, "error": "invalid_auth"}
    assert httpx.get(f"{fake_providers.url}/slack/api/conversations.list").json()["error"] == "not_authed"


def test_rate_limiting_and_a_slow_source_give_a_message_in_place(browser: Browser, client: TestClient[Any],
                                                                 fake_providers: FakeProviders) -> None:
    wid, node = slack_node(browser, client, fake_providers, "slow@example.com")
    fake_providers.slack.rate_limit, fake_providers.slack.retry_after = 1, 7
    assert "Slack is rate limiting: try again in 7 s" in listed(browser, wid, node)["error"]
    fake_providers.slack.delay = 5.0
    answer = listed(browser, wid, node)
    assert answer["choices"] == [] and answer["error"].startswith("The list did not load within 1.5 s")


def test_an_unknown_field_or_another_owners_node_is_404(browser: Browser, second_browser: Browser) -> None:
    browser.register("owner@example.com")
    wid = browser.create_workflow("Mine")
    node = browser.add_node(wid, "sub_workflow")
    assert browser.get(f"/workflows/{wid}/nodes/{node}/options/nope").status_code == 404
    second_browser.register("other@example.com")
    assert second_browser.get(f"/workflows/{wid}/nodes/{node}/options/workflow_id").status_code == 404


def test_sub_workflow_picker_lists_the_owners_other_workflows(browser: Browser, second_browser: Browser) -> None:
    browser.register("picker@example.com")
    ids = {name: browser.create_workflow(name) for name in ("Billing sync", "Billing report", "Welcome mail")}
    second_browser.register("someone@example.com")
    second_browser.create_workflow("Billing of someone else")
    caller = browser.create_workflow("Caller")
    node = browser.add_node(caller, "sub_workflow")
    answer = browser.get(f"/workflows/{caller}/nodes/{node}/options/workflow_id", params={"q": "billing"}).json()
    assert answer["error"] is None
    assert sorted(c["label"] for c in answer["choices"]) == [
        f"Billing report (#{ids['Billing report']})", f"Billing sync (#{ids['Billing sync']})"]
    everything = browser.get(f"/workflows/{caller}/nodes/{node}/options/workflow_id").json()["choices"]
    assert caller not in [c["value"] for c in everything] and len(everything) == 3
    assert browser.configure(caller, node, {"name": "Call", "workflow_id": str(ids["Welcome mail"])}).status_code == 200
