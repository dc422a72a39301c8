"""Key rotation online (old + new keys, compare-and-set against a concurrent writer: nothing lost), dropping
the old key (refused while in use), and the start-up check that refuses keys unable to open the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials import open_credential, rotate_keys, update_credential, verify_keyring
from engine.credentials.keys import load_keyring, read_key_file, write_key_file
from engine.credentials.rotation import drop_old_keys, read_snapshot, reseal_one, reseal_snapshot, startup_keyring
from engine.database import make_engine, make_sessionmaker
from engine.errors import CredentialKeyError
from engine.models import Credential
from engine.settings import load_settings
from nodes.credentials import credential_registry
from tests import credential_factories as cf

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def db(migrated_db: tuple[str, Sessions]) -> tuple[str, Sessions]:
    return migrated_db  # tests/engine/conftest.py


async def seeded(sessions: Sessions, n: int, keys_: object) -> tuple[int, list[int]]:
    async with sessions.begin() as s:
        owner = await cf.user(s)
        ids = [(await cf.credential(s, keys_, owner, name=f"c{i}", secret={"token": f"t{i}-0"})).id  # type: ignore[arg-type]
               for i in range(n)]
    return owner, ids


async def tokens(sessions: Sessions, keys_: object, owner: int, ids: list[int]) -> dict[int, str]:
    async with sessions() as s:
        return {cid: (await open_credential(s, keys_, owner, cid)).secret["token"] for cid in ids}  # type: ignore[arg-type]


async def key_ids(sessions: Sessions) -> set[str]:
    async with sessions() as s:
        return set((await s.scalars(select(Credential.key_id))).all())


async def test_rotation_reseals_with_the_new_key_while_another_writer_updates(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    old = cf.ring("k1")
    owner, ids = await seeded(sessions, 24, old)
    both = cf.ring("k2", "k1", keys={"k1": old.current})  # the setting during a rotation: new first, old kept
    registry, written = credential_registry(), {cid: f"t{i}-0" for i, cid in enumerate(ids)}

    async def writer() -> None:  # a user editing credentials while the rotation runs (processes know both keys)
        for round_ in range(1, 4):
            for i, cid in enumerate(ids[::2]):
                async with sessions.begin() as s:
                    await update_credential(s, both, registry, owner_id=owner, credential_id=cid,
                                            secret_changes={"token": f"t{i}-{round_}"})
                written[cid] = f"t{i}-{round_}"
                await asyncio.sleep(0)

    resealed, _ = await asyncio.gather(rotate_keys(sessions, both), writer())
    assert 0 < resealed <= len(ids)
    assert await key_ids(sessions) == {"k2"}
    new_only = cf.ring("k2", keys={"k2": both.current})
    assert await tokens(sessions, new_only, owner, ids) == written, "no write lost, every row opens with k2"
    assert await rotate_keys(sessions, both) == 0, "nothing left to reseal"
    await verify_keyring(sessions, new_only)


async def test_a_rotation_that_loses_the_race_rereads_the_row(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    old = cf.ring("k1")
    owner, (cid,) = await seeded(sessions, 1, old)
    both = cf.ring("k2", "k1", keys={"k1": old.current})
    stale = await read_snapshot(sessions, cid)
    assert stale is not None and stale.revision == 1
    async with sessions.begin() as s:  # another writer lands between the rotation's read and its write
        await update_credential(s, old, credential_registry(), owner_id=owner, credential_id=cid,
                                secret_changes={"token": "written meanwhile"})
    assert await reseal_snapshot(sessions, both, stale) is False, "compare-and-set refused the stale snapshot"
    assert await reseal_one(sessions, both, cid) == 1
    async with sessions() as s:
        row = await s.get_one(Credential, cid)
        assert (row.key_id, row.revision) == ("k2", 3)
    assert await tokens(sessions, both, owner, [cid]) == {cid: "written meanwhile"}


async def test_rotation_keeps_updated_at_and_reports_rows_it_cannot_open(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    k1, stranger = cf.ring("k1"), cf.ring("k0")
    owner, (cid,) = await seeded(sessions, 1, k1)
    async with sessions.begin() as s:
        lost = (await cf.credential(s, stranger, owner, name="sealed elsewhere")).id
        before = (await s.get_one(Credential, cid)).updated_at
    both = cf.ring("k2", "k1", keys={"k1": k1.current})
    with pytest.raises(CredentialKeyError, match=rf"1 credential\(s\) could not be resealed \(1 were\): "
                                                 rf"credential {lost} was sealed with key 'k0'"):
        await rotate_keys(sessions, both)
    async with sessions() as s:
        assert (await s.get_one(Credential, cid)).updated_at == before
        assert (await s.get_one(Credential, lost)).key_id == "k0", "left as it was"


async def test_drop_old_is_refused_while_a_key_is_in_use_then_rewrites_the_file(db: tuple[str, Sessions],
                                                                                tmp_path: Path) -> None:
    url, sessions = db
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url})
    ring = load_keyring(settings)
    owner, ids = await seeded(sessions, 3, ring)
    first = ring.current
    write_key_file(settings.credentials_key_file, (cf.ring("k2").current, *ring.keys))
    assert ring.current.id == "k2", "the ring read the file again: it seals with the new key"
    with pytest.raises(CredentialKeyError, match=rf"key '{first.id}' still seals 3 credential\(s\) \(e.g. credential "
                                                 rf"{ids[0]}\)\. Run `patchwire credentials rotate-key` first"):
        await drop_old_keys(sessions, ring)
    assert [k.id for k in read_key_file(settings.credentials_key_file)] == ["k2", first.id], "file unchanged"
    assert await rotate_keys(sessions, ring) == 3
    assert await drop_old_keys(sessions, ring) == (first.id,)
    assert [k.id for k in read_key_file(settings.credentials_key_file)] == ["k2"]
    assert (await tokens(sessions, load_keyring(settings), owner, ids)) == {c: f"t{i}-0" for i, c in enumerate(ids)}


async def test_start_up_refuses_keys_that_cannot_open_the_store(db: tuple[str, Sessions], tmp_path: Path) -> None:
    url, sessions = db
    k1 = cf.ring("k1")
    await seeded(sessions, 2, k1)
    base = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}
    from engine.credentials.keys import format_entry, new_key

    right = format_entry(k1.current)
    assert (await startup_keyring(load_settings({**base, "PATCHWIRE_CREDENTIALS_KEY": right}), sessions)).ids == ("k1",)
    missing = load_settings({**base, "PATCHWIRE_CREDENTIALS_KEY": format_entry(new_key("k2"))})
    with pytest.raises(CredentialKeyError, match=r"2 credential\(s\) \(e\.g\. credential \d+\) were sealed with key "
                                                 r"'k1', which PATCHWIRE_CREDENTIALS_KEY does not hold"):
        await startup_keyring(missing, sessions)
    wrong = load_settings({**base, "PATCHWIRE_CREDENTIALS_KEY": format_entry(new_key("k1"))})
    with pytest.raises(CredentialKeyError, match=r"key 'k1' in PATCHWIRE_CREDENTIALS_KEY does not open credential \d+: "
                                                 "it is not the key that sealed it"):
        await startup_keyring(wrong, sessions)
    with pytest.raises(CredentialKeyError, match="the key file .* does not hold"):  # a fresh key file: not k1
        await startup_keyring(load_settings(base), sessions)


async def test_start_up_on_a_database_without_the_table_says_to_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    engine = make_engine(url)
    try:
        with pytest.raises(CredentialKeyError, match="no credentials table: run `patchwire migrate` first"):
            await startup_keyring(load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "DATABASE_URL": url}),
                                  make_sessionmaker(engine))
    finally:
        await engine.dispose()
