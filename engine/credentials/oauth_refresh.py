"""Access tokens kept fresh: refreshed ahead of expiry, under a per-credential lock in the database.

A rotating refresh token (Slack, Notion, the generic server) can be spent once: two workers refreshing the
same connection at once would leave one of them with ``invalid_grant`` and the connection dead. So a refresh
is done only by the holder of the credential's lock, a compare-and-set on its row::

    UPDATE credentials SET refresh_lock_until = now + 30, refresh_lock_token = :mine
     WHERE id = :id AND (refresh_lock_until IS NULL OR refresh_lock_until < now)

The holder re-reads the row (another worker may have refreshed meanwhile), asks the provider, and in one
transaction stores the new tokens (``revision`` + 1) and releases the lock. A worker that does not get the lock re-reads the row until its ``revision`` changes (then it uses the
new token), or the lock is free again (the holder failed, or died: the lock expires), then takes it itself.
The wait is bounded (``WAIT_LIMIT``); the token request's timeout (engine/credentials/oauth.py) is shorter
than the lock, so a live holder never outlives it.

A dead grant marks the credential ``needs_reconnect`` (its message says why) and raises
``CredentialNeedsReconnect``; a provider that is down or slow raises a retryable ``NodeError`` and leaves
the credential as it was.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials.oauth import (
    TOKEN_TIMEOUT,
    OAuthGrantRevoked,
    OAuthProviderError,
    client_of,
    credential_spec,
    expires_at_of,
    fetch_client_credentials,
    refresh,
    secret_token,
)
from engine.credentials.registry import CredentialRegistry
from engine.credentials.sealing import KeyRing
from engine.credentials.store import mark_status, open_row, store_tokens
from engine.credentials.types import CredentialType, OpenCredential
from engine.errors import CredentialNeedsReconnect, CredentialNotFound, NodeError
from engine.models import Credential

__all__ = ["LOCK_SECONDS", "WAIT_LIMIT", "OAuthDeps", "OAuthServices", "ensure_fresh", "is_client_credentials",
           "refresh_now"]

LOCK_SECONDS = TOKEN_TIMEOUT + 10.0
"""How long the refresh lock lasts: longer than a token request may take, so a live holder keeps it."""
WAIT_LIMIT = LOCK_SECONDS + 15.0
"""How long a worker waits for another's refresh before it gives up (a retryable timeout)."""
POLL = 0.1


class OAuthDeps(Protocol):
    """What refreshing needs (the worker's ``Vault`` has these; so has ``OAuthServices``)."""

    sessions: async_sessionmaker[AsyncSession]
    ring: KeyRing
    registry: CredentialRegistry
    http: httpx.AsyncClient
    env: Mapping[str, str]


@dataclass
class OAuthServices:
    sessions: async_sessionmaker[AsyncSession]
    ring: KeyRing
    registry: CredentialRegistry
    http: httpx.AsyncClient
    env: Mapping[str, str]


def is_client_credentials(cls: type[CredentialType]) -> bool:
    """A type whose token is fetched with the client's own id and secret (no refresh token, no consent)."""
    return getattr(cls, "grant_type", "authorization_code") == "client_credentials"


async def ensure_fresh(deps: OAuthDeps, credential_id: int, min_valid: float = 60.0) -> str:
    """The credential's access token, valid for at least ``min_valid`` more seconds: refreshed ahead of its
    expiry when it is closer than that (a token whose expiry is unknown is used as it is)."""
    row, cred = await _load(deps, credential_id)
    if cred.secret.get("access_token") and _valid_for(row, min_valid):
        return str(cred.secret["access_token"])
    started = row.revision
    return await _refresh_under_lock(deps, row, lambda now: now.revision != started or _valid_for(now, min_valid))


async def refresh_now(deps: OAuthDeps, credential_id: int, used_token: str) -> str:
    """After a 401 for ``used_token``: a new access token — the one another worker stored since, if any."""
    row, cred = await _load(deps, credential_id)
    current = cred.secret.get("access_token")
    if current and current != used_token:
        return str(current)
    started = row.revision
    return await _refresh_under_lock(deps, row, lambda now: now.revision != started)


def _valid_for(row: Credential, seconds: float) -> bool:
    if row.expires_at is None:
        return True
    return (row.expires_at - datetime.now(UTC)).total_seconds() >= seconds


async def _load(deps: OAuthDeps, credential_id: int) -> tuple[Credential, OpenCredential]:
    async with deps.sessions() as session:
        row = await session.get(Credential, credential_id, populate_existing=True)
        if row is None:
            raise CredentialNotFound(credential_id)
        cred = open_row(deps.ring, row)
    if row.status == "needs_reconnect":
        raise CredentialNeedsReconnect(_reconnect_text(row.name, row.status_message))
    if not cred.secret.get("access_token") and not is_client_credentials(deps.registry.get(row.type_name)):
        raise CredentialNeedsReconnect(_reconnect_text(row.name, "not connected yet"))
    return row, cred


