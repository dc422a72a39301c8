"""OAuth connections against the provider fakes (tests/fakes), on SQLite and PostgreSQL: connect for each
provider, refresh ahead of expiry, the 401 path, a dead grant → needs_reconnect, a provider down or slow,
client credentials. Nothing of ours is mocked; only the stored expiry is moved (our clock's side)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.credentials import oauth as oauth_module
from engine.credentials.oauth import OAuthProviderError
from engine.credentials.oauth_connect import check_connection
from engine.credentials.oauth_refresh import OAuthServices, ensure_fresh, refresh_now
from engine.credentials.store import open_credential
from engine.credentials.types import CredentialTestContext
from engine.errors import CredentialNeedsReconnect, NodeError
from engine.migrate import upgrade_async
from engine.netguard import outbound_client
from nodes.credentials import credential_registry
from tests import credential_factories as factories
from tests.engine.oauth_support import (
    connect,
    connected,
    generic_public,
    new_credential,
    oauth_services,
    row,
    set_expiry_in,
)
from tests.fakes import DEFAULT_ACCOUNT, FakeProviders, endpoints


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'oauth.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    return url


@pytest.fixture
async def deps(database: str, fake_providers: FakeProviders) -> AsyncIterator[OAuthServices]:
    async with oauth_services(database, factories.ring("k1"), fake_providers) as services:
        yield services


async def opened(deps: OAuthServices, owner_id: int, credential_id: int) -> Any:
    async with deps.sessions() as session:
        return await open_credential(session, deps.ring, owner_id, credential_id)


def token_requests(fake: FakeProviders, provider: str) -> int:
    path = endpoints(fake, provider)["token_url"].removeprefix(fake.url)
    return sum(1 for r in fake.provider(provider).requests if r.path == path)


async def api_status(fake: FakeProviders, token: str) -> int:
    """What Google's fake API says to a token (200, or 401 once expired / revoked)."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{endpoints(fake, 'google')['api_base_url']}/gmail/v1/users/me/profile",
                                headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


@pytest.mark.parametrize(("type_name", "provider", "account_field", "account"), [
    ("google", "google", "account", DEFAULT_ACCOUNT), ("slack", "slack", "team", None),
    ("notion", "notion", "workspace", None), ("oauth2", "oauth2", None, None)])
async def test_connect_stores_sealed_tokens_and_the_account(deps: OAuthServices, fake_providers: FakeProviders,
                                                           type_name: str, provider: str, account_field: str | None,
                                                           account: str | None) -> None:
    public = generic_public(fake_providers) if type_name == "oauth2" else {}
    secret = {"client_secret": "oauth2-client-secret"} if type_name == "oauth2" else {}
    owner_id, credential_id = await new_credential(deps.sessions, deps.ring, type_name, public, secret)

    await connect(deps, fake_providers, provider, owner_id, credential_id)

    stored = await row(deps.sessions, credential_id)
    assert (stored.status, stored.status_message) == ("ok", None) and stored.expires_at is not None
    cred = await opened(deps, owner_id, credential_id)
    assert cred.secret["access_token"] and cred.secret["refresh_token"] and cred.secret["token_type"] == "bearer"
    assert fake_providers.provider(provider).code_grants == 1
    if account_field:
        assert stored.public[account_field] == (account or stored.public[account_field]) and stored.public[account_field]
    cls = credential_registry().get(type_name)
    if cls().has_test:
        said = await cls().test(CredentialTestContext(http=deps.http, env=deps.env), cred)
        assert said.startswith("Connected")
    assert cred.secret["access_token"] not in repr(stored.public)


async def test_google_asks_for_offline_access(deps: OAuthServices, fake_providers: FakeProviders) -> None:
    owner_id, credential_id = await new_credential(deps.sessions, deps.ring, "google")
    await connect(deps, fake_providers, "google", owner_id, credential_id)
    authorize = next(r for r in fake_providers.google.requests if "/o/oauth2/v2/auth" in r.path)
    assert "access_type=offline" in authorize.query and "prompt=consent" in authorize.query
    assert "code_challenge_method=S256" in authorize.query


async def test_token_is_refreshed_ahead_of_its_expiry(deps: OAuthServices, fake_providers: FakeProviders) -> None:
    fake_providers.google.expires_in = 90
    _, credential_id = await connected(deps, fake_providers, "google", "google")
    first = await ensure_fresh(deps, credential_id, min_valid=60)
    assert fake_providers.google.refresh_grants == 0  # 90 s left: more than asked for

    await set_expiry_in(deps.sessions, credential_id, 30)  # 60 s pass, on both clocks
    fake_providers.google.advance(60)
    second = await ensure_fresh(deps, credential_id, min_valid=60)

    assert second != first and fake_providers.google.refresh_grants == 1
    assert await api_status(fake_providers, second) == 200
    fake_providers.google.advance(40)  # the first token's end: the API refuses it, never saw it expired
    assert await api_status(fake_providers, first) == 401 and await api_status(fake_providers, second) == 200
    assert (await ensure_fresh(deps, credential_id, min_valid=60)) == second  # no second refresh
    assert fake_providers.google.refresh_grants == 1


async def test_unauthorized_refreshes_once(deps: OAuthServices, fake_providers: FakeProviders) -> None:
    _, credential_id = await connected(deps, fake_providers, "google", "google")
    used = await ensure_fresh(deps, credential_id)
    fake_providers.google.advance(3600)  # the access token expired at the provider before we expected it
    assert await api_status(fake_providers, used) == 401

    fresh = await refresh_now(deps, credential_id, used)
    again = await refresh_now(deps, credential_id, used)  # a second node that saw the same 401

    assert fresh != used and again == fresh and fake_providers.google.refresh_grants == 1
    assert await api_status(fake_providers, fresh) == 200


