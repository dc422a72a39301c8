"""The credential store: every function is scoped to an owner (except the worker-side ``mark_status``).

A new credential is inserted first (the flush gives its id), then sealed for that id and updated, in the same
transaction. Every later write of ``secret`` is a compare-and-set on ``revision`` (``_write_secret``): a
writer that lost the race re-reads the row and applies its change again, so a rotation, a token refresh
and a user's edit that meet never lose one another's work. The caller owns the transaction (commit or
roll back); a ``ConfigError`` raised after an ``IntegrityError`` leaves the session needing a rollback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import parse_config
from engine.credentials.registry import CredentialRegistry
from engine.credentials.rotation import rotate_keys, verify_keyring
from engine.credentials.sealing import KeyRing, seal, unseal
from engine.credentials.types import CredentialType, OpenCredential
from engine.errors import ConfigError, CredentialInUse, CredentialNotFound, CredentialSealBroken, RegistryError
from engine.models import Credential, Node, Workflow

__all__ = ["create_credential", "delete_credential", "get_credential", "list_credentials", "mark_status",
           "open_credential", "open_row", "rotate_keys", "store_tokens", "touch_last_used", "update_credential",
           "verify_keyring", "workflows_using"]

STATUSES = ("ok", "needs_reconnect", "error")
MAX_NAME = 200
MAX_ID = 2**31 - 1  # an Integer primary key
TOKEN_FIELDS = ("access_token", "refresh_token", "token_type")
"""Where OAuth types keep their tokens (secret fields); ``expires_at`` is a column."""
WRITE_ATTEMPTS = 20
LAST_USED_EVERY = timedelta(minutes=1)


class StaleRevision(Exception):
    """A compare-and-set on ``revision`` found another writer's revision (internal: the writer retries)."""


def now() -> datetime:
    return datetime.now(UTC)


# ---- validation -------------------------------------------------------------------------------------------

def credential_type(registry: CredentialRegistry, type_name: str) -> type[CredentialType]:
    try:
        return registry.get(type_name)
    except RegistryError:
        raise ConfigError({"type_name": f"Unknown credential type {type_name!r}."}) from None


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError({"name": "This field is required."})
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ConfigError({"name": f"Too long (at most {MAX_NAME} characters)."})
    return name


