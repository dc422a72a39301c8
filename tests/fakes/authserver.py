"""The OAuth 2.0 authorization server behind every OAuth dialect: Authlib's server side, without Flask.

``FakeAuthorizationServer`` is an ``authlib.oauth2.rfc6749.AuthorizationServer`` over one
``ProviderState``: authorization code + PKCE (``CodeChallenge``), refresh with rotation (a used
refresh token is revoked), client credentials, RFC 7009 revocation. Its ``handle_response`` returns
``(status, body, headers)`` as data; each dialect (generic.py, google.py, slack.py, notion.py) turns
that into the provider's own response shape.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonRequest
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

from tests.fakes.state import CODE_LIFETIME, FakeClient, FakeCode, FakeToken, ProviderState

# Token prefixes per dialect: (access, refresh). The real ones: Google "ya29." / "1//", Slack "xoxe.xoxb-1-" /
# "xoxe-1-" with token rotation on, Notion "ntn_" (internal) / opaque refresh tokens.
TOKEN_PREFIXES = {"oauth2": ("at-", "rt-"), "google": ("ya29.", "1//"), "slack": ("xoxe.xoxb-1-", "xoxe-1-"),
                  "notion": ("ntn_", "nrt_")}


class FakeRequest(OAuth2Request):
    """An ``OAuth2Request`` built from already-read parts (``await request.form()`` happens before)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], args: dict[str, str],
                 form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = args
        self._form = form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class PKCE(CodeChallenge):
    """``CodeChallenge`` that, when the provider's ``pkce_required`` is on, refuses an authorization
    request without ``code_challenge`` for every client (Authlib alone forces it for public clients)."""

    def __init__(self, state: ProviderState) -> None:
        super().__init__(required=True)
        self.state = state

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        if self.state.pkce_required and not grant.request.payload.data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': this server requires PKCE (RFC 7636).",
                                      redirect_uri=redirect_uri, state=grant.request.payload.state)
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = dict(request.payload.data)
        state: ProviderState = self.server.state
        with state.lock:
            state.codes[code] = FakeCode(
                code=code, client_id=request.client.client_id, redirect_uri=data.get("redirect_uri", ""),
                scope=request.scope or data.get("scope") or "", account=request.user,
                code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method"),
                issued_at=state.now(), params=data)

    def query_authorization_code(self, code: str, client: FakeClient) -> FakeCode | None:
        state: ProviderState = self.server.state
        with state.lock:
            item = state.codes.get(code)
        if item and item.client_id == client.client_id and state.now() - item.issued_at < CODE_LIFETIME:
            return item
        return None

    def delete_authorization_code(self, authorization_code: FakeCode) -> None:
        with self.server.state.lock:
            self.server.state.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: FakeCode) -> str:
        return authorization_code.account

    def generate_token(self, user: Any = None, scope: Any = None, grant_type: Any = None, expires_in: Any = None,
                       include_refresh_token: bool = True) -> dict[str, Any]:
        include = include_refresh_token and self.server.issues_refresh_token(self.request.authorization_code)
        self.server.state.code_grants += 1
        return super().generate_token(user, scope, grant_type, expires_in, include)


class RotatingRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> FakeToken | None:
        token = self.server.state.by_refresh_token(refresh_token)
        return token if token is not None and not token.refresh_revoked else None

    def authenticate_user(self, refresh_token: FakeToken) -> str:
        return refresh_token.account or ""

    def issue_token(self, user: Any, refresh_token: FakeToken) -> dict[str, Any]:
        self.server.state.refresh_grants += 1
        token = super().issue_token(user, refresh_token)
        if not self.server.rotates_refresh_tokens():
            token["refresh_token"] = refresh_token.refresh_token  # Google: the same refresh token lives on
        return token

    def revoke_old_credential(self, refresh_token: FakeToken) -> None:
        # The old access token lives on until it expires (as at Google and Slack); with rotation the old
        # refresh token is spent.
        if self.server.rotates_refresh_tokens():
            with self.server.state.lock:
                refresh_token.refresh_revoked = True


class ClientGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def create_token_response(self) -> Any:
        self.server.state.client_credentials_grants += 1
        return super().create_token_response()


class Revocation(RevocationEndpoint):
    """RFC 7009: revoking either token of a pair revokes the whole grant (what Google and Slack do)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> FakeToken | None:
        state: ProviderState = self.server.state
        return state.by_access_token(token_string) or state.by_refresh_token(token_string)

    def revoke_token(self, token: FakeToken, request: Any) -> None:
        with self.server.state.lock:
            token.access_revoked = token.refresh_revoked = True
            self.server.state.revocations += 1


class FakeAuthorizationServer(AuthorizationServer):
    """Authlib's authorization server over one provider's in-memory state."""

    def __init__(self, state: ProviderState) -> None:
        super().__init__()
        self.state = state
        self.register_grant(CodeGrant, [PKCE(state)])
        self.register_grant(RotatingRefreshGrant)
        self.register_grant(ClientGrant)
        self.register_endpoint(Revocation)
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> FakeClient | None:
        with self.state.lock:
            return self.state.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        saved = self.state.new_token(request.client.client_id, request.user, token.get("scope", ""),
                                     request.payload.grant_type or "", "", None)
        saved.access_token = token["access_token"]
        saved.refresh_token = token.get("refresh_token")
        saved.expires_in = int(token.get("expires_in") or 0)

    def _generate(self, grant_type: str, client: FakeClient, user: Any = None, scope: str | None = None,
                  expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        access_prefix, refresh_prefix = TOKEN_PREFIXES.get(self.state.name, ("at-", "rt-"))
        expiring = not (self.state.name == "slack" and not self.state.token_rotation)
        if not expiring:
            access_prefix = "xoxb-"  # Slack without token rotation: one long-lived bot token
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": access_prefix + secrets.token_urlsafe(24),
                                 "scope": scope or ""}
        if self.state.expires_in and expiring:
            token["expires_in"] = self.state.expires_in
        if include_refresh_token:
            token["refresh_token"] = refresh_prefix + secrets.token_urlsafe(24)
        return token

    # --- dialect hooks -------------------------------------------------------------------------
    def issues_refresh_token(self, code: FakeCode) -> bool:
        """Google issues a refresh token only for ``access_type=offline`` and then only on first consent or
        with ``prompt=consent``; Slack only with token rotation on; the others always."""
        if self.state.name == "google":
            if code.params.get("access_type") != "offline":
                return False
            first = (code.account, code.client_id) not in self.state.consented
            self.state.consented.add((code.account, code.client_id))
            return first or code.params.get("prompt") == "consent"
        if self.state.name == "slack":
            return self.state.token_rotation
        return True

    def rotates_refresh_tokens(self) -> bool:
        return self.state.name != "google"

    def create_token_response(self, request: Any = None) -> Any:
        """Authlib's token endpoint, unless the test armed ``token_error`` for this request."""
        if (armed := self.state.take_token_error()) is not None:
            return self.handle_error_response(request, OAuth2Error(armed[1], status_code=400, error=armed[0]))
        return super().create_token_response(request)

    # --- Authlib framework seams -------------------------------------------------------------------
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # the routes build a FakeRequest from the Litestar request first

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None
