"""Helpers of the OAuth tests: a database (SQLite or PostgreSQL), the engine's OAuth services pointed at the
provider fakes, and a connection made the way the browser makes it (consent at the fake, code back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials import KeyRing
from engine.credentials.oauth_connect import begin_connect, finish_connect
from engine.credentials.oauth_refresh import OAuthServices
from engine.database import make_engine, make_sessionmaker
from engine.models import Credential
from engine.netguard import outbound_client, parse_networks
from nodes.credentials import credential_registry
from tests import credential_factories as factories
from tests.fakes import FakeProviders, endpoints, settings_env
from tests.fakes.flows import query_of

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
"""Never called: the consent's redirect is read from the fake's answer, not followed."""


@asynccontextmanager
async def oauth_services(url: str, ring: KeyRing, fake: FakeProviders) -> AsyncIterator[OAuthServices]:
    """A worker's view: its own database engine, the guarded HTTP client, the fakes' settings."""
    env = settings_env(fake)
    engine = make_engine(url)
    try:
        async with outbound_client(parse_networks(env["PATCHWIRE_HTTP_ALLOW_NETWORKS"])) as http:
            yield OAuthServices(make_sessionmaker(engine), ring, credential_registry(), http, env)
    finally:
        await engine.dispose()


async def new_credential(sessions: async_sessionmaker[AsyncSession], ring: KeyRing, type_name: str,
                         public: dict[str, Any] | None = None, secret: dict[str, Any] | None = None,
                         owner_id: int | None = None) -> tuple[int, int]:
    """``(owner id, credential id)`` of a credential not connected yet (as the credentials form makes it)."""
    async with sessions.begin() as session:
        owner = owner_id or await factories.user(session)
        row = await factories.credential(session, ring, owner, type_name=type_name, public=public or {},
                                         secret=secret or {})
        row.status, row.status_message = "needs_reconnect", "not connected yet"
        return owner, row.id


async def connect(deps: OAuthServices, fake: FakeProviders, provider: str, owner_id: int, credential_id: int,
                  decision: str = "allow") -> dict[str, str]:
    """Start connecting, let the fake's consent answer, finish with its code; returns the callback's query."""
    url, pending = await begin_connect(deps, owner_id, credential_id, REDIRECT_URI)
    fake.provider(provider).auto_consent = decision == "allow"
    async with httpx.AsyncClient(timeout=10) as browser:
        answer = await browser.get(url)
        if answer.status_code == 200:  # the consent page: press the button
            answer = await browser.post(str(answer.url), data={"decision": decision})
    assert answer.status_code == 302, answer.text
    query = query_of(answer.headers["location"])
    assert query.get("state") == pending.state
    if "code" in query:
        await finish_connect(deps, pending, query["code"])
    return query


def generic_public(fake: FakeProviders) -> dict[str, Any]:
    """The generic ``oauth2`` type's fields for the fake's Authlib server (its default client)."""
    urls = endpoints(fake, "oauth2")
    return {"authorize_url": urls["authorize_url"], "token_url": urls["token_url"], "client_id": "oauth2-client-id",
            "scopes": "profile"}


async def connected(deps: OAuthServices, fake: FakeProviders, type_name: str, provider: str) -> tuple[int, int]:
    """A credential of ``type_name`` connected at the fake (the generic type with the fake's own client)."""
    public, secret = ({}, {}) if type_name != "oauth2" else (generic_public(fake), {"client_secret": "oauth2-client-secret"})
    owner_id, credential_id = await new_credential(deps.sessions, deps.ring, type_name, public, secret)
    await connect(deps, fake, provider, owner_id, credential_id)
    return owner_id, credential_id


async def row(sessions: async_sessionmaker[AsyncSession], credential_id: int) -> Credential:
    async with sessions() as session:
        return await session.get_one(Credential, credential_id, populate_existing=True)


async def set_expiry_in(sessions: async_sessionmaker[AsyncSession], credential_id: int, seconds: float) -> None:
    """Our clock's side of "time passed": the stored expiry moves closer (the fake's clock is moved alike)."""
    from datetime import UTC, datetime, timedelta

    async with sessions.begin() as session:
        await session.execute(update(Credential).where(Credential.id == credential_id)
                              .values(expires_at=datetime.now(UTC) + timedelta(seconds=seconds)))
