"""``/slack/…``: Slack's OAuth v2 dialect (docs.slack.dev/authentication/installing-with-oauth,
…/using-token-rotation, reference/methods/oauth.v2.access, auth.test, auth.revoke).

Every Web API answer is HTTP 200 with ``"ok"``; failures are ``{"ok": false, "error": "<code>"}``.
``oauth.v2.access`` takes client credentials by HTTP Basic or form fields, ``code`` (+ ``code_verifier``)
or ``grant_type=refresh_token``. With token rotation on (the default here) it answers a
``xoxe.xoxb-1-…`` bot token with ``expires_in`` 43200 and a ``xoxe-1-…`` refresh token that works once;
off, one long-lived ``xoxb-…`` token.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from litestar import Request, Response, Router, route

from tests.fakes.authserver import FakeAuthorizationServer
from tests.fakes.state import ProviderState, stable_id
from tests.fakes.web import authorize, bearer, json_response, oauth_request, read_body, token_result

TEAM_NAME = "Fake Team"
APP_ID = "A0FAKEAPP1"


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

    return Router("/slack", route_handlers=[authorize_endpoint, access, auth_test, auth_revoke])


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
