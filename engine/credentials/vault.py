"""The worker side of credentials: a node gets its credential through ``ctx.credentials``.

One ``Vault`` per worker process holds what opening a credential needs (the database, the key ring, the
credential types, the guarded HTTP client, the settings' environment for OAuth endpoints).
``vault.for_run(owner_id, redactor)`` gives one run its ``NodeCredentials`` (engine/contract.py
``CredentialAccess``): only the execution owner's credentials open, only for a node that accepts their
type, and every secret value opened is added to the run's ``Redactor`` before the node sees it.

Each node sees only the credentials its config names (``for_node``: the values of its fields whose widget
is ``credential``), as the issue puts it: decrypted "for the node that names the credential in its config".

An opened credential is cached for the run (a node calls ``get`` for each item); a refresh of its OAuth
token drops it from the cache, so the next ``get`` reads the new revision. ``last_used_at`` is written
when a run first opens a credential, at most once a minute per credential and process.
"""

from __future__ import annotations

import base64
import importlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.config import field_specs
from engine.credentials.redaction import Redactor
from engine.credentials.registry import CredentialRegistry
from engine.credentials.sealing import KeyRing
from engine.credentials.store import get_credential, open_row, touch_last_used
from engine.credentials.types import OpenCredential
from engine.errors import CredentialError, CredentialNotFound, NodeError, RegistryError
from engine.limits import is_id

if TYPE_CHECKING:
    from engine.contract import CredentialAccess
    from engine.models import Credential

log = logging.getLogger("patchwire.credentials")
LAST_USED_EVERY = 60.0
"""Seconds between two ``last_used_at`` writes of one credential from one process."""


