"""The OAuth 2 client side: authorization URLs, code exchange, refresh, client credentials.

Authlib's ``AsyncOAuth2Client`` speaks the protocol (PKCE S256, client authentication, token parsing);
since Authlib 1.8 it is an ``httpx2.AsyncClient``. It is given ``GuardedTransport``, which hands every
request to our own guarded ``httpx.AsyncClient`` (engine/netguard.py): the SSRF guard stays the one place
connections are made, and a token endpoint that resolves to a refused address is refused like any other
URL (the test fakes on loopback need ``PATCHWIRE_HTTP_ALLOW_NETWORKS``).

Providers differ in small documented ways, handled here and nowhere else:

- Slack answers errors with HTTP 200 ``{"ok": false, "error": …}`` and calls its token type ``bot``.
- Notion wants HTTP Basic client authentication and a JSON body at its token endpoint.
- Google issues a refresh token only with ``access_type=offline`` and ``prompt=consent``.

Failures become the engine's errors: a refused grant (``invalid_grant``, a revoked or rotated-away refresh
token) is ``OAuthGrantRevoked`` (the user must reconnect); another refusal is ``OAuthProviderError``; a
provider that is down or slow is a ``NodeError`` of kind ``network`` / ``timeout`` / ``5xx`` (retryable).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from engine.credentials.types import CredentialType, OAuthSpec, OpenCredential
from engine.errors import CredentialError, NodeError
from engine.netguard import AddressRefused

__all__ = ["RECONNECT_ERRORS", "TOKEN_TIMEOUT", "GuardedTransport", "OAuthGrantRevoked", "OAuthProviderError",
           "authorization_url", "client_of", "credential_spec", "exchange_code", "expires_at_of", "fetch_client_credentials", "instance_client",
           "oauth_client", "refresh", "resolved_spec", "secret_token"]

TOKEN_TIMEOUT = 20.0
"""Seconds a token request may take. Shorter than the refresh lock (engine/credentials/oauth_refresh.py), so a
holder never outlives its lock while the provider is slow."""
RECONNECT_ERRORS = frozenset({"invalid_grant", "invalid_refresh_token", "token_revoked", "refresh_token_revoked"})
"""Token endpoint errors that mean the grant is gone: only a new consent helps (Google, Slack, RFC 6749 5.2)."""
SPEC_FIELDS = ("authorize_url", "token_url", "revoke_url", "api_base_url")
TOKEN_FIELDS = ("access_token", "refresh_token", "token_type")
"""What of a token response is kept sealed in the credential's secret (``expires_at`` is a column)."""


class OAuthProviderError(CredentialError):
    """The provider refused a token request for a reason other than a dead grant (``invalid_client``, …)."""

    retryable = False

    def __init__(self, provider: str, error: str, description: str | None = None) -> None:
        self.provider, self.error, self.description = provider, error, description
        said = f" ({description})" if description else ""
        super().__init__(f"{provider} refused the token request: {error}{said}")


class OAuthGrantRevoked(OAuthProviderError):
    """The grant was revoked, expired, or its refresh token was already used: the user must reconnect."""


def resolved_spec(spec: OAuthSpec, env: Mapping[str, str]) -> OAuthSpec:
    """``spec`` with the endpoints the settings override: ``PATCHWIRE_OAUTH_<PROVIDER>_<FIELD>``
    (e.g. ``PATCHWIRE_OAUTH_GOOGLE_TOKEN_URL``, ``…_API_BASE_URL``)."""
    prefix = f"PATCHWIRE_OAUTH_{spec.provider.upper()}_"
    changes = {name: env[prefix + name.upper()] for name in SPEC_FIELDS if env.get(prefix + name.upper())}
    return replace(spec, **changes) if changes else spec


def instance_client(spec: OAuthSpec, env: Mapping[str, str]) -> tuple[str, str]:
    """The instance's OAuth app for the provider: ``PATCHWIRE_OAUTH_<PROVIDER>_CLIENT_ID`` / ``_CLIENT_SECRET``
    (empty strings when unset; a credential's own client id and secret win over these)."""
    prefix = f"PATCHWIRE_OAUTH_{spec.provider.upper()}_"
    return env.get(prefix + "CLIENT_ID", ""), env.get(prefix + "CLIENT_SECRET", "")


