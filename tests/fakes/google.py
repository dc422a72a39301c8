"""``/google/…``: Google's OAuth 2.0 dialect and two APIs, on the same Authlib engine.

Documented behaviour imitated (developers.google.com/identity/protocols/oauth2/web-server):
``o/oauth2/v2/auth`` needs ``redirect_uri`` and ``scope``; a refresh token is issued only with
``access_type=offline``, and after the first consent only again with ``prompt=consent``; refresh
tokens are not rotated; ``revoke`` (no client auth, ``token`` in the body or query) kills the whole
grant; a dead refresh token → 400 ``invalid_grant`` "Token has been expired or revoked.".
APIs: ``gmail/v1/users/me/profile``, ``oauth2/v3/userinfo`` and Gmail's ``users.messages.list`` / ``.get``
(tests/fakes/gmail.py, over the mailbox of tests/fakes/mailbox.py), errors in Google's JSON shape.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post, route

from tests.fakes import gmail
from tests.fakes.authserver import FakeAuthorizationServer
from tests.fakes.state import FakeToken, ProviderState, stable_id
from tests.fakes.web import authorize, bearer, json_response, oauth_request, read_body, reply, token_result

GMAIL_SCOPES = ("https://mail.google.com/", "https://www.googleapis.com/auth/gmail.")


def google_error(code: int, message: str, reason: str, status: str) -> Response[Any]:
    """The JSON error every Google API answers with (cloud.google.com/apis/design/errors)."""
    body = {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}], "status": status}}
    headers = {"www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'} \
        if code == 401 else {}
    return json_response(body, code, headers)


def unauthenticated() -> Response[Any]:
    return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                        "login cookie or other valid authentication credential.", "authError", "UNAUTHENTICATED")


def check_authorize(args: dict[str, str]) -> str | None:
    for name in ("redirect_uri", "scope"):
        if not args.get(name):
            return f"Error 400: invalid_request — Missing required parameter: {name}"
    return None


def router(state: ProviderState) -> Router:
    server = FakeAuthorizationServer(state)

    @route("/o/oauth2/v2/auth", http_method=["GET", "POST"])
    async def auth(request: Request[Any, Any, Any]) -> Response[Any]:
        return await authorize(request, state, server, check_authorize)

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        oauth = await oauth_request(request)
        return token_answer(token_result(state, server, oauth), oauth.form.get("grant_type") == "refresh_token")

    @post("/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        return revoke_answer(state, (await read_body(request)).get("token") or request.query_params.get("token"))

    @get("/gmail/v1/users/me/profile")
    async def gmail_profile(request: Request[Any, Any, Any]) -> Response[Any]:
        return profile_answer(state.valid_access(bearer(request)))

    @get("/oauth2/v3/userinfo")
    async def userinfo(request: Request[Any, Any, Any]) -> Response[Any]:
        found = state.valid_access(bearer(request))
        if found is None:
            return unauthenticated()
        return json_response({"sub": stable_id("1", found.account or "", length=21),
                              "email": found.account, "email_verified": True})

    return Router("/google", route_handlers=[auth, token, revoke, gmail_profile, userinfo, *gmail.handlers(state)])


def token_answer(result: tuple[int, Any, dict[str, str]], refreshing: bool) -> Response[Any]:
    """Authlib's token answer with Google's error texts."""
    status, body, headers = result
    if body.get("error") == "invalid_grant":
        body = {"error": "invalid_grant",
                "error_description": "Token has been expired or revoked." if refreshing else "Bad Request"}
    elif body.get("error") == "invalid_client":
        status, body = 401, {"error": "invalid_client", "error_description": "Unauthorized"}
    return reply((status, body, headers))


def revoke_answer(state: ProviderState, value: str | None) -> Response[Any]:
    found = state.by_access_token(value) or state.by_refresh_token(value) if value else None
    if found is None or (found.access_revoked and found.refresh_revoked):
        return json_response({"error": "invalid_token", "error_description": "Token expired or revoked"}, 400)
    revoke_grant(state, found)
    return json_response({})


def profile_answer(found: FakeToken | None) -> Response[Any]:
    if found is None:
        return unauthenticated()
    if not any(s.startswith(GMAIL_SCOPES) for s in found.scope.split()):
        return google_error(403, "Request had insufficient authentication scopes.", "insufficientPermissions",
                            "PERMISSION_DENIED")
    return json_response({"emailAddress": found.account, "messagesTotal": 42, "threadsTotal": 17,
                          "historyId": "1234567"})


def revoke_grant(state: ProviderState, token: FakeToken) -> None:
    """Google revokes the grant: every token of that refresh token (or that access token) stops working."""
    with state.lock:
        for item in state.tokens:
            same = item is token or (token.refresh_token and item.refresh_token == token.refresh_token)
            if same:
                item.access_revoked = item.refresh_revoked = True
        state.revocations += 1