class CredentialRefused(NodeError):
    """A node may not use the credential it names: missing, another owner's, a type the node does not
    accept, waiting to be reconnected, or it cannot be opened. Trying again would not help."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="other")


class Vault:
    """Opens credentials for runs; one per worker process (engine/worker.py)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ring: KeyRing, registry: CredentialRegistry,
                 http: httpx.AsyncClient, env: Mapping[str, str] | None = None) -> None:
        self.sessions, self.ring, self.registry, self.http = sessions, ring, registry, http
        self.env: Mapping[str, str] = env if env is not None else {}
        """Where ``PATCHWIRE_OAUTH_<PROVIDER>_…`` endpoint and client settings are read (engine/credentials/oauth.py)."""
        self._stamped: dict[int, float] = {}

    def for_run(self, owner_id: int, redactor: Redactor) -> NodeCredentials:
        """``ctx.credentials`` for the runs of one execution (and the sub-workflows it calls)."""
        return NodeCredentials(self, owner_id, redactor)

    async def read(self, owner_id: int, credential_id: Any) -> tuple[Credential, OpenCredential]:
        """The owner's credential row and its opened secret, or ``CredentialRefused`` saying why not."""
        if not is_id(credential_id):
            raise CredentialRefused(f"credential {credential_id!r} not found")
        async with self.sessions() as session:
            try:
                row = await get_credential(session, owner_id, credential_id)
            except CredentialNotFound:
                raise CredentialRefused(f"credential {credential_id} not found") from None
            if row.status == "needs_reconnect":
                why = f": {row.status_message}" if row.status_message else ""
                raise CredentialRefused(f"credential “{row.name}” needs to be reconnected{why}")
            try:
                return row, open_row(self.ring, row)
            except CredentialError as exc:  # a missing key, a broken seal: the message names no secret
                raise CredentialRefused(str(exc)) from None

    async def stamp_use(self, credential_id: int) -> None:
        """Write ``last_used_at`` unless this process did in the last minute (the store checks the row too)."""
        now = time.monotonic()
        if now - self._stamped.get(credential_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._stamped[credential_id] = now
        try:
            async with self.sessions.begin() as session:
                await touch_last_used(session, credential_id)
        except Exception:  # bookkeeping: a busy database must not fail the node
            log.warning("could not record the use of credential %s", credential_id, exc_info=True)

    def keeps_access_token(self, type_name: str) -> bool:
        """OAuth types (authorization code and client credentials) keep an access token among their secret
        fields; the OAuth part keeps it fresh."""
        try:
            secret = self.registry.get(type_name).Secret
        except RegistryError:
            return False
        return any(f.name == "access_token" for f in msgspec.structs.fields(secret))


class NodeCredentials:
    """``ctx.credentials`` of one run: the owner's credentials, opened once per run, redacted from its data."""

    def __init__(self, vault: Vault, owner_id: int, redactor: Redactor) -> None:
        self._vault, self._owner_id, self._redactor = vault, owner_id, redactor
        self._opened: dict[int, OpenCredential] = {}

    def __repr__(self) -> str:
        return f"NodeCredentials(owner_id={self._owner_id}, opened={sorted(self._opened)})"

    async def get(self, credential_id: int, *, accept: tuple[str, ...]) -> OpenCredential:
        """The credential, if it is the owner's and of a type in ``accept``; else ``CredentialRefused``."""
        credential = self._opened.get(credential_id)
        if credential is None:
            credential = await self._open(credential_id)
        if credential.type_name not in accept:
            raise CredentialRefused(f"credential “{credential.name}” ({credential.id}) is a {credential.type_name} "
                                    f"credential; this node accepts {', '.join(accept) or 'no credential'}")
        return credential

    async def access_token(self, credential_id: int, *, min_valid: float = 60) -> str:
        """The OAuth access token, refreshed first when it expires within ``min_valid`` seconds (or 10 %
        of its life) — under the credential's refresh lock, so workers never spend a refresh token twice."""
        credential = await self._oauth_credential(credential_id)
        ensure_fresh = _oauth_function("ensure_fresh")
        token = await self._fresh(credential_id, ensure_fresh(self._vault, credential.id, min_valid))
        if token != credential.secret.get("access_token"):
            self._opened.pop(credential_id, None)  # refreshed: the next get reads the new revision
        return token

    async def refresh_after_unauthorized(self, credential_id: int, used_token: str) -> str:
        """The API refused ``used_token`` (401): a new access token, refreshed once (or the one another
        node or worker already got)."""
        credential = await self._oauth_credential(credential_id)
        refresh_now = _oauth_function("refresh_now")
        token = await self._fresh(credential_id, refresh_now(self._vault, credential.id, used_token))
        self._opened.pop(credential_id, None)
        return token

    async def api_base(self, credential_id: int) -> str:
        """The API base URL of the OAuth credential's provider, as the settings resolve it."""
        from engine.credentials.oauth import credential_spec

        credential = await self._oauth_credential(credential_id)
        kind = self._vault.registry.get(credential.type_name)
        return credential_spec(kind, credential.public, self._vault.env).api_base_url.rstrip("/")

    async def _open(self, credential_id: int) -> OpenCredential:
        row, credential = await self._vault.read(self._owner_id, credential_id)
        self._redactor.add(credential.secret, *_derived_secrets(credential))
        self._opened[credential.id] = credential
        if row.last_used_at is None or time.time() - row.last_used_at.timestamp() >= LAST_USED_EVERY:
            await self._vault.stamp_use(credential.id)
        return credential

    async def _oauth_credential(self, credential_id: int) -> OpenCredential:
        credential = self._opened.get(credential_id) or await self._open(credential_id)
        if not self._vault.keeps_access_token(credential.type_name):
            raise CredentialRefused(f"credential “{credential.name}” ({credential.id}) is a {credential.type_name} "
                                    "credential, which has no OAuth access token")
        return credential

    async def _fresh(self, credential_id: int, pending: Any) -> str:
        """Await a refresh; its token joins the redacted values. A failed refresh (a grant gone for good
        among them) drops the cached credential, so the next ``get`` reads its status again."""
        try:
            token = await pending
        except CredentialError:
            self._opened.pop(credential_id, None)
            raise
        self._redactor.add(token)
        return token


def _derived_secrets(credential: OpenCredential) -> list[str]:
    """Forms a secret takes on the wire that a response may echo: HTTP Basic's ``base64(user:password)``."""
    username, password = credential.public.get("username"), credential.secret.get("password")
    if isinstance(username, str) and isinstance(password, str) and password:
        return [base64.b64encode(f"{username}:{password}".encode()).decode()]
    return []


def _oauth_function(name: str) -> Any:
    """A refresh function of the OAuth part (engine/credentials/oauth_refresh.py: refresh ahead under the
    credential's lock); until that part is merged, a clear error instead of a stale token."""
    try:
        module = importlib.import_module("engine.credentials.oauth_refresh")
    except ModuleNotFoundError as exc:
        if exc.name != "engine.credentials.oauth_refresh":
            raise  # the module is there and broken: say so
        module = None
    function = getattr(module, name, None)
    if function is None:
        raise NotImplementedError(f"engine.credentials.oauth_refresh.{name} is missing: OAuth access tokens cannot "
                                  "be refreshed in this build (the OAuth part of issue 15 is not merged)")
    return function


def credentials_named_in(config: Any) -> frozenset[int]:
    """The credential ids a node's config names: its fields whose widget is ``credential`` (one id or a list)."""
    if not isinstance(config, msgspec.Struct):
        return frozenset()
    named: set[int] = set()
    for spec in field_specs(type(config)):
        if spec.kind == "credential":
            value = getattr(config, spec.name)
            named.update(v for v in (value if isinstance(value, list) else [value]) if is_id(v))
    return frozenset(named)


def for_node(access: CredentialAccess | None, config: Any, node_name: str) -> CredentialAccess | None:
    """``ctx.credentials`` of one node run: the run's credentials, limited to those its config names."""
    if access is None:
        return None
    return NamedCredentials(access, config, node_name)


class NamedCredentials:
    """The run's credentials as one node may use them: only ids its config names; the rest is refused
    before anything is read (a node cannot reach the owner's other credentials by guessing ids). The ids are
    read from the config at the first use: a node that uses no credential costs the run loop nothing."""

    def __init__(self, access: CredentialAccess, config: Any, node_name: str) -> None:
        self._access, self._config, self._node_name = access, config, node_name
        self._named: frozenset[int] | None = None

    async def get(self, credential_id: int, *, accept: tuple[str, ...]) -> OpenCredential:
        self._check(credential_id)
        return await self._access.get(credential_id, accept=accept)

    async def access_token(self, credential_id: int, *, min_valid: float = 60) -> str:
        self._check(credential_id)
        return await self._access.access_token(credential_id, min_valid=min_valid)

    async def refresh_after_unauthorized(self, credential_id: int, used_token: str) -> str:
        self._check(credential_id)
        return await self._access.refresh_after_unauthorized(credential_id, used_token)

    async def api_base(self, credential_id: int) -> str:
        self._check(credential_id)
        return await self._access.api_base(credential_id)

    def _check(self, credential_id: Any) -> None:
        if self._named is None:
            self._named = credentials_named_in(self._config)
        if credential_id not in self._named:
            raise CredentialRefused(f"“{self._node_name}” may use only the credentials its config names, "
                                    f"not credential {credential_id!r}")