def credential_spec(cls: type[CredentialType], public: Mapping[str, Any], env: Mapping[str, str]) -> OAuthSpec:
    """The provider's spec for one credential: the type's, overridden by the settings, then by the credential's
    own fields (the generic ``oauth2`` type keeps its endpoints there; ``scopes`` replaces the default set)."""
    spec = resolved_spec(cls.oauth or OAuthSpec(provider="oauth2", authorize_url="", token_url=""), env)
    changes: dict[str, Any] = {name: public[name] for name in ("authorize_url", "token_url")
                               if isinstance(public.get(name), str) and public[name]}
    scopes = public.get("scopes")
    if isinstance(scopes, str) and scopes.strip():
        changes["scopes"] = tuple(scopes.replace(",", " ").split())
    return replace(spec, **changes) if changes else spec


def client_of(spec: OAuthSpec, cred: OpenCredential, env: Mapping[str, str]) -> tuple[str, str]:
    """``(client_id, client_secret)``: the credential's own OAuth app when it names a client id (with its own
    secret, or none: a public client), else the instance's (``instance_client``)."""
    if own := cred.public.get("client_id"):
        return str(own), str(cred.secret.get("client_secret") or "")
    return instance_client(spec, env)


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends each request through our guarded ``httpx.AsyncClient``.

    ``json_token_url``: requests to that URL carrying a form body are sent with the same fields as JSON
    (Notion's token endpoint reads JSON only; Authlib always builds a form)."""

    def __init__(self, http: httpx.AsyncClient, *, json_token_url: str | None = None,
                 timeout: float = TOKEN_TIMEOUT) -> None:
        self._http, self._json_token_url, self._timeout = http, json_token_url, timeout

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in ("host", "content-length")]
        if self._json_token_url and str(request.url) == self._json_token_url and body:
            body, headers = _form_as_json(body, headers)
        response = await self._http.request(request.method, str(request.url), headers=headers, content=body,
                                            timeout=self._timeout)
        # the body is read (and decoded) already: the headers that describe its encoding on the wire go
        kept = [(k, v) for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx2.Response(response.status_code, headers=kept, content=response.content, request=request)


def _form_as_json(body: bytes, headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]]]:
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    kept = [(k, v) for k, v in headers if k.lower() != "content-type"]
    return json.dumps(fields).encode(), [*kept, ("Content-Type", "application/json")]


def _slack_token_response(response: httpx2.Response) -> httpx2.Response:
    """Slack: HTTP 200 ``{"ok": false, "error": …}`` is an error; ``token_type: "bot"`` is a bearer token."""
    try:
        data = response.json()
    except ValueError:
        return response
    if not isinstance(data, dict):
        return response
    if data.get("ok") is False:
        data = {"error": data.get("error") or "unknown_error", "error_description": data.get("warning")}
    elif str(data.get("token_type", "")).lower() in ("bot", "user"):
        data["token_type"] = "bearer"
    return httpx2.Response(response.status_code, json=data, request=response.request)


def oauth_client(spec: OAuthSpec, client_id: str, client_secret: str | None, http: httpx.AsyncClient,
                 token: dict[str, Any] | None = None, *, redirect_uri: str | None = None) -> AsyncOAuth2Client:
    """Authlib's client for ``spec``'s provider, on our guarded HTTP client. Without a client secret the
    client is public (``none`` authentication, PKCE carries the proof)."""
    client = AsyncOAuth2Client(
        client_id=client_id, client_secret=client_secret or None,
        token_endpoint_auth_method=spec.token_auth if client_secret else "none",
        scope=spec.scope_separator.join(spec.scopes) or None, redirect_uri=redirect_uri, token=token,
        code_challenge_method="S256" if spec.pkce else None, token_endpoint=spec.token_url,
        transport=GuardedTransport(http, json_token_url=spec.token_url if spec.token_body == "json" else None,
                                   timeout=TOKEN_TIMEOUT),
        timeout=TOKEN_TIMEOUT, trust_env=False)
    if spec.provider == "slack":
        client.register_compliance_hook("access_token_response", _slack_token_response)
        client.register_compliance_hook("refresh_token_response", _slack_token_response)
    return client


