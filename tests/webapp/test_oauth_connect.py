"""The connect routes with Litestar's test client, the provider fakes and real SQLite / PostgreSQL: connect
for each provider, reconnect on the same id, and every way a callback can go wrong — each with its own page,
and the credential left as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from engine.credentials import oauth as oauth_module
from engine.credentials import oauth_connect
from engine.credentials.store import create_credential, open_credential
from engine.models import Credential, User
from engine.settings import load_settings
from nodes.credentials import credential_registry
from tests.engine.oauth_support import generic_public
from tests.fakes import FakeProviders, settings_env
from tests.webapp.conftest import Browser
from webapp.app import create_app
from webapp.credentials.oauth import keyring


@pytest.fixture
def oauth_env(database_url: str, tmp_path: Path, fake_providers: FakeProviders) -> dict[str, str]:
    return {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
            "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", **settings_env(fake_providers)}


@pytest.fixture
def app_factory(oauth_env: dict[str, str]) -> Callable[[], Any]:
    return lambda: create_app(load_settings(oauth_env))


@pytest.fixture
def client(app_factory: Callable[[], Any]) -> Iterator[TestClient[Any]]:
    with TestClient(app=app_factory()) as test_client:
        yield test_client


def call(client: TestClient[Any], fn: Callable[[Any], Any]) -> Any:
    async def run() -> Any:
        async with client.app.state.runtime.sessions() as db:
            return await fn(db)
    return client.blocking_portal.call(run)


def new_credential(client: TestClient[Any], email: str, type_name: str, public: dict[str, Any] | None = None,
                   secret: dict[str, Any] | None = None) -> int:
    """A credential as the credentials form makes an OAuth one: no tokens yet, ``needs_reconnect``."""
    app = client.app

    async def create(db: Any) -> int:
        owner = await db.scalar(select(User.id).where(User.email == email))
        row = await create_credential(db, keyring(app.state, app.state.runtime), credential_registry(), owner_id=owner,
                                      type_name=type_name, name=f"My {type_name}", public=public or {},
                                      secret=secret or {})
        row.status, row.status_message = "needs_reconnect", "Not connected yet: connect the account."
        await db.commit()
        return row.id
    return call(client, create)


def credential(client: TestClient[Any], credential_id: int) -> Credential:
    return call(client, lambda db: db.get(Credential, credential_id, populate_existing=True))


def secret_of(client: TestClient[Any], credential_id: int) -> dict[str, Any]:
    app = client.app

    async def opened(db: Any) -> dict[str, Any]:
        row = await db.get_one(Credential, credential_id)
        return (await open_credential(db, keyring(app.state, app.state.runtime), row.owner_id, row.id)).secret
    return call(client, opened)


def consent(fake: FakeProviders, provider: str, authorize_url: str, decision: str = "allow") -> str:
    """The browser at the provider: the consent page (Allow / Deny); returns the callback path + query."""
    with httpx.Client(timeout=10) as http:
        page = http.get(authorize_url)
        assert page.status_code == 200 and 'name="decision"' in page.text, page.text
        answer = http.post(str(page.url), data={"decision": decision})
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.path == "/oauth/callback"
    return f"{location.path}?{location.query.decode()}"


def start(browser: Browser, credential_id: int) -> str:
    response = browser.get(f"/credentials/{credential_id}/connect", follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


@pytest.mark.parametrize(("type_name", "field", "expected"), [
    ("google", "account", "ada@example.com"), ("slack", "team", None), ("notion", "workspace", None),
    ("oauth2", "scopes", "profile")])
def test_connect_through_the_consent_page(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders,
                                          type_name: str, field: str, expected: str | None) -> None:
    browser.register("ada@example.com")
    public, secret = ((generic_public(fake_providers), {"client_secret": "oauth2-client-secret"})
                      if type_name == "oauth2" else ({}, {}))
    credential_id = new_credential(client, "ada@example.com", type_name, public, secret)

    authorize = start(browser, credential_id)
    assert authorize.startswith(fake_providers.url) and "code_challenge=" in authorize
    done = browser.get(consent(fake_providers, type_name, authorize), follow_redirects=False)

    assert done.status_code == 303 and done.headers["location"] == f"/credentials/{credential_id}?connected=1"
    row = credential(client, credential_id)
    assert row.status == "ok" and row.expires_at is not None and row.public[field] == (expected or row.public[field])
    assert row.public[field]
    tokens = secret_of(client, credential_id)
    assert tokens["access_token"] and tokens["refresh_token"]
    assert tokens["access_token"] not in done.text and "oauth_pending" not in done.text


def test_reconnect_keeps_the_id_and_replaces_the_tokens(browser: Browser, client: TestClient[Any],
                                                        fake_providers: FakeProviders) -> None:
    browser.register("ada@example.com")
    credential_id = new_credential(client, "ada@example.com", "google")
    browser.get(consent(fake_providers, "google", start(browser, credential_id)))
    first = secret_of(client, credential_id)["access_token"]
    fake_providers.google.revoke_all()

    done = browser.get(consent(fake_providers, "google", start(browser, credential_id)), follow_redirects=False)

    assert done.headers["location"] == f"/credentials/{credential_id}?connected=1"
    assert secret_of(client, credential_id)["access_token"] != first
    assert fake_providers.google.code_grants == 2


def test_replayed_and_wrong_state_are_refused(browser: Browser, second_browser: Browser, client: TestClient[Any],
                                              fake_providers: FakeProviders) -> None:
    browser.register("ada@example.com")
    second_browser.register("eve@example.com")
    credential_id = new_credential(client, "ada@example.com", "google")
    callback = consent(fake_providers, "google", start(browser, credential_id))

    stolen = second_browser.get(callback)  # another user's browser: the state is not in its session
    assert stolen.status_code == 400 and "not valid" in stolen.text
    assert browser.get(callback, follow_redirects=False).status_code == 303
    tokens = secret_of(client, credential_id)

    replayed = browser.get(callback)
    assert replayed.status_code == 400 and "This sign-in link is not valid" in replayed.text
    forged = browser.get("/oauth/callback?state=made-up&code=x")
    assert forged.status_code == 400 and "used already" in forged.text
    assert secret_of(client, credential_id) == tokens and fake_providers.google.code_grants == 1


def test_expired_state_is_refused(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    browser.register("ada@example.com")
    credential_id = new_credential(client, "ada@example.com", "google")
    callback = consent(fake_providers, "google", start(browser, credential_id))
    monkeypatch.setattr(oauth_connect, "PENDING_SECONDS", -1.0)  # the clock: ten minutes have passed
    answer = browser.get(callback)
    assert answer.status_code == 400 and "took too long" in answer.text
    assert credential(client, credential_id).status == "needs_reconnect"


def test_access_denied(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders) -> None:
    browser.register("ada@example.com")
    credential_id = new_credential(client, "ada@example.com", "slack")
    answer = browser.get(consent(fake_providers, "slack", start(browser, credential_id), decision="deny"))
    assert answer.status_code == 400 and "Access was not granted" in answer.text
    assert f'href="/credentials/{credential_id}/connect"' in answer.text  # try again
    row = credential(client, credential_id)
    assert row.status == "needs_reconnect" and row.revision == 1 and fake_providers.slack.code_grants == 0


@pytest.mark.parametrize(("failure", "status", "text"), [
    ("down", 502, "could not be reached"), ("slow", 504, "did not answer within"),
    ("refused", 502, "refused the connection")])
def test_provider_failures_at_the_exchange_change_nothing(browser: Browser, client: TestClient[Any],
                                                          fake_providers: FakeProviders, monkeypatch: pytest.MonkeyPatch,
                                                          failure: str, status: int, text: str) -> None:
    browser.register("ada@example.com")
    credential_id = new_credential(client, "ada@example.com", "google")
    browser.get(consent(fake_providers, "google", start(browser, credential_id)))  # connected once
    before = secret_of(client, credential_id)
    callback = consent(fake_providers, "google", start(browser, credential_id))  # reconnecting
    if failure == "down":
        fake_providers.google.down = True
    elif failure == "slow":
        monkeypatch.setattr(oauth_module, "TOKEN_TIMEOUT", 0.3)
        fake_providers.google.delay = 3
    else:
        fake_providers.google.revoke_all()  # the code itself is refused: invalid_grant
        fake_providers.google.codes.clear()

    answer = browser.get(callback)

    assert answer.status_code == status and text in answer.text, answer.text
    assert secret_of(client, credential_id) == before and credential(client, credential_id).status == "ok"


def test_connect_is_404_for_another_users_credential(browser: Browser, second_browser: Browser,
                                                     client: TestClient[Any]) -> None:
    browser.register("ada@example.com")
    second_browser.register("eve@example.com")
    credential_id = new_credential(client, "ada@example.com", "google")
    assert second_browser.get(f"/credentials/{credential_id}/connect").status_code == 404
    assert second_browser.get("/credentials/99999/connect").status_code == 404


def test_connect_without_an_oauth_app_says_which_setting(
                                                         oauth_env: dict[str, str]) -> None:
    oauth_env.pop("PATCHWIRE_OAUTH_SLACK_CLIENT_ID")
    with TestClient(app=create_app(load_settings(oauth_env))) as other:
        person = Browser(other)
        person.register("ada@example.com")
        credential_id = new_credential(other, "ada@example.com", "slack")
        answer = person.get(f"/credentials/{credential_id}/connect")
    assert answer.status_code == 409 and "PATCHWIRE_OAUTH_SLACK_CLIENT_ID" in answer.text
