"""Generic credential types: an API key in a header, a bearer token, basic auth, OAuth 2 (authorization code
with PKCE, and client credentials). Each can authorize a plain HTTP request (the HTTP Request node)."""

from __future__ import annotations

import base64
import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

import msgspec

from engine.credentials.oauth_types import OAuthType
from engine.credentials.types import CredentialType, OAuthSpec, OpenCredential
from engine.errors import CredentialNeedsReconnect

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a full http:// or https:// URL."
    return None


def header_value_problem(value: str) -> str | None:
    if any(c in value for c in "\r\n\0"):
        return "A header value cannot hold line breaks."
    return None


class HeaderPublic(msgspec.Struct, forbid_unknown_fields=True):
    header_name: Annotated[str, msgspec.Meta(title="Header name", description="e.g. X-API-Key")]

    def problems(self) -> dict[str, str]:
        if not HEADER_NAME.fullmatch(self.header_name):
            return {"header_name": "A header name is letters, digits and - (e.g. X-API-Key)."}
        return {}


class HeaderSecret(msgspec.Struct, forbid_unknown_fields=True):
    value: Annotated[str, msgspec.Meta(title="Value", description="The API key sent in that header.")]

    def problems(self) -> dict[str, str]:
        return {"value": error} if (error := header_value_problem(self.value)) else {}


class HttpHeader(CredentialType):
    """An API key sent in a header of your choice."""

    type_name = "http_header"
    title = "API key (header)"
    description = "An API key sent in a request header, such as X-API-Key."
    Public = HeaderPublic
    Secret = HeaderSecret

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        headers[cred.public["header_name"]] = cred.secret["value"]


class BearerSecret(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(title="Token", description="Sent as Authorization: Bearer <token>.")]

    def problems(self) -> dict[str, str]:
        return {"token": error} if (error := header_value_problem(self.token)) else {}


class HttpBearer(CredentialType):
    """A bearer token."""

    type_name = "http_bearer"
    title = "Bearer token"
    description = "A token sent as Authorization: Bearer <token>."
    Secret = BearerSecret

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {cred.secret['token']}"


class BasicPublic(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(title="Username")]

    def problems(self) -> dict[str, str]:
        if ":" in self.username:
            return {"username": "A basic-auth username cannot contain ':'."}
        return {}


class BasicSecret(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(title="Password")]


class HttpBasic(CredentialType):
    """HTTP basic authentication."""

    type_name = "http_basic"
    title = "Basic auth"
    description = "A username and password sent as HTTP basic authentication."
    Public = BasicPublic
    Secret = BasicSecret

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        pair = f"{cred.public['username']}:{cred.secret['password']}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"


def _bearer_from_token(cred: OpenCredential, headers: dict[str, str]) -> None:
    token = cred.secret.get("access_token")
    if not token:
        raise CredentialNeedsReconnect(f"credential {cred.id} ({cred.name}) has no access token yet: connect it")
    headers["Authorization"] = f"Bearer {token}"


def _urls_problems(**urls: str) -> dict[str, str]:
    return {name: error for name, url in urls.items() if (error := url_problem(url))}


class OAuth2Public(msgspec.Struct, forbid_unknown_fields=True):
    authorize_url: Annotated[str, msgspec.Meta(title="Authorization URL")]
    token_url: Annotated[str, msgspec.Meta(title="Token URL")]
    client_id: Annotated[str, msgspec.Meta(title="Client ID")]
    scopes: Annotated[str, msgspec.Meta(title="Scopes", description="Separated by spaces.")] = ""
    account: Annotated[str, msgspec.Meta(title="Account", description="Filled in when you connect.")] = ""

    def problems(self) -> dict[str, str]:
        return _urls_problems(authorize_url=self.authorize_url, token_url=self.token_url)


class OAuth2Secret(msgspec.Struct, forbid_unknown_fields=True):
    client_secret: Annotated[str, msgspec.Meta(title="Client secret")] = ""
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None


class OAuth2(OAuthType):
    """Any OAuth 2 provider, authorization code with PKCE: the user connects it in the browser."""

    type_name = "oauth2"
    title = "OAuth2 (authorization code)"
    description = "Connect an account of any OAuth 2 provider (authorization code with PKCE)."
    Public = OAuth2Public
    Secret = OAuth2Secret
    # The endpoints are the credential's own fields (public.authorize_url / token_url): the spec's are blank.
    oauth: ClassVar[OAuthSpec | None] = OAuthSpec(provider="oauth2", authorize_url="", token_url="")

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        _bearer_from_token(cred, headers)


class ClientCredentialsPublic(msgspec.Struct, forbid_unknown_fields=True):
    token_url: Annotated[str, msgspec.Meta(title="Token URL")]
    client_id: Annotated[str, msgspec.Meta(title="Client ID")]
    scopes: Annotated[str, msgspec.Meta(title="Scopes", description="Separated by spaces.")] = ""

    def problems(self) -> dict[str, str]:
        return _urls_problems(token_url=self.token_url)


class ClientCredentialsSecret(msgspec.Struct, forbid_unknown_fields=True):
    client_secret: Annotated[str, msgspec.Meta(title="Client secret")]
    access_token: str | None = None
    token_type: str | None = None


class OAuth2ClientCredentials(CredentialType):
    """OAuth 2 client credentials: a machine-to-machine token fetched (and refetched) with the client's
    own id and secret; nothing to connect in the browser, so ``oauth`` stays unset."""

    type_name = "oauth2_client_credentials"
    title = "OAuth2 (client credentials)"
    description = "A service token fetched with a client id and secret (no user consent)."
    Public = ClientCredentialsPublic
    Secret = ClientCredentialsSecret
    grant_type: ClassVar[str] = "client_credentials"
    """Its token is fetched (and fetched again before it expires) by engine/credentials/oauth_refresh.py."""

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        _bearer_from_token(cred, headers)
