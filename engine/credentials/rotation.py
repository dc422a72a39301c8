"""Key rotation and the start-up check of the key ring.

``rotate_keys`` reseals every credential not sealed with the ring's current key, online: one row per short
transaction, written by compare-and-set on ``revision`` (and on the old ``key_id``), so a user's edit or a
token refresh that lands meanwhile is never overwritten — the row is read again and resealed from what that
writer stored (or left alone if the writer already sealed it with the current key). Rotation bumps
``revision`` like every write of ``secret``, and keeps ``updated_at``: the credential did not change.

``verify_keyring`` runs when ``patchwire serve`` and ``patchwire worker`` start: every key id in use must be in
the ring and open one credential sealed with it, or the process refuses to start with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials.keys import load_keyring, write_key_file
from engine.credentials.sealing import KeyRing, seal, unseal
from engine.errors import CredentialError, CredentialKeyError, CredentialKeyMissing, CredentialSealBroken
from engine.models import Credential

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger("patchwire.credentials")
BATCH = 200
RESEAL_ATTEMPTS = 20
Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Snapshot:
    """What resealing one row needs, read in its own short transaction."""

    id: int
    owner_id: int
    type_name: str
    key_id: str
    revision: int
    secret: bytes


async def rotate_keys(sessions: Sessions, ring: KeyRing) -> int:
    """Reseal every credential with ``ring.current``; returns how many were resealed. Rows that cannot be
    opened are left as they are and reported together at the end (``CredentialKeyError``)."""
    resealed, failures, after = 0, [], 0
    while ids := await _ids_to_reseal(sessions, ring.current.id, after):
        for credential_id in ids:
            try:
                resealed += await reseal_one(sessions, ring, credential_id)
            except CredentialError as exc:
                failures.append(str(exc))
        after = ids[-1]
    if failures:
        raise CredentialKeyError(f"{len(failures)} credential(s) could not be resealed ({resealed} were): "
                                 + "; ".join(failures[:5]) + ("; …" if len(failures) > 5 else ""))
    log.info("resealed %d credential(s) with key %r", resealed, ring.current.id)
    return resealed


async def _ids_to_reseal(sessions: Sessions, current: str, after: int) -> list[int]:
    async with sessions() as s:
        query = (select(Credential.id).where(Credential.key_id != current, Credential.id > after)
                 .order_by(Credential.id).limit(BATCH))
        return list((await s.scalars(query)).all())


async def reseal_one(sessions: Sessions, ring: KeyRing, credential_id: int) -> int:
    """Reseal one row with the current key (1), or find it gone or already resealed (0)."""
    for _ in range(RESEAL_ATTEMPTS):
        snapshot = await read_snapshot(sessions, credential_id)
        if snapshot is None or snapshot.key_id == ring.current.id:
            return 0
        if await reseal_snapshot(sessions, ring, snapshot):
            return 1
    raise CredentialKeyError(f"credential {credential_id} kept changing during {RESEAL_ATTEMPTS} attempts to reseal it")


async def read_snapshot(sessions: Sessions, credential_id: int) -> Snapshot | None:
    async with sessions() as s:
        row = (await s.execute(select(Credential.id, Credential.owner_id, Credential.type_name, Credential.key_id,
                                      Credential.revision, Credential.secret)
                               .where(Credential.id == credential_id))).first()
    return Snapshot(row[0], row[1], row[2], row[3], row[4], bytes(row[5])) if row else None


async def reseal_snapshot(sessions: Sessions, ring: KeyRing, snap: Snapshot) -> bool:
    """Write the row resealed from ``snap`` if nobody wrote it since (compare-and-set); False if somebody did."""
    plain = unseal(ring, snap.secret, snap.key_id, snap.owner_id, snap.id, snap.type_name)
    blob, key_id = seal(ring, plain, snap.owner_id, snap.id, snap.type_name)
    async with sessions.begin() as s:
        result = await s.execute(
            update(Credential)
            .where(Credential.id == snap.id, Credential.revision == snap.revision, Credential.key_id == snap.key_id)
            .values(secret=blob, key_id=key_id, revision=snap.revision + 1, updated_at=Credential.updated_at)
            .execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def keys_in_use(sessions: Sessions) -> dict[str, tuple[int, int]]:
    """Key id → (how many credentials it seals, the lowest such credential id)."""
    async with sessions() as s:
        rows = await s.execute(select(Credential.key_id, func.count(), func.min(Credential.id))
                               .group_by(Credential.key_id))
        return {key_id: (count, first) for key_id, count, first in rows}


async def verify_keyring(sessions: Sessions, ring: KeyRing) -> None:
    """Refuse (``CredentialKeyError``) unless the ring holds every key in use and each opens a credential."""
    in_use = await keys_in_use(sessions)
    problems = []
    for key_id, (count, first) in sorted(in_use.items()):
        if ring.find(key_id) is None:
            problems.append(f"{count} credential(s) (e.g. credential {first}) were sealed with key {key_id!r}, "
                            f"which {_source(ring)} does not hold")
            continue
        snapshot = await read_snapshot(sessions, first)
        if snapshot is None:
            continue  # deleted meanwhile
        try:
            unseal(ring, snapshot.secret, snapshot.key_id, snapshot.owner_id, snapshot.id, snapshot.type_name)
        except (CredentialSealBroken, CredentialKeyMissing):
            problems.append(f"key {key_id!r} in {_source(ring)} does not open credential {first}: it is not the key "
                            "that sealed it (or that row was altered)")
    if problems:
        raise CredentialKeyError("the credential keys cannot open the stored credentials: " + "; ".join(problems))


async def drop_old_keys(sessions: Sessions, ring: KeyRing) -> tuple[str, ...]:
    """After a rotation: the ids of the keys other than the current one, refused (``CredentialKeyError``) while
    a credential still uses one. A ring read from the key file is rewritten with the current key alone; for
    ``PATCHWIRE_CREDENTIALS_KEY`` the caller tells the operator which entries to remove."""
    old = tuple(k for k in ring.keys if k.id != ring.current.id)
    in_use = {key_id: used for key_id, used in (await keys_in_use(sessions)).items() if key_id != ring.current.id}
    if in_use:
        raise CredentialKeyError("not dropping the old keys: " + "; ".join(
            f"key {key_id!r} still seals {count} credential(s) (e.g. credential {first})"
            for key_id, (count, first) in sorted(in_use.items())) + ". Run `patchwire credentials rotate-key` first.")
    if ring.reload is not None and old:
        write_key_file(Path(ring.source), (ring.current,))
        ring.keys = (ring.current,)
    return tuple(k.id for k in old)


def _source(ring: KeyRing) -> str:
    return "PATCHWIRE_CREDENTIALS_KEY" if ring.reload is None else f"the key file {ring.source}"


async def startup_keyring(settings: Settings, sessions: Sessions) -> KeyRing:
    """The process's key ring, checked against the stored credentials (``patchwire serve`` / ``worker``
    start-up): ``CredentialKeyError`` says why the process must not start."""
    ring = load_keyring(settings)
    try:
        await verify_keyring(sessions, ring)
    except (OperationalError, ProgrammingError) as exc:
        if not _missing_table(exc):
            raise
        raise CredentialKeyError("the database has no credentials table: run `patchwire migrate` first") from None
    return ring


def _missing_table(exc: Exception) -> bool:
    text = str(exc).lower()
    return "credentials" in text and ("no such table" in text or "does not exist" in text)