def _validated(cls: type[CredentialType], public: Any, secret: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both schemas at once, so one error names every bad field of the form."""
    errors: dict[str, str] = {}
    parsed: list[dict[str, Any]] = []
    for schema, raw in ((cls.Public, public), (cls.Secret, secret)):
        try:
            parsed.append(msgspec.to_builtins(parse_config(schema, raw if raw is not None else {})))
        except ConfigError as exc:
            errors.update(exc.field_errors)
            parsed.append({})
    if errors:
        raise ConfigError(errors)
    return parsed[0], parsed[1]


async def _name_taken(session: AsyncSession, owner_id: int, name: str, except_id: int | None = None) -> bool:
    query = select(Credential.id).where(Credential.owner_id == owner_id, Credential.name == name)
    if except_id is not None:
        query = query.where(Credential.id != except_id)
    return (await session.scalar(query.limit(1))) is not None


def _name_error(name: str) -> ConfigError:
    return ConfigError({"name": f"You already have a credential named {name!r}."})


# ---- reading ----------------------------------------------------------------------------------------------

async def list_credentials(session: AsyncSession, owner_id: int,
                           type_names: Iterable[str] | None = None) -> list[Credential]:
    """The owner's credentials by name, optionally only those of the given types."""
    query = select(Credential).where(Credential.owner_id == owner_id)
    if type_names is not None:
        query = query.where(Credential.type_name.in_(list(type_names)))
    return list((await session.scalars(query.order_by(Credential.name, Credential.id))).all())


async def get_credential(session: AsyncSession, owner_id: int, credential_id: int) -> Credential:
    """The owner's credential; ``CredentialNotFound`` for an unknown id and for another owner's alike (and for
    an id that is no id at all: a string, a bool, a number outside the column's range)."""
    if isinstance(credential_id, bool) or not isinstance(credential_id, int) or not 0 < credential_id <= MAX_ID:
        raise CredentialNotFound(credential_id)
    row = await session.scalar(select(Credential).where(Credential.id == credential_id,
                                                        Credential.owner_id == owner_id)
                               .execution_options(populate_existing=True))
    if row is None:
        raise CredentialNotFound(credential_id)
    return row


def open_row(ring: KeyRing, row: Credential) -> OpenCredential:
    """Unseal a loaded row (``CredentialKeyMissing`` / ``CredentialSealBroken``)."""
    plain = unseal(ring, row.secret, row.key_id, row.owner_id, row.id, row.type_name)
    try:
        secret = msgspec.json.decode(plain, type=dict[str, Any])
    except msgspec.DecodeError:
        raise CredentialSealBroken(row.id) from None
    return OpenCredential(id=row.id, owner_id=row.owner_id, type_name=row.type_name, name=row.name,
                          public=dict(row.public or {}), secret=secret)


async def open_credential(session: AsyncSession, ring: KeyRing, owner_id: int, credential_id: int) -> OpenCredential:
    return open_row(ring, await get_credential(session, owner_id, credential_id))


async def touch_last_used(session: AsyncSession, credential_id: int) -> None:
    """Record a use, at most once a minute per credential (a run opening it)."""
    at = now()
    await session.execute(
        update(Credential).where(Credential.id == credential_id,
                                 (Credential.last_used_at.is_(None)) | (Credential.last_used_at < at - LAST_USED_EVERY))
        .values(last_used_at=at).execution_options(synchronize_session=False))


# ---- writing ----------------------------------------------------------------------------------------------

async def create_credential(session: AsyncSession, ring: KeyRing, registry: CredentialRegistry, *, owner_id: int,
                            type_name: str, name: str, public: dict[str, Any], secret: dict[str, Any]) -> Credential:
    """Validate, insert, seal for the new id: one transaction (the caller's)."""
    cls = credential_type(registry, type_name)
    name = _check_name(name)
    clear, secret_fields = _validated(cls, public, secret)
    if await _name_taken(session, owner_id, name):
        raise _name_error(name)
    row = Credential(owner_id=owner_id, type_name=cls.type_name, type_version=cls.version, name=name, public=clear,
                     secret=b"", key_id=ring.current.id, status="ok", revision=1)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise _name_error(name) from None  # a concurrent create of the same name won the race
    row.secret, row.key_id = seal(ring, msgspec.json.encode(secret_fields), owner_id, row.id, row.type_name)
    await session.flush()
    return row


async def update_credential(session: AsyncSession, ring: KeyRing, registry: CredentialRegistry, *, owner_id: int,
                            credential_id: int, name: str | None = None, public: dict[str, Any] | None = None,
                            secret_changes: dict[str, Any] | None = None) -> Credential:
    """Rename, replace the clear fields, change some secret fields: those not given, or given empty (the
    form's "leave empty to keep"), are kept."""
    row = await get_credential(session, owner_id, credential_id)
    changes = {k: v for k, v in (secret_changes or {}).items() if v is not None and v != ""}
    cls = credential_type(registry, row.type_name)
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = _check_name(name)
        if await _name_taken(session, owner_id, values["name"], except_id=row.id):
            raise _name_error(values["name"])

    async def change(current: OpenCredential) -> tuple[dict[str, Any], dict[str, Any]]:
        clear, secret = _validated(cls, current.public if public is None else public,
                                   {**current.secret, **changes})
        return secret, {**values, "public": clear}

    try:
        await _rewrite(session, ring, row, change)
    except IntegrityError:
        raise _name_error(values.get("name", row.name)) from None
    return row


async def store_tokens(session: AsyncSession, ring: KeyRing, credential: Credential, token: dict[str, Any], *,
                       expires_at: datetime | None) -> None:
    """Keep new OAuth tokens: reseal, ``revision`` + 1, ``expires_at``, status back to ``ok``. A refresh
    token the provider did not send again is kept."""
    tokens = {k: token[k] for k in TOKEN_FIELDS if token.get(k)}

    async def change(current: OpenCredential) -> tuple[dict[str, Any], dict[str, Any]]:
        return ({**current.secret, **tokens},
                {"expires_at": expires_at, "status": "ok", "status_message": None})

    await _rewrite(session, ring, credential, change)


async def _rewrite(session: AsyncSession, ring: KeyRing, row: Credential,
                   change: Callable[[OpenCredential], Awaitable[tuple[dict[str, Any], dict[str, Any]]]]) -> None:
    """Open the row, compute ``(secret, other column values)``, write by compare-and-set; on a lost race,
    read the row again and redo the change on what the winner wrote."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            secret, values = await change(open_row(ring, row))
            await _write_secret(session, ring, row, secret, **values)
            return
        except StaleRevision:
            await session.refresh(row)
    raise RuntimeError(f"credential {row.id} kept changing under {WRITE_ATTEMPTS} attempts to write it")


async def _write_secret(session: AsyncSession, ring: KeyRing, row: Credential, secret: dict[str, Any],
                        **values: Any) -> None:
    """Seal ``secret`` with the current key and write it if ``revision`` is still the one read."""
    blob, key_id = seal(ring, msgspec.json.encode(secret), row.owner_id, row.id, row.type_name)
    result = await session.execute(
        update(Credential).where(Credential.id == row.id, Credential.revision == row.revision)
        .values(secret=blob, key_id=key_id, revision=row.revision + 1, updated_at=now(), **values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleRevision(row.id)
    await session.refresh(row)


async def mark_status(session: AsyncSession, credential_id: int, status: str, message: str | None = None) -> None:
    """Set ``ok`` / ``needs_reconnect`` / ``error`` (worker side: the id comes from an opened credential)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    await session.execute(update(Credential).where(Credential.id == credential_id)
                          .values(status=status, status_message=message, updated_at=now())
                          .execution_options(synchronize_session=False))


async def workflows_using(session: AsyncSession, owner_id: int, credential_id: int) -> list[tuple[int, str]]:
    """The owner's workflows whose draft has a node naming this credential in its ``credential`` field."""
    rows = await session.execute(
        select(Workflow.id, Workflow.name, Node.config["credential"])
        .join(Node, Node.workflow_id == Workflow.id).where(Workflow.owner_id == owner_id))
    found = {wf_id: wf_name for wf_id, wf_name, value in rows if _names(value, credential_id)}
    return sorted(found.items(), key=lambda pair: (pair[1].lower(), pair[0]))


def _names(value: Any, credential_id: int) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    return str(value).strip() == str(credential_id)


async def delete_credential(session: AsyncSession, owner_id: int, credential_id: int) -> None:
    """Delete, refused with ``CredentialInUse`` (naming the workflows) while a workflow's draft uses it."""
    row = await get_credential(session, owner_id, credential_id)
    using = await workflows_using(session, owner_id, credential_id)
    if using:
        raise CredentialInUse(credential_id, using)
    await session.delete(row)
    await session.flush()
