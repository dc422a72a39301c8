"""Connecting an OAuth credential: the authorization request and the code exchange (web-free).

``begin_connect`` makes the authorization URL and the ``PendingConnect`` the web layer keeps in the user's
server-side session: a random ``state`` bound to the user, the credential and a PKCE ``code_verifier``,
single use, ``PENDING_SECONDS`` long. ``finish_connect`` exchanges the code, asks the type which account
it reached (``OAuthType.connected_account``), and only then stores the tokens and the account's public
fields in one transaction: a failure at any step leaves the credential as it was. ``check_connection`` is
the *Test* button of an OAuth credential.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from engine.credentials.oauth import (
    authorization_url,
    client_of,
    credential_spec,
    exchange_code,
    expires_at_of,
    secret_token,
)
from engine.credentials.oauth_refresh import OAuthDeps, ensure_fresh, refresh_now
from engine.credentials.oauth_types import OAuthType, OAuthUnauthorized
from engine.credentials.store import (
    get_credential,
    mark_status,
    open_credential,
    open_row,
    store_tokens,
    update_credential,
)
from engine.credentials.types import CredentialTestContext, CredentialType, OAuthSpec, OpenCredential
from engine.errors import CredentialError, CredentialNeedsReconnect
from engine.models import Credential

__all__ = ["PENDING_SECONDS", "ConnectRefused", "PendingConnect", "begin_connect", "check_connection",
           "finish_connect"]

PENDING_SECONDS = 600.0


class ConnectRefused(CredentialError):
    """A connection that cannot start or finish; ``title`` and the message are for the person connecting."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        self.title, self.status = title, status
        super().__init__(message)


@dataclass(frozen=True)
class PendingConnect:
    """One authorization request in flight (kept in the user's server-side session, never in a cookie)."""

    state: str
    user_id: int
    credential_id: int
    code_verifier: str
    redirect_uri: str
    created: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PendingConnect | None:
        try:
            return cls(**data)
        except TypeError:
            return None

    def expired(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.created > PENDING_SECONDS


async def _connectable(deps: OAuthDeps, owner_id: int, credential_id: int) -> tuple[Credential, OpenCredential,
                                                                                     type[OAuthType], OAuthSpec]:
    async with deps.sessions() as session:
        row = await get_credential(session, owner_id, credential_id)
        cred = open_row(deps.ring, row)
    cls = deps.registry.get(row.type_name)
    if cls.oauth is None or not issubclass(cls, OAuthType):
        raise ConnectRefused("Nothing to connect", f"“{row.name}” is a {cls.title} credential: it has no account "
                             "to connect in the browser.")
    return row, cred, cls, credential_spec(cls, cred.public, deps.env)


async def begin_connect(deps: OAuthDeps, owner_id: int, credential_id: int, redirect_uri: str) -> tuple[str, PendingConnect]:
    """The provider's authorization URL for the credential, and the pending request to keep."""
    row, cred, _, spec = await _connectable(deps, owner_id, credential_id)
    client_id, _ = client_of(spec, cred, deps.env)
    if not client_id:
        variable = f"PATCHWIRE_OAUTH_{spec.provider.upper()}_CLIENT_ID"
        raise ConnectRefused("No OAuth app configured", f"Connecting needs an OAuth app registered at {spec.provider}: "
                             f"set {variable} and its _CLIENT_SECRET (docs/credentials.md, OAuth connections), or "
                             "enter your own client ID and secret in the credential.", status=409)
    if not spec.authorize_url or not spec.token_url:
        raise ConnectRefused("Endpoints missing", "The credential needs an authorization URL and a token URL.", 409)
    pending = PendingConnect(state=secrets.token_urlsafe(32), user_id=owner_id, credential_id=row.id,
                             code_verifier=secrets.token_urlsafe(64), redirect_uri=redirect_uri, created=time.time())
    url = await authorization_url(spec, client_id, deps.http, redirect_uri=redirect_uri, state=pending.state,
                                  code_verifier=pending.code_verifier)
    return url, pending


async def finish_connect(deps: OAuthDeps, pending: PendingConnect, code: str) -> Credential:
    """Exchange ``code``, find the account, then store tokens and account together (or nothing)."""
    _, cred, cls, spec = await _connectable(deps, pending.user_id, pending.credential_id)
    client_id, client_secret = client_of(spec, cred, deps.env)
    token = await exchange_code(spec, client_id, client_secret, deps.http, code=code,
                                redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier)
    account = await cls().connected_account(CredentialTestContext(http=deps.http, env=deps.env), cred.public, token)
    async with deps.sessions.begin() as session:
        row = await get_credential(session, pending.user_id, pending.credential_id)
        await store_tokens(session, deps.ring, row, secret_token(token), expires_at=expires_at_of(token))
        if account:
            await update_credential(session, deps.ring, deps.registry, owner_id=row.owner_id, credential_id=row.id,
                                    public={**row.public, **account})
    return row


async def check_connection(deps: OAuthDeps, owner_id: int, credential_id: int) -> str:
    """The *Test* of an OAuth credential: its type's ``test`` with a fresh token (refreshed ahead, and once
    more after a 401). A dead grant, or a token refused even after a refresh, marks it ``needs_reconnect``
    (``CredentialNeedsReconnect``); the success text otherwise ("Connected as …")."""
    async with deps.sessions() as session:
        row = await get_credential(session, owner_id, credential_id)
    cls = deps.registry.get(row.type_name)
    token = await ensure_fresh(deps, row.id)
    try:
        return await _test_with(deps, cls, owner_id, row.id)
    except OAuthUnauthorized:
        await refresh_now(deps, row.id, token)
    try:
        return await _test_with(deps, cls, owner_id, row.id)
    except OAuthUnauthorized as exc:
        message = f"credential “{row.name}” needs to be reconnected: {exc}"
        async with deps.sessions.begin() as session:
            await mark_status(session, row.id, "needs_reconnect", message)
        raise CredentialNeedsReconnect(message) from None


async def _test_with(deps: OAuthDeps, cls: type[CredentialType], owner_id: int, credential_id: int) -> str:
    async with deps.sessions() as session:
        cred = await open_credential(session, deps.ring, owner_id, credential_id)
    return await cls().test(CredentialTestContext(http=deps.http, env=deps.env), cred)
