"""Two workers (each with its own database engine, as two processes have) refreshing one connection at once:
the per-credential lock lets one of them spend the rotating refresh token; the other waits and uses the new
token. Without the lock the second refresh would be refused (``invalid_grant``) and the connection die."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.credentials.oauth_refresh import ensure_fresh, refresh_now
from engine.migrate import upgrade_async
from tests import credential_factories as factories
from tests.engine.oauth_support import connected, oauth_services, row, set_expiry_in
from tests.fakes import FakeProviders


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'race.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    return url


@pytest.mark.parametrize("provider", ["slack", "oauth2"])
async def test_two_workers_spend_one_refresh(database: str, fake_providers: FakeProviders, provider: str) -> None:
    ring = factories.ring("k1")
    state = fake_providers.provider(provider)
    async with oauth_services(database, ring, fake_providers) as first, \
            oauth_services(database, ring, fake_providers) as second:
        _, credential_id = await connected(first, fake_providers, provider, provider)
        old = await ensure_fresh(first, credential_id)
        state.delay = 0.3  # the holder's refresh is in flight while the other worker asks
        for round_ in range(3):
            await set_expiry_in(first.sessions, credential_id, 5)
            tokens = await asyncio.gather(ensure_fresh(first, credential_id), ensure_fresh(second, credential_id),
                                          ensure_fresh(first, credential_id))
            assert len(set(tokens)) == 1 and tokens[0] != old, tokens
            assert state.refresh_grants == round_ + 1
            old = tokens[0]
        stored = await row(first.sessions, credential_id)
        assert stored.status == "ok" and stored.refresh_lock_token is None


async def test_two_workers_after_the_same_401_spend_one_refresh(database: str, fake_providers: FakeProviders) -> None:
    ring = factories.ring("k1")
    async with oauth_services(database, ring, fake_providers) as first, \
            oauth_services(database, ring, fake_providers) as second:
        _, credential_id = await connected(first, fake_providers, "slack", "slack")
        used = await ensure_fresh(first, credential_id)
        fake_providers.slack.delay = 0.3
        tokens = await asyncio.gather(refresh_now(first, credential_id, used), refresh_now(second, credential_id, used))
        assert tokens[0] == tokens[1] != used and fake_providers.slack.refresh_grants == 1