async def test_dead_grant_marks_needs_reconnect_and_reconnect_keeps_the_id(deps: OAuthServices,
                                                                           fake_providers: FakeProviders) -> None:
    owner_id, credential_id = await connected(deps, fake_providers, "slack", "slack")
    before = await opened(deps, owner_id, credential_id)
    fake_providers.slack.revoke_all()
    await set_expiry_in(deps.sessions, credential_id, 5)

    with pytest.raises(CredentialNeedsReconnect, match="needs to be reconnected.*slack refused its grant"):
        await ensure_fresh(deps, credential_id)

    stored = await row(deps.sessions, credential_id)
    assert stored.status == "needs_reconnect" and "invalid" in (stored.status_message or "")
    assert stored.refresh_lock_token is None
    assert (await opened(deps, owner_id, credential_id)).secret == before.secret  # nothing half-written
    asked = token_requests(fake_providers, "slack")
    with pytest.raises(CredentialNeedsReconnect):  # no provider call while it waits for its owner
        await ensure_fresh(deps, credential_id)
    assert token_requests(fake_providers, "slack") == asked

    await connect(deps, fake_providers, "slack", owner_id, credential_id)
    stored = await row(deps.sessions, credential_id)
    assert stored.status == "ok" and stored.id == credential_id
    assert (await ensure_fresh(deps, credential_id)) != before.secret["access_token"]


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_provider_down_or_slow_leaves_the_credential_alone(deps: OAuthServices, fake_providers: FakeProviders,
                                                                 monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    owner_id, credential_id = await connected(deps, fake_providers, "google", "google")
    before, cred = await row(deps.sessions, credential_id), await opened(deps, owner_id, credential_id)
    await set_expiry_in(deps.sessions, credential_id, 5)
    if failure == "down":
        fake_providers.google.down = True
    else:
        monkeypatch.setattr(oauth_module, "TOKEN_TIMEOUT", 0.3)
        fake_providers.google.delay = 3

    with pytest.raises(NodeError) as raised:
        await ensure_fresh(deps, credential_id)

    assert raised.value.kind == ("5xx" if failure == "down" else "timeout")  # retried by the node's policy
    assert cred.secret["access_token"] not in str(raised.value)
    after = await row(deps.sessions, credential_id)
    assert (after.status, after.revision, after.refresh_lock_token) == ("ok", before.revision, None)
    assert (await opened(deps, owner_id, credential_id)).secret == cred.secret


async def test_code_exchange_refused_writes_nothing(deps: OAuthServices, fake_providers: FakeProviders) -> None:
    public = generic_public(fake_providers)
    owner_id, credential_id = await new_credential(deps.sessions, deps.ring, "oauth2", public,
                                                   {"client_secret": "not-the-secret"})
    with pytest.raises(OAuthProviderError, match="invalid_client"):
        await connect(deps, fake_providers, "oauth2", owner_id, credential_id)
    stored = await row(deps.sessions, credential_id)
    assert stored.status == "needs_reconnect" and stored.expires_at is None and stored.revision == 1


async def test_client_credentials_fetched_when_missing_and_again_when_expiring(deps: OAuthServices,
                                                                             fake_providers: FakeProviders) -> None:
    fake_providers.oauth2.expires_in = 3600
    public = {"token_url": endpoints(fake_providers, "oauth2")["token_url"], "client_id": "oauth2-client-id"}
    async with deps.sessions.begin() as session:
        owner = await factories.user(session)
        cred = await factories.credential(session, deps.ring, owner, type_name="oauth2_client_credentials",
                                          public=public, secret={"client_secret": "oauth2-client-secret"})
    first = await ensure_fresh(deps, cred.id)
    assert await ensure_fresh(deps, cred.id) == first and fake_providers.oauth2.client_credentials_grants == 1
    await set_expiry_in(deps.sessions, cred.id, 10)
    assert await ensure_fresh(deps, cred.id) != first and fake_providers.oauth2.client_credentials_grants == 2


async def test_token_requests_go_through_the_ssrf_guard(deps: OAuthServices, fake_providers: FakeProviders) -> None:
    """Authlib's client is bridged to the guarded client: without the loopback allowance the fake is refused."""
    _, credential_id = await connected(deps, fake_providers, "oauth2", "oauth2")
    await set_expiry_in(deps.sessions, credential_id, 5)
    asked = token_requests(fake_providers, "oauth2")
    async with outbound_client() as guarded:  # public addresses only, as in production
        strict = OAuthServices(deps.sessions, deps.ring, deps.registry, guarded, deps.env)
        with pytest.raises(NodeError, match="is not a public address: loopback"):
            await ensure_fresh(strict, credential_id)
    assert token_requests(fake_providers, "oauth2") == asked and (await row(deps.sessions, credential_id)).status == "ok"


async def test_check_connection_refreshes_once_then_marks_needs_reconnect(deps: OAuthServices,
                                                                          fake_providers: FakeProviders) -> None:
    owner_id, credential_id = await connected(deps, fake_providers, "google", "google")
    assert await check_connection(deps, owner_id, credential_id) == f"Connected as {DEFAULT_ACCOUNT}"
    fake_providers.google.advance(3600)  # expired at the provider before our clock says so: 401, refresh, retry
    assert await check_connection(deps, owner_id, credential_id) == f"Connected as {DEFAULT_ACCOUNT}"
    assert fake_providers.google.refresh_grants == 1

    fake_providers.google.revoke_all()  # revoked by the user at Google
    with pytest.raises(CredentialNeedsReconnect, match="google refused its grant"):
        await check_connection(deps, owner_id, credential_id)
    assert (await row(deps.sessions, credential_id)).status == "needs_reconnect"