async def authorization_url(spec: OAuthSpec, client_id: str, http: httpx.AsyncClient, *, redirect_uri: str,
                            state: str, code_verifier: str) -> str:
    """Where to send the browser for consent: ``state`` and the PKCE challenge of ``code_verifier``, plus the
    provider's extra parameters (Google: ``access_type=offline``, ``prompt=consent``)."""
    async with oauth_client(spec, client_id, None, http, redirect_uri=redirect_uri) as client:
        url, _ = client.create_authorization_url(spec.authorize_url, state=state, code_verifier=code_verifier,
                                                 **spec.extra_authorize_params)
    return str(url)


async def exchange_code(spec: OAuthSpec, client_id: str, client_secret: str | None, http: httpx.AsyncClient, *,
                        code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
    """The token response for an authorization code (the whole response: the caller picks what to keep)."""
    async with oauth_client(spec, client_id, client_secret, http, redirect_uri=redirect_uri) as client:
        with provider_errors(spec):
            token = await client.fetch_token(spec.token_url, grant_type="authorization_code", code=code,
                                             code_verifier=code_verifier)
    return _checked(spec, dict(token))


async def refresh(spec: OAuthSpec, client_id: str, client_secret: str | None, http: httpx.AsyncClient,
                  refresh_token: str) -> dict[str, Any]:
    """A new token from a refresh token; a response without a refresh token keeps the one given."""
    async with oauth_client(spec, client_id, client_secret, http, token={"refresh_token": refresh_token}) as client:
        with provider_errors(spec):
            token = await client.refresh_token(spec.token_url, refresh_token=refresh_token)
    return _checked(spec, dict(token))


async def fetch_client_credentials(spec: OAuthSpec, client_id: str, client_secret: str | None,
                                   http: httpx.AsyncClient) -> dict[str, Any]:
    """A token for the client itself (``client_credentials`` grant)."""
    async with oauth_client(spec, client_id, client_secret, http) as client:
        with provider_errors(spec):
            token = await client.fetch_token(spec.token_url, grant_type="client_credentials")
    return _checked(spec, dict(token))


def _checked(spec: OAuthSpec, token: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(token.get("access_token"), str) or not token["access_token"]:
        raise OAuthProviderError(spec.provider, "invalid_response", "the token response has no access_token")
    return token


@contextmanager
def provider_errors(spec: OAuthSpec) -> Iterator[None]:
    """Token endpoint failures as the engine's errors (module docstring); never with a token in the text."""
    where = f"the {spec.provider} token endpoint"
    try:
        yield
    except OAuthError as exc:
        error = str(exc.error or "unknown_error")
        kind = OAuthGrantRevoked if error in RECONNECT_ERRORS else OAuthProviderError
        raise kind(spec.provider, error, exc.description) from None
    except httpx2.HTTPStatusError as exc:
        status = exc.response.status_code
        raise NodeError(f"{where} answered HTTP {status}", kind="5xx" if status >= 500 else
                        ("429" if status == 429 else "4xx")) from None
    except (httpx.TimeoutException, httpx2.TimeoutException):
        raise NodeError(f"{where} did not answer within {TOKEN_TIMEOUT:g} s", kind="timeout") from None
    except AddressRefused as exc:
        raise NodeError(f"{where} cannot be reached: {exc}") from None
    except (httpx.TransportError, httpx2.TransportError) as exc:
        raise NodeError(f"{where} cannot be reached: {type(exc).__name__} {exc}".rstrip(), kind="network") from None
    except ValueError as exc:  # not JSON, not an object
        raise OAuthProviderError(spec.provider, "invalid_response", str(exc)) from None


def secret_token(token: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a token response kept sealed (``TOKEN_FIELDS``), token type lower case."""
    kept = {name: token[name] for name in TOKEN_FIELDS if token.get(name)}
    kept["token_type"] = str(kept.get("token_type") or "bearer").lower()
    return kept


def expires_at_of(token: Mapping[str, Any], now: float | None = None) -> datetime | None:
    """When the access token expires (``expires_at`` / ``expires_in`` of the response), ``None`` if never said."""
    if isinstance(token.get("expires_at"), int | float):
        return datetime.fromtimestamp(float(token["expires_at"]), UTC)
    if isinstance(token.get("expires_in"), int | float | str) and str(token["expires_in"]).strip():
        try:
            return datetime.fromtimestamp((now or time.time()) + float(token["expires_in"]), UTC)
        except ValueError:
            return None
    return None
