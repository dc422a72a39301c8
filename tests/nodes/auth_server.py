"""A loopback HTTP API that checks authentication, with an OAuth 2 token endpoint of its own (RFC 6749).

Routes (each records the request it got):

* ``/header`` — 200 when header ``X-Api-Key`` equals ``api_key``, else 401
* ``/bearer`` — 200 when ``Authorization: Bearer <bearer>``, else 401
* ``/basic`` — 200 when ``Authorization: Basic base64(<username>:<password>)``, else 401
* ``/oauth`` — 200 when ``Authorization: Bearer <t>`` for an access token ``t`` the token endpoint issued
  and did not revoke, else 401 ``{"error": "invalid_token"}``
* ``/echo`` — 200, the request's headers as the JSON body (an API that quotes what it was sent)
* ``POST /token`` — ``grant_type=refresh_token`` (client authenticated with HTTP Basic; the refresh
  token rotates: the one used is spent) or ``client_credentials``; issues access tokens that live
  ``expires_in`` seconds; an unknown or spent refresh token → 400 ``invalid_grant``.

Every 200 answer carries ``{"ok": true, "path": …}``; a 401 carries ``{"ok": false, "error": …}``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import serve_http


@dataclass
class AuthServer:
    url: str = ""
    api_key: str = "key-0f5e7a9c3b1d"
    bearer: str = "bearer-8d2c4e6a0b9f"
    username: str = "ada"
    password: str = "pass-7c1e9b3d5f"
    client_id: str = "client-one"
    client_secret: str = "client-secret-4a6c8e0b"
    expires_in: int = 3600
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    grants: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, *, refresh: bool = True) -> dict[str, Any]:
        """A new token pair, as the token endpoint would answer (also used to seed a credential)."""
        token: dict[str, Any] = {"access_token": f"at-{secrets.token_hex(8)}", "token_type": "Bearer",
                                 "expires_in": self.expires_in}
        with self.lock:
            self.access_tokens.add(token["access_token"])
            if refresh:
                token["refresh_token"] = f"rt-{secrets.token_hex(8)}"
                self.refresh_tokens.add(token["refresh_token"])
        return token

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def received(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if urlsplit(r["path"]).path == path]

    # --- the checks ---------------------------------------------------------------------------------
    def authorized(self, path: str, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        with self.lock:
            checks = {"/header": headers.get("x-api-key") == self.api_key,
                      "/bearer": auth == f"Bearer {self.bearer}",
                      "/basic": auth == f"Basic {basic}",
                      "/oauth": auth.startswith("Bearer ") and auth.removeprefix("Bearer ") in self.access_tokens,
                      "/echo": True}
        return checks.get(path, False)

    def token_answer(self, headers: dict[str, str], form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        posted = form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret
        if headers.get("authorization") != f"Basic {client}" and not posted:
            return 401, {"error": "invalid_client"}
        with self.lock:
            self.grants.append(dict(form))
        if form.get("grant_type") == "client_credentials":
            return 200, self.issue(refresh=False)
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        with self.lock:
            known = form.get("refresh_token") in self.refresh_tokens
            self.refresh_tokens.discard(form.get("refresh_token", ""))  # rotation: a refresh token is spent once
        if not known:
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        return 200, self.issue()


def serve(state: AuthServer) -> Iterator[AuthServer]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = urlsplit(self.path).path
            with state.lock:
                state.requests.append({"method": self.command, "path": self.path, "headers": headers, "body": body})
            if path == "/token" and self.command == "POST":
                form = {k: v[-1] for k, v in parse_qs(body).items()}
                status, payload = state.token_answer(headers, form)
            elif state.authorized(path, headers):
                status, payload = 200, ({"ok": True, "path": path, "headers": headers} if path == "/echo"
                                        else {"ok": True, "path": path})
            else:
                status, payload = 401, {"ok": False, "error": "invalid_token" if path == "/oauth" else "unauthorized"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if status == 401:
                self.send_header("www-authenticate", 'Bearer error="invalid_token"')
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            return None

    with serve_http(Handler, "auth-server") as url:
        state.url = url
        yield state
