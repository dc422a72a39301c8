"""``/slack/…``: Slack's OAuth v2 dialect (docs.slack.dev/authentication/installing-with-oauth,
…/using-token-rotation, reference/methods/oauth.v2.access, auth.test, auth.revoke).

Every Web API answer is HTTP 200 with ``"ok"``; failures are ``{"ok": false, "error": "<code>"}``.
``oauth.v2.access`` takes client credentials by HTTP Basic or form fields, ``code`` (+ ``code_verifier``)
or ``grant_type=refresh_token``. With token rotation on (the default here) it answers a
``xoxe.xoxb-1-…`` bot token with ``expires_in`` 43200 and a ``xoxe-1-…`` refresh token that works once;
off, one long-lived ``xoxb-…`` token.

``conversations.list`` (docs.slack.dev/reference/methods/conversations.list) lists the workspace's
channels (``CHANNELS``) with cursor pagination: ``limit`` (default 100, at most 1000), an opaque
``cursor`` from ``response_metadata.next_cursor`` (empty on the last page; a bad one answers
``invalid_cursor``), ``types`` (comma-separated, default ``public_channel``) and ``exclude_archived``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from litestar import Request, Response, Router, route

from tests.fakes.authserver import FakeAuthorizationServer
from tests.fakes.state import ProviderState, stable_id
from tests.fakes.web import authorize, bearer, json_response, oauth_request, read_body, token_result

TEAM_NAME = "Fake Team"
APP_ID = "A0FAKEAPP1"


CHANNEL_TYPES = ("public_channel", "private_channel", "mpim", "im")
MAX_LIST_LIMIT = 1000


def _channel(name: str, *, private: bool = False, archived: bool = False) -> dict[str, Any]:
    return {"id": stable_id("C", name), "name": name, "is_channel": not private, "is_group": private,
            "is_im": False, "is_mpim": False, "is_private": private, "is_archived": archived, "is_general": name == "general",
            "name_normalized": name, "is_member": not archived, "num_members": 3}


CHANNELS = [_channel("general"), _channel("random"), *[_channel(f"proj-{n:02d}") for n in range(1, 13)],
            _channel("secret-ops", private=True), _channel("old-news", archived=True)]
"""The fake workspace's conversations, in Slack's order (creation order)."""


def _type_of(channel: dict[str, Any]) -> str:
    return "private_channel" if channel["is_private"] else "public_channel"


def _cursor(channel_id: str) -> str:
    return base64.b64encode(f"next_id:{channel_id}".encode()).decode()


def _start_of(cursor: str, channels: list[dict[str, Any]]) -> int | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    ids = [c["id"] for c in channels]
    key = text.removeprefix("next_id:")
    return ids.index(key) if text.startswith("next_id:") and key in ids else None


def conversations_page(args: dict[str, Any]) -> dict[str, Any]:
    """One page of ``conversations.list`` for the (already authenticated) arguments."""
    types = [t.strip() for t in str(args.get("types") or "public_channel").split(",") if t.strip()]
    if any(t not in CHANNEL_TYPES for t in types):
        return {"ok": False, "error": "invalid_types"}
    try:
        limit = int(args.get("limit") or 100)
    except ValueError:
        return {"ok": False, "error": "invalid_limit"}
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    archived = str(args.get("exclude_archived", "false")).lower() not in ("true", "1")
    listed = [c for c in CHANNELS if _type_of(c) in types and (archived or not c["is_archived"])]
    start = 0
    if cursor := args.get("cursor"):
        found = _start_of(str(cursor), listed)
        if found is None:
            return {"ok": False, "error": "invalid_cursor"}
        start = found
    page = listed[start:start + limit]
    more = start + limit < len(listed)
    return {"ok": True, "channels": page,
            "response_metadata": {"next_cursor": _cursor(listed[start + limit]["id"]) if more else ""}}


def team_of(state: ProviderState) -> dict[str, str]:
    return {"id": stable_id("T", state.account), "name": TEAM_NAME}


def slack_error(oauth_error: str, refreshing: bool) -> str:
    """Slack's error code for an Authlib token-endpoint error."""
    if oauth_error == "invalid_grant":
        return "invalid_refresh_token" if refreshing else "invalid_code"
    if oauth_error == "invalid_client":
        return "invalid_client_id"
    if oauth_error == "unsupported_grant_type":
        return "invalid_grant_type"
    if oauth_error == "invalid_request":
        return "invalid_arguments"
    return oauth_error  # e.g. a code a test armed with ``token_error``


