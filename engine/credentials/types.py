"""The credential-type contract: what a registered credential type declares, and what it is given.

A credential type is a small class, like a node type: a stable ``type_name`` and ``version``, two
``msgspec.Struct`` schemas — ``Public`` (non-secret fields, stored in clear) and ``Secret`` (sealed) — an
optional :class:`OAuthSpec`, an optional ``test`` against the service, and ``authorize`` for types a
generic HTTP request can use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx
import msgspec


class EmptyPublic(msgspec.Struct, forbid_unknown_fields=True):
    pass


class EmptySecret(msgspec.Struct, forbid_unknown_fields=True):
    pass


@dataclass(frozen=True)
class OpenCredential:
    """A credential opened for use: its clear fields and its secret fields. ``repr`` never shows ``secret``."""

    id: int
    owner_id: int
    type_name: str
    name: str
    public: dict[str, Any]
    secret: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return (f"OpenCredential(id={self.id}, owner_id={self.owner_id}, type_name={self.type_name!r}, "
                f"name={self.name!r}, public={self.public!r}, secret=<{len(self.secret)} fields>)")


@dataclass(frozen=True)
class OAuthSpec:
    """A provider's OAuth 2 endpoints and habits. Endpoints can be overridden by settings
    (``PATCHWIRE_OAUTH_<PROVIDER>_<FIELD>``: ``resolved_spec`` in engine/credentials/oauth.py)."""

    provider: str
    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    api_base_url: str = ""
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    token_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    token_body: Literal["form", "json"] = "form"
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    pkce: bool = True


@dataclass
class CredentialTestContext:
    """What a type's ``test`` may use: the guarded HTTP client (engine/netguard.py) and the settings' raw
    environment (for overridable base URLs such as ``PATCHWIRE_TELEGRAM_API_URL``)."""

    http: httpx.AsyncClient
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 15.0


class CredentialType:
    """Base class of every credential type. Subclasses set the class attributes (and ``test`` /
    ``authorize`` where they apply)."""

    type_name: ClassVar[str]
    version: ClassVar[int] = 1
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Public: ClassVar[type[msgspec.Struct]] = EmptyPublic
    Secret: ClassVar[type[msgspec.Struct]] = EmptySecret
    oauth: ClassVar[OAuthSpec | None] = None
    docs_url: ClassVar[str] = ""

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        """Check the credential against its service: a short success text ("Authenticated as x"); raise
        ``CredentialError`` / ``NodeError`` with the reason."""
        raise NotImplementedError(f"{self.type_name} credentials cannot be tested")

    def authorize(self, cred: OpenCredential, headers: dict[str, str], params: dict[str, str]) -> None:
        """Add this credential's authentication to an outgoing HTTP request (header, bearer, basic, OAuth
        access token). Types a generic HTTP request cannot use leave it unimplemented."""
        raise NotImplementedError(f"{self.type_name} credentials cannot authorize an HTTP request")

    @property
    def has_test(self) -> bool:
        return type(self).test is not CredentialType.test

    @property
    def can_authorize(self) -> bool:
        return type(self).authorize is not CredentialType.authorize

    @property
    def is_oauth(self) -> bool:
        return self.oauth is not None
