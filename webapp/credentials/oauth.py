"""The OAuth connect routes: ``GET /credentials/{id}/connect`` and ``GET /oauth/callback``.

Connect makes the authorization URL (engine/credentials/oauth_connect.py) and keeps the pending request in
the user's server-side session, under its random ``state``: bound to the user and the credential, with the
PKCE code verifier, single use (taken out of the session whatever the outcome), ``PENDING_SECONDS`` long.
Reconnect is the same route on an existing credential: the id stays, so workflows need no edit.

The callback refuses an unknown, replayed or expired ``state``, shows the provider's refusal
(``error=access_denied``) and the provider's failures (an error answer, down, slow) each with its own
page; the credential keeps its previous tokens unless everything succeeded. The redirect URI is
``<PATCHWIRE_PUBLIC_URL or the request's base URL>/oauth/callback`` — the one to register with providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from litestar import MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from engine.credentials.keys import load_keyring
from engine.credentials.oauth import OAuthProviderError
from engine.credentials.oauth_connect import ConnectRefused, PendingConnect, begin_connect, finish_connect
from engine.credentials.oauth_refresh import OAuthServices
from engine.credentials.sealing import KeyRing
from engine.errors import CredentialNotFound, NodeError
from engine.models import User
from engine.netguard import outbound_client, parse_networks
from nodes.credentials import credential_registry
from webapp.runtime import Runtime

PENDING_KEY = "oauth_pending"
MAX_PENDING = 5
"""Connections a session may have in flight at once (several tabs); the oldest is dropped past that."""
CALLBACK_PATH = "/oauth/callback"


def redirect_uri(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    base = runtime.settings.public_url or str(request.base_url).rstrip("/")
    return base + CALLBACK_PATH


def keyring(state: State, runtime: Runtime) -> KeyRing:
    """The web process's key ring (loaded once; a ring built from the key file re-reads it for a new key id)."""
    ring = getattr(runtime, "keyring", None) or state.get("credential_keyring")
    if ring is None:
        ring = state["credential_keyring"] = load_keyring(runtime.settings)
    return ring


@asynccontextmanager
async def oauth_services(state: State, runtime: Runtime) -> AsyncIterator[OAuthServices]:
    """What connecting needs, with a guarded HTTP client of its own (a connect is rare: no pool to share)."""
    settings = runtime.settings
    async with outbound_client(parse_networks(settings.http_allow_networks)) as http:
        yield OAuthServices(runtime.sessions, keyring(state, runtime), credential_registry(), http,
                            settings.provider_env)


def remember(session: dict[str, Any], pending: PendingConnect) -> None:
    kept = {state: data for state, data in (session.get(PENDING_KEY) or {}).items()
            if (entry := PendingConnect.from_dict(data)) is not None and not entry.expired()}
    kept[pending.state] = pending.to_dict()
    session[PENDING_KEY] = dict(sorted(kept.items(), key=lambda item: item[1]["created"])[-MAX_PENDING:])


def take(session: dict[str, Any], state: str) -> PendingConnect | None:
    """The pending connection of ``state``, removed from the session (single use); ``None`` if unknown."""
    pending = dict(session.get(PENDING_KEY) or {})
    found = PendingConnect.from_dict(pending.pop(state, None)) if state else None
    if pending:
        session[PENDING_KEY] = pending
    else:
        session.pop(PENDING_KEY, None)
    return found


def refused(title: str, detail: str, status: int, credential_id: int | None = None) -> Template:
    return Template("credentials/oauth_error.html", status_code=status, media_type=MediaType.HTML,
                    context={"title": title, "detail": detail, "credential_id": credential_id})


@get("/credentials/{credential_id:int}/connect", name="credential_connect")
async def connect(request: Request[User, Any, Any], state: State, runtime: NamedDependency[Runtime],
                  credential_id: FromPath[int]) -> Response[Any]:
    """Start (or restart) the connection of one of the user's OAuth credentials."""
    async with oauth_services(state, runtime) as deps:
        try:
            url, pending = await begin_connect(deps, request.user.id, credential_id, redirect_uri(request, runtime))
        except CredentialNotFound:
            raise NotFoundException() from None
        except ConnectRefused as exc:
            return refused(exc.title, str(exc), exc.status, credential_id)
    remember(request.session, pending)
    return Redirect(url, status_code=303)


@get(CALLBACK_PATH, name="oauth_callback")
async def callback(request: Request[User, Any, Any], state: State, runtime: NamedDependency[Runtime],
                   oauth_state: Annotated[str, QueryParameter(name="state")] = "", code: FromQuery[str] = "", error: FromQuery[str] = "",
                   error_description: FromQuery[str] = "") -> Response[Any]:
    """Where the provider sends the browser back: check the state, exchange the code, store the tokens."""
    pending = take(request.session, oauth_state)
    if pending is None or pending.user_id != request.user.id:
        return refused("This sign-in link is not valid", "The answer from the provider does not belong to a "
                       "connection started in this browser session, or it was used already. Start again from "
                       "the credential's page.", 400)
    if pending.expired():
        return refused("The connection took too long", "More than 10 minutes passed since you started "
                       "connecting. Start again: nothing was changed.", 400, pending.credential_id)
    if error:
        return _provider_refusal(error, error_description, pending.credential_id)
    if not code:
        return refused("No authorization code", "The provider sent neither a code nor an error. Nothing was "
                       "changed.", 400, pending.credential_id)
    return await _finish(state, runtime, pending, code)


def _provider_refusal(error: str, description: str, credential_id: int) -> Template:
    if error == "access_denied":
        return refused("Access was not granted", "You (or the provider) declined the access request. The "
                       "credential was not changed; connect again when you are ready.", 400, credential_id)
    said = f": {description}" if description else ""
    return refused("The provider refused the connection", f"It answered {error}{said}. The credential was not "
                   "changed.", 400, credential_id)


async def _finish(state: State, runtime: Runtime, pending: PendingConnect, code: str) -> Response[Any]:
    async with oauth_services(state, runtime) as deps:
        try:
            await finish_connect(deps, pending, code)
        except CredentialNotFound:
            raise NotFoundException("The credential was deleted while you were connecting it.") from None
        except (ConnectRefused, OAuthProviderError) as exc:
            return refused("The provider refused the connection", f"{exc} The credential was not changed.", 502,
                           pending.credential_id)
        except NodeError as exc:
            status = 504 if exc.kind == "timeout" else 502
            return refused("The provider could not be reached", f"{exc}. The credential was not changed; try "
                           "again in a moment.", status, pending.credential_id)
    return Redirect(f"/credentials/{pending.credential_id}?connected=1", status_code=303)


OAUTH_ROUTES = [connect, callback]
