"""The Credentials page's rules: every query scoped to the owner (through engine/credentials/store.py).

Secret values never leave this module towards a page: forms are read here (``read_form``), the store
seals them, and what the templates get is the ``Credential`` row (public fields in clear, the secret
as ciphertext they never show) plus which secret fields are set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar.exceptions import NotFoundException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.config import FieldSpec, config_from_form, field_specs, parse_config
from engine.credentials import store
from engine.credentials.oauth_connect import check_connection
from engine.credentials.oauth_refresh import OAuthServices
from engine.credentials.oauth_types import OAuthType
from engine.credentials.registry import CredentialRegistry
from engine.credentials.sealing import KeyRing
from engine.credentials.store import MAX_NAME
from engine.credentials.types import CredentialTestContext, CredentialType
from engine.errors import ConfigError, CredentialError, CredentialNotFound, NodeError, RegistryError
from engine.models import Credential

TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "token_type", "expires_at", "id_token"})
"""Secret fields an OAuth connection fills in: never part of a form."""
HIDDEN_WIDGETS = frozenset({"hidden", "readonly"})
"""A field whose schema says ``extra={"widget": "hidden"}`` (e.g. an OAuth account, set by the connection)
is shown on the page but not offered in the form."""
CONNECTION_FIELDS = frozenset({"account", "account_email", "email", "team", "team_id", "team_name", "workspace",
                               "workspace_id", "workspace_name", "bot_user_id"})
"""Public fields of an OAuth type that the connection fills in (the provider says who connected)."""
NOT_CONNECTED = "Not connected yet: connect the account."
TEST_TIMEOUT = 20.0
GROUPS = (("generic", "Generic HTTP authentication"), ("oauth", "OAuth 2 (any provider)"),
          ("services", "Services"))


def group_of(credential_type: type[CredentialType]) -> str:
    if credential_type.type_name.startswith("http_"):
        return "generic"
    if credential_type.type_name.startswith("oauth2"):
        return "oauth"
    return "services"


def connectable(credential_type: type[CredentialType]) -> bool:
    """An OAuth type whose tokens come from a browser consent (authorization code): it has a Connect button."""
    return issubclass(credential_type, OAuthType)


def _filled_by_connection(credential_type: type[CredentialType], spec: FieldSpec) -> bool:
    return spec.kind in HIDDEN_WIDGETS or (connectable(credential_type) and spec.name in CONNECTION_FIELDS)


def form_fields(credential_type: type[CredentialType], *, secret: bool) -> list[FieldSpec]:
    """The fields of the type's ``Public`` (or ``Secret``) schema a person fills in (secret ones as password
    inputs); what an OAuth connection fills in is left out."""
    fields = []
    for spec in field_specs(credential_type.Secret if secret else credential_type.Public):
        if (secret and spec.name in TOKEN_FIELDS) or (not secret and _filled_by_connection(credential_type, spec)):
            continue
        fields.append(FieldSpec(spec.name, "password", spec.title, spec.description, spec.required, None)
                      if secret and spec.kind not in ("boolean", "select") else spec)
    return fields


def shown_fields(credential_type: type[CredentialType]) -> list[FieldSpec]:
    """Public fields that are shown but not edited (set by a connection)."""
    return [spec for spec in field_specs(credential_type.Public) if _filled_by_connection(credential_type, spec)]


@dataclass
class SubmittedForm:
    """A credential form as submitted: what the templates show again (never a secret) and what the store gets."""

    name: str
    public: dict[str, Any]
    secret: dict[str, Any] = field(repr=False)
    errors: dict[str, str] = field(default_factory=dict)


def _prefixed(form: Mapping[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {key[len(prefix):]: values for key, values in form.items() if key.startswith(prefix)}


def read_form(credential_type: type[CredentialType], form: Mapping[str, list[str]]) -> SubmittedForm:
    """Form fields ``name``, ``public.<field>`` and ``secret.<field>``; a blank secret field is left out
    (on an edit: kept as stored)."""
    name = (form.get("name") or [""])[-1]
    public_form = _prefixed(form, "public.")
    editable = {spec.name for spec in form_fields(credential_type, secret=False)}
    public, errors = config_from_form(credential_type.Public, public_form)
    public = {key: value for key, value in public.items() if key in editable}
    secret_form = _prefixed(form, "secret.")
    secret_fields = {spec.name for spec in form_fields(credential_type, secret=True)}
    secret: dict[str, Any] = {}
    for key in secret_fields:
        value = (secret_form.get(key) or [""])[-1]
        if value.strip():
            secret[key] = value
    return SubmittedForm(name, public, secret, {k: v for k, v in errors.items() if k in editable})


def form_problems(credential_type: type[CredentialType], submitted: SubmittedForm, *,
                  with_secret: bool) -> dict[str, str]:
    """Every problem of the form at once (the store stops at the first kind it finds): the name, the public
    fields and (when creating: an edit keeps the stored secret fields) the secret fields."""
    errors = dict(submitted.errors)
    name = submitted.name.strip()
    if not name:
        errors["name"] = "This field is required."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Too long (at most {MAX_NAME} characters)."
    checks = [(credential_type.Public, submitted.public)] + ([(credential_type.Secret, submitted.secret)]
                                                             if with_secret else [])
    for schema, raw in checks:
        try:
            parse_config(schema, raw)
        except ConfigError as exc:
            errors.update({k: v for k, v in exc.field_errors.items() if k not in errors})
    return errors


def field_errors(exc: ConfigError) -> dict[str, str]:
    """The store's per-field errors keyed by the form's field names (``public.x`` / ``secret.x`` → ``x``)."""
    return {key.split(".", 1)[1] if key.startswith(("public.", "secret.")) else key: message
            for key, message in exc.field_errors.items()}


def redact(text: str, secret: Mapping[str, Any]) -> str:
    """``text`` without any secret value of the credential (an error message may quote a URL or a header)."""
    values = sorted((v for v in secret.values() if isinstance(v, str) and len(v) >= 4), key=len, reverse=True)
    for value in values:
        text = text.replace(value, "[redacted]")
    return text


@dataclass
class CredentialService:
    db: AsyncSession
    owner_id: int
    ring: KeyRing
    registry: CredentialRegistry

    # reading -------------------------------------------------------------------------------
    async def list(self, type_names: Iterable[str] | None = None) -> list[Credential]:
        return await store.list_credentials(self.db, self.owner_id, type_names)

    async def get(self, credential_id: int) -> Credential:
        """The owner's credential; another owner's id is a 404, exactly like an id that does not exist."""
        try:
            return await store.get_credential(self.db, self.owner_id, credential_id)
        except CredentialNotFound:
            raise NotFoundException() from None

    def credential_type(self, type_name: str) -> type[CredentialType]:
        try:
            return self.registry.get(type_name)
        except RegistryError:
            raise NotFoundException(f"There is no credential type “{type_name}”.") from None

    def type_of(self, credential: Credential) -> type[CredentialType] | None:
        try:
            return self.registry.get(credential.type_name, credential.type_version)
        except RegistryError:
            return None

    async def secret_fields_set(self, credential: Credential) -> tuple[set[str], str | None]:
        """Which secret fields hold a value (the page says "set"; the values themselves stay here), or why
        the credential cannot be opened (a key missing from PATCHWIRE_CREDENTIALS_KEY, an altered blob)."""
        try:
            opened = await store.open_credential(self.db, self.ring, self.owner_id, credential.id)
        except CredentialError as exc:
            return set(), str(exc)
        return {key for key, value in opened.secret.items() if value not in (None, "")}, None

    async def usage(self, credential_id: int) -> list[tuple[int, str]]:
        await self.get(credential_id)
        return await store.workflows_using(self.db, self.owner_id, credential_id)

    # writing -------------------------------------------------------------------------------
    async def create(self, type_name: str, form: Mapping[str, list[str]]) -> tuple[Credential, SubmittedForm]:
        """Validate and store; ``ConfigError`` (form field names) and nothing stored on any problem."""
        credential_type = self.credential_type(type_name)
        submitted = read_form(credential_type, form)
        if errors := form_problems(credential_type, submitted, with_secret=True):
            raise ConfigError(errors)
        try:
            credential = await store.create_credential(
                self.db, self.ring, self.registry, owner_id=self.owner_id, type_name=credential_type.type_name,
                name=submitted.name, public=submitted.public, secret=submitted.secret)
            if connectable(credential_type):
                credential.status, credential.status_message = "needs_reconnect", NOT_CONNECTED
            await self.db.commit()
        except ConfigError as exc:
            await self.db.rollback()
            raise ConfigError(field_errors(exc)) from None
        return credential, submitted

    async def update(self, credential_id: int, form: Mapping[str, list[str]]) -> Credential:
        """Name and public fields as submitted; secret fields replaced only where a new value was typed."""
        credential = await self.get(credential_id)
        credential_type = self.type_of(credential)
        if credential_type is None:
            raise ConfigError({"name": f"The credential type “{credential.type_name}” is no longer available."})
        submitted = read_form(credential_type, form)
        if errors := form_problems(credential_type, submitted, with_secret=False):
            raise ConfigError(errors)
        try:
            credential = await store.update_credential(
                self.db, self.ring, self.registry, owner_id=self.owner_id, credential_id=credential_id,
                name=submitted.name, public={**credential.public, **submitted.public},
                secret_changes=submitted.secret)
            await self.db.commit()
        except ConfigError as exc:
            await self.db.rollback()
            raise ConfigError(field_errors(exc)) from None
        return credential

    async def delete(self, credential_id: int) -> None:
        """Refused with ``CredentialInUse`` (naming the workflows) while a workflow's draft uses it."""
        await self.get(credential_id)
        await store.delete_credential(self.db, self.owner_id, credential_id)
        await self.db.commit()

    async def test(self, credential_id: int, http: httpx.AsyncClient, env: Mapping[str, str],
                   sessions: async_sessionmaker[AsyncSession]) -> tuple[bool, str]:
        """Run the type's ``test`` against its service: (passed, message). The message never holds a secret.
        An OAuth type is tested with a fresh token (refreshed ahead, once more after a 401); a dead grant marks
        it ``needs_reconnect`` (engine/credentials/oauth_connect.py ``check_connection``)."""
        credential = await self.get(credential_id)
        credential_type = self.type_of(credential)
        if credential_type is None or not credential_type().has_test:
            raise NotFoundException("This credential type has no test.")
        secret: dict[str, Any] = {}
        try:
            opened = await store.open_credential(self.db, self.ring, self.owner_id, credential_id)
            secret = opened.secret
            if issubclass(credential_type, OAuthType):
                check = check_connection(OAuthServices(sessions, self.ring, self.registry, http, env),
                                         self.owner_id, credential_id)
            else:
                check = credential_type().test(CredentialTestContext(http=http, env=env), opened)
            async with asyncio.timeout(TEST_TIMEOUT):
                return True, redact(await check, secret)
        except TimeoutError:
            return False, f"No answer within {TEST_TIMEOUT:g} s."
        except (CredentialError, NodeError) as exc:
            return False, redact(str(exc), secret)
        except httpx.HTTPError as exc:
            return False, redact(f"Could not reach the service: {exc or type(exc).__name__}", secret)

    # what the workflow pages show ----------------------------------------------------------
    async def reconnect_needed(self, workflow_ids: Iterable[int] | None = None) -> dict[int, list[Credential]]:
        """Credentials needing a reconnect, by the id of each workflow whose draft uses them."""
        broken = list(await self.db.scalars(select(Credential).where(
            Credential.owner_id == self.owner_id, Credential.status == "needs_reconnect").order_by(Credential.name)))
        wanted = set(workflow_ids) if workflow_ids is not None else None
        by_workflow: dict[int, list[Credential]] = {}
        for credential in broken:
            for workflow_id, _ in await store.workflows_using(self.db, self.owner_id, credential.id):
                if wanted is None or workflow_id in wanted:
                    by_workflow.setdefault(workflow_id, []).append(credential)
        return by_workflow
