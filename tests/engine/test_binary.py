"""The binary data store: put / read / delete by reference, per owner, in a file or in the database; pruning
of data no execution holds and of files without a row; ids that are not the store's never become paths."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.binary import BinaryNotFound, BinaryStore, attach, binary_id_of, is_binary_ref, prune_binary
from engine.models import BinaryData, Execution, Workflow, WorkflowVersion
from tests.credential_factories import user


@pytest.mark.parametrize("storage", ["file", "db"])
async def test_put_read_delete_per_owner(migrated_db: tuple[str, Any], tmp_path: Path, storage: str) -> None:
    _, sessions = migrated_db
    async with sessions.begin() as session:
        owner, other = await user(session), await user(session)
    store = BinaryStore(sessions, tmp_path / "data", storage)
    data = bytes(range(256)) * 10
    ref = await store.put(owner, data, file_name="report.pdf", mime_type="application/pdf")
    assert is_binary_ref(ref) and ref["size"] == 2560 and ref["file_name"] == "report.pdf"
    assert ref["mime_type"] == "application/pdf" and len(ref["sha256"]) == 64
    assert await store.read(owner, ref) == data
    assert await store.read(owner, ref["$binary"]) == data
    with pytest.raises(BinaryNotFound):
        await store.read(other, ref)  # another owner's: as if it did not exist
    on_disk = store.path_of(ref["$binary"])
    assert on_disk.exists() == (storage == "file")
    if storage == "file":
        assert on_disk.read_bytes() == data and oct(on_disk.stat().st_mode & 0o777) == "0o600"
    await store.delete(other, ref)  # not theirs: nothing happens
    assert await store.read(owner, ref) == data
    await store.delete(owner, ref)
    with pytest.raises(BinaryNotFound):
        await store.read(owner, ref)
    assert not on_disk.exists()


async def test_references_that_are_not_the_stores_never_become_paths(migrated_db: tuple[str, Any],
                                                                     tmp_path: Path) -> None:
    _, sessions = migrated_db
    store = BinaryStore(sessions, tmp_path / "data")
    for bad in ("../../etc/passwd", "/etc/passwd", {"$binary": "../x"}, {"files": "/etc/passwd"}, 42, None,
                "A" * 32, "0" * 31):
        with pytest.raises(BinaryNotFound):
            binary_id_of(bad)
        with pytest.raises(BinaryNotFound):
            await store.read(1, bad)


async def test_pruning_deletes_what_no_execution_holds(migrated_db: tuple[str, Any], tmp_path: Path) -> None:
    _, sessions = migrated_db
    async with sessions.begin() as session:
        owner = await user(session)
        workflow = Workflow(owner_id=owner, name="W")
        session.add(workflow)
        await session.flush()
        version = WorkflowVersion(workflow_id=workflow.id, number=1, graph={"nodes": [], "connections": []})
        session.add(version)
        await session.flush()
        execution = Execution(workflow_id=workflow.id, owner_id=owner, version_id=version.id)
        session.add(execution)
    store = BinaryStore(sessions, tmp_path / "data")
    held = await store.put(owner, b"held", file_name="a.txt", mime_type="text/plain")
    orphan = await store.put(owner, b"orphan", file_name=None, mime_type="application/octet-stream")
    async with sessions.begin() as session:
        await attach(session, [held], execution.id)
    stray = store.path_of("f" * 32)  # a file whose row was never committed
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    old = time.time() - 2 * 86400
    os.utime(stray, (old, old))

    assert await prune_binary(sessions, store.directory) == 0  # no row is a day old yet
    assert not stray.exists()  # two days old and no row: removed
    assert await store.read(owner, orphan) == b"orphan"
    later = datetime.now(UTC) + timedelta(days=2)
    assert await prune_binary(sessions, store.directory, now=later) == 1
    assert await store.read(owner, held) == b"held"
    with pytest.raises(BinaryNotFound):
        await store.read(owner, orphan)
    assert not store.path_of(orphan["$binary"]).exists()
    async with sessions() as session:
        assert [r.execution_id for r in await session.scalars(select(BinaryData))] == [execution.id]
