"""Two workers (each with its own database engine, as two processes have) refreshing one connection at once:
the per-credential lock lets one of them spend the rotating refresh token; the other waits and uses the new
token. Without the lock the second refresh would be refused (``invalid_grant``) and the connection die."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


async def test_a_cancelled_caller_does_not_lose_a_rotated_refresh_token(database: str,
                                                                         fake_providers: FakeProviders) -> None:
    """A node cancelled (its time limit) while Slack rotates the refresh token: the refresh still stores the new
    pair and frees the lock, so the next refresh uses the live refresh token instead of the spent one."""
    ring = factories.ring("k1")
    async with oauth_services(database, ring, fake_providers) as deps:
        _, credential_id = await connected(deps, fake_providers, "slack", "slack")
        before = (await row(deps.sessions, credential_id)).revision
        await set_expiry_in(deps.sessions, credential_id, 5)
        fake_providers.slack.delay = 0.5
        asked = len(fake_providers.slack.requests)
        caller = asyncio.create_task(ensure_fresh(deps, credential_id))
        await until(lambda: len(fake_providers.slack.requests) > asked)  # the refresh request is at Slack
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller

        stored = await until_async(lambda: row(deps.sessions, credential_id), lambda r: r.refresh_lock_token is None)
        assert stored.revision == before + 1 and fake_providers.slack.refresh_grants == 1
        fake_providers.slack.delay = 0
        await set_expiry_in(deps.sessions, credential_id, 5)
        await ensure_fresh(deps, credential_id)  # with the refresh token the cancelled refresh stored
        assert fake_providers.slack.refresh_grants == 2 and (await row(deps.sessions, credential_id)).status == "ok"


async def until(condition: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def until_async(read: Any, condition: Any, timeout: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition(found := await read()):
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
    return found
