"""``/notion/…``: Notion's public-integration OAuth dialect (developers.notion.com/docs/authorization,
reference/create-a-token, reference/refresh-a-token, reference/revoke-token, reference/get-self,
reference/versioning, reference/status-codes).

``v1/oauth/token`` takes a JSON body (form bodies are accepted too) and REQUIRES HTTP Basic client
authentication: a request without it, or with ``client_secret`` in the body, gets 401 ``invalid_client``.
Refresh rotates both tokens. API calls need ``Notion-Version`` (else 400 ``missing_version``); API errors
are ``{"object": "error", "status", "code", "message"}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, Router, get, post, route

from tests.fakes.authserver import FakeAuthorizationServer
from tests.fakes.state import FakeToken, ProviderState
from tests.fakes.web import authorize, bearer, json_response, oauth_request, read_body, reply, token_result

WORKSPACE_NAME = "Fake Workspace"


def notion_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "notion:" + ":".join(parts)))


def notion_error(status: int, code: str, message: str) -> Response[Any]:
    return json_response({"object": "error", "status": status, "code": code, "message": message,
                          "request_id": str(uuid.uuid4())}, status)


def token_answer(state: ProviderState, token: dict[str, Any], account: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "access_token": token["access_token"], "token_type": "bearer", "refresh_token": token.get("refresh_token"),
        "bot_id": notion_uuid("bot", account), "workspace_id": notion_uuid("workspace", account),
        "workspace_name": WORKSPACE_NAME, "workspace_icon": None,
        "owner": {"type": "user", "user": {"object": "user", "id": notion_uuid("user", account), "name": "Ada",
                                           "avatar_url": None, "type": "person", "person": {"email": account}}},
        "duplicated_template_id": None, "request_id": str(uuid.uuid4())}
    if "expires_in" in token:
        answer["expires_in"] = token["expires_in"]
    return answer


def check_owner(args: dict[str, str]) -> str | None:
    return None if args.get("owner") == "user" else "Missing or invalid 'owner' parameter: Notion requires owner=user."


def basic_required(request: Request[Any, Any, Any], body: dict[str, Any]) -> Response[Any] | None:
    if request.headers.get("authorization", "").lower().startswith("basic ") and "client_secret" not in body:
        return None
    return json_response({"error": "invalid_client", "error_description": "Client authentication must use HTTP "
                          "Basic (client_id:client_secret); the client secret may not be sent in the body."}, 401)


def router(state: ProviderState) -> Router:
    server = FakeAuthorizationServer(state)

    @route("/v1/oauth/authorize", http_method=["GET", "POST"])
    async def authorize_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
        return await authorize(request, state, server, check_owner)

    @post("/v1/oauth/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await read_body(request)
        if (refused := basic_required(request, body)) is not None:
            return refused
        oauth = await oauth_request(request, body)
        status, answer, headers = token_result(state, server, oauth)
        if "error" in answer:
            return reply((status, answer, headers))
        return json_response(token_answer(state, answer, oauth.user or state.account))

    @post("/v1/oauth/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await read_body(request)
        if (refused := basic_required(request, body)) is not None:
            return refused
        found = state.by_access_token(str(body.get("token", "")))
        if found is None:
            return notion_error(400, "validation_error", "body.token should be a valid token.")
        with state.lock:
            found.access_revoked = found.refresh_revoked = True
            state.revocations += 1
        return json_response({"request_id": str(uuid.uuid4())})

    @get("/v1/users/me")
    async def me(request: Request[Any, Any, Any]) -> Response[Any]:
        return me_answer(state.valid_access(bearer(request)), request.headers.get("notion-version"))

    return Router("/notion", route_handlers=[authorize_endpoint, token, revoke, me])




def me_answer(found: FakeToken | None, version: str | None) -> Response[Any]:
    """``GET /v1/users/me``: the bot user, or Notion's 401 / 400 ``missing_version`` error objects."""
    if found is None:
        return notion_error(401, "unauthorized", "API token is invalid.")
    if not version:
        return notion_error(400, "missing_version", "Notion-Version header failed validation: Notion-Version "
                            "header should be defined, instead was `undefined`.")
    account = found.account or ""
    return json_response({"object": "user", "id": notion_uuid("bot", account), "name": "Patchwire",
                          "avatar_url": None, "type": "bot",
                          "bot": {"owner": {"type": "workspace", "workspace": True},
                                  "workspace_name": WORKSPACE_NAME, "workspace_id": notion_uuid("workspace", account)},
                          "request_id": str(uuid.uuid4())})
