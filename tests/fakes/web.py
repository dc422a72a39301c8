"""Helpers the dialects share: reading a Litestar request into Authlib's shape, the consent page,
the authorization endpoint (GET shows the page, POST decides) and JSON responses."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import OAuth2Error
from litestar import Request, Response
from litestar.status_codes import HTTP_302_FOUND

from tests.fakes.authserver import FakeAuthorizationServer, FakeRequest
from tests.fakes.state import ProviderState

Check = Callable[[dict[str, str]], str | None]  # a dialect's extra authorize check: error text or None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(json.dumps(body).encode(), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store", **(headers or {})})


def reply(result: tuple[int, Any, dict[str, str]]) -> Response[Any]:
    """An Authlib ``(status, body, headers)`` triple as a response (JSON body, or a redirect)."""
    status, body, headers = result
    if status == HTTP_302_FOUND:
        return Response(b"", status_code=status, headers=headers)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return json_response(body, status, headers)


async def read_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The request's form or JSON body as a dict (empty when there is none)."""
    raw = await request.body()
    if not raw:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


async def oauth_request(request: Request[Any, Any, Any], body: dict[str, Any] | None = None,
                        defaults: dict[str, str] | None = None) -> FakeRequest:
    """Authlib's view of the request; ``defaults`` fill parameters a dialect does not require (Slack's
    authorize URL has no ``response_type``, its token call no ``grant_type``)."""
    form = body if body is not None else await read_body(request)
    args = {**(defaults or {}), **dict(request.query_params)}
    return FakeRequest(request.method, str(request.url), request.headers, args,
                       {k: str(v) for k, v in form.items()})


def bearer(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def error_page(message: str, status: int = 400) -> Response[str]:
    body = f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{html.escape(message)}</p>"
    return Response(body, status_code=status, media_type="text/html")


def consent_page(state: ProviderState, args: dict[str, str], action: str) -> Response[str]:
    """The fake's consent screen: who is signed in, which client asks for which scopes, Allow / Deny."""
    client_id = html.escape(args.get("client_id", ""))
    scopes = html.escape(args.get("scope", "") or "(none)")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake {state.name} — authorize</title></head>
<body><main>
<h1>Fake {html.escape(state.name)} sign-in</h1>
<p>Signed in as <strong id="account">{html.escape(state.account)}</strong>.</p>
<p>The application <code id="client">{client_id}</code> asks for: <code id="scopes">{scopes}</code></p>
<form method="post" action="{html.escape(action)}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form></main></body></html>"""
    return Response(body, status_code=200, media_type="text/html")


async def authorize(request: Request[Any, Any, Any], state: ProviderState, server: FakeAuthorizationServer,
                    check: Check | None = None, defaults: dict[str, str] | None = None) -> Response[Any]:
    """RFC 6749 §4.1.1: GET validates and shows the consent page (or approves at once with ``auto_consent``);
    POST carries the decision. A bad client or redirect URI gets an error page, never a redirect (§4.1.2.1)."""
    oauth = await oauth_request(request, defaults=defaults)
    args = oauth.args
    if check is not None and (problem := check(args)):
        return error_page(problem)
    try:
        grant = server.get_consent_grant(oauth, end_user=state.account)
    except OAuth2Error as error:
        if error.redirect_uri:
            return reply(server.handle_error_response(oauth, error))
        return error_page(f"{error.error}: {error.description or ''}")
    decision = oauth.form.get("decision") if request.method == "POST" else None
    if request.method == "GET" and not state.auto_consent:
        return consent_page(state, args, str(request.url.path) + "?" + request.url.query)
    user = state.account if state.auto_consent or decision == "allow" else None
    with state.lock:
        return reply(server.create_authorization_response(oauth, grant_user=user, grant=grant))


def token_result(state: ProviderState, server: FakeAuthorizationServer,
                 oauth: FakeRequest) -> tuple[int, Any, dict[str, str]]:
    """Run Authlib's token endpoint under the provider lock (two concurrent refreshes with one rotating
    refresh token: exactly one wins)."""
    with state.lock:
        return server.create_token_response(oauth)
