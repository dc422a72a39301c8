"""The binary data store: ``put`` / ``read`` / ``delete`` / ``attach`` by reference, and the pruning pass.

Files are named by the store's own random id only (``<dir>/<id[:2]>/<id>``, the id checked against
``[0-9a-f]{32}`` before any path is built): nothing a request, an item or a node says can make the store read
or write a file of its choosing. A file is written (to a temporary name, then renamed; mode 0600) before its row
is committed, so a row always has its file; a file whose row was never committed is an orphan the pruning pass
removes after a day, as are rows no execution holds any more (their execution was pruned, or never created).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import PatchwireError
from engine.files import PRIVATE_FILE, private_directory
from engine.models import BinaryData

log = logging.getLogger("patchwire.binary")
ID = re.compile(r"[0-9a-f]{32}")
ORPHAN_AFTER = timedelta(days=1)
"""Data no execution holds is deleted after this long (the time a webhook's execution has to be created)."""
STORAGES = ("file", "db")
REF_KEY = "$binary"


class BinaryNotFound(PatchwireError):
    """No such binary data for this owner (unknown id, another owner's, or pruned)."""


def is_binary_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str)


def binary_id_of(ref_or_id: Any) -> str:
    """The id of a reference (or an id); ``BinaryNotFound`` for anything that is not a well-formed id."""
    value = ref_or_id.get(REF_KEY) if isinstance(ref_or_id, dict) else ref_or_id
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise BinaryNotFound(f"{str(value)[:40]!r} is not a binary data reference")
    return value


class BinaryStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], data_dir: Path, storage: str = "file") -> None:
        if storage not in STORAGES:
            raise ValueError(f"binary storage must be one of {', '.join(STORAGES)}, not {storage!r}")
        self.sessions = sessions
        self.directory = data_dir / "binary"
        self.storage = storage

    def path_of(self, binary_id: str) -> Path:
        binary_id = binary_id_of(binary_id)
        return self.directory / binary_id[:2] / binary_id

    async def put(self, owner_id: int, data: bytes, *, file_name: str | None, mime_type: str,
                  execution_id: int | None = None, session: AsyncSession | None = None) -> dict[str, Any]:
        """Store ``data``; its reference. With ``session`` the row joins the caller's transaction (the caller
        commits); else it is committed here."""
        binary_id = secrets.token_hex(16)
        digest = hashlib.sha256(data).hexdigest()
        if self.storage == "file":
            await anyio.to_thread.run_sync(self._write, binary_id, data)
        row = BinaryData(id=binary_id, owner_id=owner_id, execution_id=execution_id,
                         file_name=(file_name or None) and file_name[:255], mime_type=(mime_type or
                                                                                   "application/octet-stream")[:200],
                         size=len(data), sha256=digest, storage=self.storage,
                         data=data if self.storage == "db" else None, created_at=datetime.now(UTC))
        if session is not None:
            session.add(row)
            await session.flush()
        else:
            async with self.sessions.begin() as own:
                own.add(row)
        return {REF_KEY: binary_id, "file_name": row.file_name, "mime_type": row.mime_type, "size": row.size,
                "sha256": digest}

    def _write(self, binary_id: str, data: bytes) -> None:
        path = self.path_of(binary_id)
        private_directory(self.directory)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)

    async def read(self, owner_id: int, ref_or_id: Any) -> bytes:
        binary_id = binary_id_of(ref_or_id)
        async with self.sessions() as session:
            row = (await session.execute(select(BinaryData.storage, BinaryData.data).where(
                BinaryData.id == binary_id, BinaryData.owner_id == owner_id))).first()
        if row is None:
            raise BinaryNotFound(f"binary data {binary_id} was not found (or was pruned)")
        if row.storage == "db":
            return bytes(row.data or b"")
        try:
            return await anyio.to_thread.run_sync(self.path_of(binary_id).read_bytes)
        except FileNotFoundError:
            raise BinaryNotFound(f"the file of binary data {binary_id} is missing") from None

    async def delete(self, owner_id: int, ref_or_id: Any) -> None:
        binary_id = binary_id_of(ref_or_id)
        async with self.sessions.begin() as session:
            deleted = await session.execute(delete(BinaryData).where(BinaryData.id == binary_id,
                                                                     BinaryData.owner_id == owner_id))
        if deleted.rowcount:  # type: ignore[attr-defined]
            self._unlink(binary_id)

    def _unlink(self, binary_id: str) -> None:
        _remove(self.path_of(binary_id))


async def attach(session: AsyncSession, refs: list[dict[str, Any]], execution_id: int) -> None:
    """Link stored data to the execution that holds it (in the caller's transaction): it is then pruned with it."""
    ids = [binary_id_of(ref) for ref in refs]
    if ids:
        await session.execute(update(BinaryData).where(BinaryData.id.in_(ids)).values(execution_id=execution_id)
                              .execution_options(synchronize_session=False))


async def prune_binary(sessions: async_sessionmaker[AsyncSession], directory: Path | None, *,
                       now: datetime | None = None, batch: int = 500) -> int:
    """Delete binary data no execution holds any more (its execution was pruned, or never created) once it is
    older than ``ORPHAN_AFTER``, with its file; then files under ``directory`` that have no row and are as old
    (a write whose transaction never committed). Returns the rows deleted."""
    cutoff = (now or datetime.now(UTC)) - ORPHAN_AFTER
    deleted = 0
    while True:
        async with sessions.begin() as session:
            rows = (await session.execute(select(BinaryData.id, BinaryData.storage).where(
                BinaryData.execution_id.is_(None), BinaryData.created_at < cutoff).limit(batch))).all()
            if rows:
                await session.execute(delete(BinaryData).where(BinaryData.id.in_([r.id for r in rows])))
        for row in rows:
            if row.storage == "file" and directory is not None:
                _remove(directory / row.id[:2] / row.id)
        deleted += len(rows)
        if len(rows) < batch:
            break
    if directory is not None and directory.is_dir():
        await _prune_files(sessions, directory, cutoff.timestamp())
    return deleted


async def _prune_files(sessions: async_sessionmaker[AsyncSession], directory: Path, cutoff: float) -> None:
    old = await anyio.to_thread.run_sync(_old_files, directory, cutoff)
    for start in range(0, len(old), 500):
        chunk = old[start:start + 500]
        async with sessions() as session:
            known = set(await session.scalars(select(BinaryData.id).where(
                BinaryData.id.in_([p.name for p in chunk if ID.fullmatch(p.name)]))))
        for path in chunk:
            if path.name not in known:
                _remove(path)


def _old_files(directory: Path, cutoff: float) -> list[Path]:
    found = []
    for path in directory.glob("*/*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                found.append(path)
        except FileNotFoundError:
            continue
    return found


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not delete binary file %s", path, exc_info=True)


__all__ = ["BinaryNotFound", "BinaryStore", "attach", "binary_id_of", "is_binary_ref", "prune_binary"]
