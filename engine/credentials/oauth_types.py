"""The base of OAuth credential types: tokens in the secret, a bearer header, the connected account.

A provider is one small subclass (nodes/credentials/google.py, slack.py, notion.py): its ``OAuthSpec``, its
``Public`` fields (the account it is connected to), and two hooks — ``connected_account`` (the public fields
to record after a connect, from the token response and, where the response does not say, the provider's
who-am-I endpoint) and ``test`` (that endpoint again: "Connected as …").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from engine.credentials.oauth import credential_spec
from engine.credentials.types import CredentialTestContext, CredentialType, OpenCredential
from engine.errors import CredentialError, CredentialNeedsReconnect, NodeError
from engine.netguard import AddressRefused
from engine.policy import kind_of_status

__all__ = ["OAuthType", "OAuthUnauthorized", "bearer_get", "granted_scopes"]


class OAuthUnauthorized(CredentialError):
    """The provider refused the access token (HTTP 401, Slack ``invalid_auth``): refresh it, or reconnect."""

    retryable = False


class OAuthType(CredentialType):
    """An OAuth 2 credential type (authorization code with PKCE) whose tokens an HTTP request can carry."""

    token_fields: ClassVar[tuple[str, ...]] = ("access_token", "refresh_token", "token_type")
    """Secret fields filled by connecting, never by the form."""

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        token = cred.secret.get("access_token")
        if not token:
            raise CredentialNeedsReconnect(f"credential “{cred.name}” is not connected yet: connect it")
        headers["Authorization"] = f"Bearer {token}"

    async def connected_account(self, ctx: CredentialTestContext, public: Mapping[str, Any],
                                token: Mapping[str, Any]) -> dict[str, Any]:
        """The public fields to record after a connect (account, team, workspace, granted scopes)."""
        return {"scopes": scopes} if (scopes := granted_scopes(token)) and "scopes" in public else {}

    def api_base(self, ctx: CredentialTestContext, cred_public: Mapping[str, Any]) -> str:
        return credential_spec(type(self), cred_public, ctx.env).api_base_url.rstrip("/")


def granted_scopes(token: Mapping[str, Any]) -> str:
    """The scopes a token response says were granted, space-separated ("" when it does not say)."""
    scope = token.get("scope")
    if isinstance(scope, list):
        return " ".join(str(s) for s in scope)
    return " ".join(str(scope).replace(",", " ").split()) if scope else ""


async def bearer_get(ctx: CredentialTestContext, url: str, access_token: str,
                     headers: Mapping[str, str] | None = None) -> httpx.Response:
    """GET ``url`` with the access token on the guarded client; 401 → ``OAuthUnauthorized``, another error
    status or a network failure → ``NodeError`` (kind network / timeout / 4xx / 5xx)."""
    try:
        response = await ctx.http.get(url, headers={"Authorization": f"Bearer {access_token}", **(headers or {})},
                                      timeout=ctx.timeout)
    except httpx.TimeoutException:
        raise NodeError(f"{url} did not answer within {ctx.timeout:g} s", kind="timeout") from None
    except AddressRefused as exc:
        raise NodeError(f"{url} cannot be reached: {exc}") from None
    except httpx.TransportError as exc:
        raise NodeError(f"{url} cannot be reached: {type(exc).__name__} {exc}".rstrip(), kind="network") from None
    if response.status_code == 401:
        raise OAuthUnauthorized(f"the provider refused the access token (HTTP 401 from {url})")
    if response.status_code >= 400:
        raise NodeError(f"{url} answered HTTP {response.status_code}", kind=kind_of_status(response.status_code))
    return response
