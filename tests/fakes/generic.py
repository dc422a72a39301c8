"""``/oauth2/…``: a plain RFC 6749 authorization server (code + PKCE, rotating refresh tokens, client
credentials, RFC 7009 revocation) and one protected API, ``GET /oauth2/api/me`` (RFC 6750 bearer)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post, route

from tests.fakes.authserver import FakeAuthorizationServer
from tests.fakes.state import ProviderState
from tests.fakes.web import authorize, bearer, json_response, oauth_request, reply, token_result


def router(state: ProviderState) -> Router:
    server = FakeAuthorizationServer(state)

    @route("/authorize", http_method=["GET", "POST"])
    async def authorize_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
        return await authorize(request, state, server)

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        return reply(token_result(state, server, await oauth_request(request)))

    @post("/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        oauth = await oauth_request(request)
        with state.lock:
            return reply(server.create_endpoint_response("revocation", oauth))

    @get("/api/me")
    async def me(request: Request[Any, Any, Any]) -> Response[Any]:
        token = state.valid_access(bearer(request))
        if token is None:
            return json_response({"error": "invalid_token", "error_description": "The access token is invalid, "
                                  "expired or revoked."}, 401,
                                 {"www-authenticate": 'Bearer error="invalid_token"'})
        return json_response({"email": token.account, "sub": token.account, "scope": token.scope,
                              "client_id": token.client_id})

    return Router("/oauth2", route_handlers=[authorize_endpoint, token, revoke, me])