def access_answer(state: ProviderState, token: dict[str, Any], user: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "ok": True, "app_id": APP_ID, "authed_user": {"id": stable_id("U", user)},
        "scope": token.get("scope", ""), "token_type": "bot", "access_token": token["access_token"],
        "bot_user_id": stable_id("U", "bot", state.account), "team": team_of(state), "enterprise": None,
        "is_enterprise_install": False}
    for name in ("refresh_token", "expires_in"):
        if name in token:
            answer[name] = token[name]
    return answer


def client_id_of(request: Request[Any, Any, Any], body: dict[str, Any]) -> str | None:
    """The client id from HTTP Basic or the form (whichever the caller used)."""
    client_id, _ = extract_basic_authorization(request.headers)
    return client_id or body.get("client_id")


async def token_of(request: Request[Any, Any, Any]) -> str | None:
    return bearer(request) or (await read_body(request)).get("token") or request.query_params.get("token")


def router(state: ProviderState) -> Router:
    server = FakeAuthorizationServer(state)

    @route("/oauth/v2/authorize", http_method=["GET", "POST"])
    async def authorize_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
        return await authorize(request, state, server, defaults={"response_type": "code"})

    @route("/api/oauth.v2.access", http_method=["POST"], status_code=200)
    async def access(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await read_body(request)
        body.setdefault("grant_type", "authorization_code")
        oauth = await oauth_request(request, body)
        _, answer, _ = token_result(state, server, oauth)
        if "error" in answer:
            code = slack_error(answer["error"], body["grant_type"] == "refresh_token")
            if code == "invalid_client_id" and client_id_of(request, body) in state.clients:
                code = "bad_client_secret"
            return json_response({"ok": False, "error": code})
        return json_response(access_answer(state, answer, oauth.user or state.account))

    @route("/api/auth.test", http_method=["GET", "POST"], status_code=200)
    async def auth_test(request: Request[Any, Any, Any]) -> Response[Any]:
        return auth_test_answer(state, await token_of(request))

    @route("/api/auth.revoke", http_method=["GET", "POST"], status_code=200)
    async def auth_revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        testing = (await read_body(request)).get("test") or request.query_params.get("test")
        return revoke_answer(state, await token_of(request), testing in {"1", "true"})

    @route("/api/conversations.list", http_method=["GET", "POST"], status_code=200)
    async def conversations_list(request: Request[Any, Any, Any]) -> Response[Any]:
        refused = token_problem(state, await token_of(request))
        if refused:
            return json_response({"ok": False, "error": refused})
        return json_response(conversations_page({**dict(request.query_params), **(await read_body(request))}))

    return Router("/slack", route_handlers=[authorize_endpoint, access, auth_test, auth_revoke, conversations_list])


def token_problem(state: ProviderState, value: str | None) -> str | None:
    """Slack's error code for a Web API call's token, or None when it is valid."""
    found = state.by_access_token(value) if value else None
    if not value:
        return "not_authed"
    if found is None:
        return "invalid_auth"
    if found.access_revoked:
        return "token_revoked"
    if found.is_expired():
        return "token_expired"
    return None


def auth_test_answer(state: ProviderState, value: str | None) -> Response[Any]:
    found = state.by_access_token(value) if value else None
    if not value:
        return json_response({"ok": False, "error": "not_authed"})
    if found is None:
        return json_response({"ok": False, "error": "invalid_auth"})
    if found.access_revoked:
        return json_response({"ok": False, "error": "token_revoked"})
    if found.is_expired():
        return json_response({"ok": False, "error": "token_expired"})
    team = team_of(state)
    return json_response({"ok": True, "url": "https://fake-team.slack.com/", "team": team["name"],
                          "user": "patchwire", "team_id": team["id"],
                          "user_id": stable_id("U", "bot", found.account or ""), "bot_id": stable_id("B", "bot"),
                          "is_enterprise_install": False})


def revoke_answer(state: ProviderState, value: str | None, testing: bool) -> Response[Any]:
    """``auth.revoke``: revokes the token (and, with rotation, its refresh token); ``test=1`` only checks."""
    found = state.valid_access(value) if value else None
    if found is None:
        return json_response({"ok": False, "error": "invalid_auth" if value else "not_authed"})
    if not testing:
        with state.lock:
            found.access_revoked = found.refresh_revoked = True
            state.revocations += 1
    return json_response({"ok": True, "revoked": not testing})