def _reconnect_text(name: str, why: str | None) -> str:
    return f"credential “{name}” needs to be reconnected" + (f": {why}" if why else "")


async def _refresh_under_lock(deps: OAuthDeps, row: Credential, done: Callable[[Credential], bool]) -> str:
    """Refresh as the lock's holder, or wait for the holder's result (module docstring)."""
    holder = secrets.token_hex(16)
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        if await _take_lock(deps.sessions, row.id, holder):
            return await _refresh_holding(deps, row.id, holder, done)
        if time.monotonic() > deadline:
            raise NodeError(f"credential “{row.name}”: another worker's token refresh did not finish within "
                            f"{WAIT_LIMIT:g} s", kind="timeout")
        await asyncio.sleep(POLL)  # the holder's commit is in another process: nothing to wait on but the row
        row, cred = await _load(deps, row.id)
        if done(row) and cred.secret.get("access_token"):
            return str(cred.secret["access_token"])


async def _take_lock(sessions: async_sessionmaker[AsyncSession], credential_id: int, holder: str) -> bool:
    now = time.time()
    async with sessions.begin() as session:
        result = await session.execute(
            update(Credential).where(Credential.id == credential_id, or_(Credential.refresh_lock_until.is_(None),
                                                                         Credential.refresh_lock_until < now))
            .values(refresh_lock_until=now + LOCK_SECONDS, refresh_lock_token=holder)
            .execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def _release(holder: str, credential_id: int) -> Any:
    return (update(Credential).where(Credential.id == credential_id, Credential.refresh_lock_token == holder)
            .values(refresh_lock_until=None, refresh_lock_token=None).execution_options(synchronize_session=False))


_SHIELDED: set[asyncio.Task[str]] = set()
"""Refreshes that outlive a cancelled caller (kept referenced until they end)."""


async def _refresh_holding(deps: OAuthDeps, credential_id: int, holder: str, done: Callable[[Credential], bool]) -> str:
    """Shielded: a node cancelled (its time limit, a shutdown) while the provider rotates the refresh token must
    not lose the new one — the refresh runs to its end, stores what it got and releases the lock."""
    task = asyncio.ensure_future(_refresh_and_release(deps, credential_id, holder, done))
    _SHIELDED.add(task)
    task.add_done_callback(_SHIELDED.discard)
    return await asyncio.shield(task)


async def _refresh_and_release(deps: OAuthDeps, credential_id: int, holder: str,
                               done: Callable[[Credential], bool]) -> str:
    try:
        row, cred = await _load(deps, credential_id)
        if done(row) and cred.secret.get("access_token"):
            return str(cred.secret["access_token"])  # refreshed by another worker just before we took the lock
        token = await _grant(deps, row, cred)
        return await _store(deps, row, holder, token)
    except OAuthGrantRevoked as exc:
        message = _reconnect_text(cred.name, f"{exc.provider} refused its grant ({exc.error})")
        await _mark(deps, credential_id, holder, "needs_reconnect", message)
        raise CredentialNeedsReconnect(message) from None
    except OAuthProviderError as exc:
        await _mark(deps, credential_id, holder, "error", str(exc))
        raise
    finally:
        async with deps.sessions.begin() as session:  # a no-op when _store released it with the new tokens
            await session.execute(_release(holder, credential_id))


async def _grant(deps: OAuthDeps, row: Credential, cred: OpenCredential) -> dict[str, Any]:
    cls = deps.registry.get(row.type_name)
    spec = credential_spec(cls, cred.public, deps.env)
    client_id, client_secret = client_of(spec, cred, deps.env)
    if is_client_credentials(cls):
        return await fetch_client_credentials(spec, client_id, client_secret, deps.http)
    refresh_token = cred.secret.get("refresh_token")
    if not refresh_token:
        raise OAuthGrantRevoked(spec.provider, "no_refresh_token", "the access token expired and the connection "
                                "holds no refresh token")
    return await refresh(spec, client_id, client_secret, deps.http, str(refresh_token))


async def _store(deps: OAuthDeps, read: Credential, holder: str, token: dict[str, Any]) -> str:
    """Keep the new tokens and release the lock, in one transaction. They are stored even if the row was
    written meanwhile (a key rotation, an edit of another field: ``store_tokens`` merges onto what is there):
    the provider may have rotated the refresh token, and the one just received is the only one left."""
    async with deps.sessions.begin() as session:
        row = await session.get_one(Credential, read.id, populate_existing=True)
        await store_tokens(session, deps.ring, row, secret_token(token), expires_at=expires_at_of(token))
        await session.execute(_release(holder, read.id))
    return str(token["access_token"])


async def _mark(deps: OAuthDeps, credential_id: int, holder: str, status: str, message: str) -> None:
    async with deps.sessions.begin() as session:
        await mark_status(session, credential_id, status, message)
        await session.execute(_release(holder, credential_id))
