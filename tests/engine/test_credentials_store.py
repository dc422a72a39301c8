"""The credential store on real SQLite and PostgreSQL: sealed at rest, bound to its row, owner-scoped,
validated field by field, names unique per owner, and in-use credentials kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials import (
    delete_credential,
    get_credential,
    list_credentials,
    mark_status,
    open_credential,
    store_tokens,
    update_credential,
    workflows_using,
)
from engine.errors import (
    ConfigError,
    CredentialInUse,
    CredentialKeyMissing,
    CredentialNotFound,
    CredentialSealBroken,
)
from engine.models import Credential
from nodes.credentials import credential_registry
from tests import credential_factories as cf

Sessions = async_sessionmaker[AsyncSession]
SECRET = "s3cr3t-value-that-must-never-be-stored-in-clear"


@pytest.fixture
def db(migrated_db: tuple[str, Sessions]) -> tuple[str, Sessions]:
    return migrated_db  # tests/engine/conftest.py


async def test_create_then_open_gives_the_secret_back_and_the_row_holds_only_ciphertext(db: tuple[str, Sessions]) -> None:
    url, sessions = db
    keys = cf.ring("k1")
    async with sessions.begin() as s:
        owner = await cf.user(s)
        row = await cf.credential(s, keys, owner, type_name="http_header", name="Weather API",
                                  public={"header_name": "X-API-Key"}, secret={"value": SECRET})
        cid = row.id
    async with sessions() as s:
        opened = await open_credential(s, keys, owner, cid)
        stored = await s.get_one(Credential, cid)
    assert opened.secret == {"value": SECRET} and opened.public == {"header_name": "X-API-Key"}
    assert SECRET not in repr(opened)
    assert stored.key_id == "k1" and stored.revision == 1 and stored.status == "ok"
    assert stored.secret[:1] == b"\x01" and SECRET.encode() not in stored.secret
    if url.startswith("sqlite"):  # the whole file, WAL included: no secret in clear anywhere
        for path in Path(url.removeprefix("sqlite:///")).parent.glob("db.sqlite*"):
            assert SECRET.encode() not in path.read_bytes(), path


async def test_a_ring_without_the_key_says_which_key_is_missing(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    async with sessions.begin() as s:
        owner = await cf.user(s)
        cid = (await cf.credential(s, cf.ring("k1"), owner)).id
    async with sessions() as s:
        with pytest.raises(CredentialKeyMissing, match=rf"credential {cid} was sealed with key 'k1', which "
                                                       "PATCHWIRE_CREDENTIALS_KEY does not hold"):
            await open_credential(s, cf.ring("k2"), owner, cid)
        with pytest.raises(CredentialSealBroken):  # same id, other material: the tag does not match
            await open_credential(s, cf.ring("k1"), owner, cid)


async def test_a_tampered_blob_does_not_open(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys = cf.ring("k1")
    async with sessions.begin() as s:
        owner = await cf.user(s)
        row = await cf.credential(s, keys, owner)
        cid, blob = row.id, bytes(row.secret)
    for altered in (blob[:-1] + bytes([blob[-1] ^ 1]), blob[:20] + bytes([blob[20] ^ 0x80]) + blob[21:],
                    b"\x02" + blob[1:], blob[:10]):
        async with sessions.begin() as s:
            await s.execute(update(Credential).where(Credential.id == cid).values(secret=altered))
        async with sessions() as s:
            with pytest.raises(CredentialSealBroken, match=rf"credential {cid} cannot be opened: its ciphertext was "
                                                           "altered or belongs to another row, owner or type"):
                await open_credential(s, keys, owner, cid)


async def test_a_blob_copied_to_another_row_owner_or_type_does_not_open(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys = cf.ring("k1")
    async with sessions.begin() as s:
        alice, mallory = await cf.user(s), await cf.user(s)
        victim = await cf.credential(s, keys, alice, secret={"token": SECRET})
        same_owner = await cf.credential(s, keys, alice)
        other_owner = await cf.credential(s, keys, mallory)
        other_type = await cf.credential(s, keys, alice, type_name="http_basic", public={"username": "u"},
                                         secret={"password": "p"})
        blob = bytes(victim.secret)
        targets = [(alice, same_owner.id), (mallory, other_owner.id), (alice, other_type.id)]
    for owner, target in targets:
        async with sessions.begin() as s:
            await s.execute(update(Credential).where(Credential.id == target).values(secret=blob))
        async with sessions() as s:
            with pytest.raises(CredentialSealBroken):
                await open_credential(s, keys, owner, target)
    async with sessions.begin() as s:  # moving the row itself to another owner or type fails the same way
        await s.execute(update(Credential).where(Credential.id == victim.id).values(owner_id=mallory))
    async with sessions() as s:
        with pytest.raises(CredentialSealBroken):
            await open_credential(s, keys, mallory, victim.id)
    async with sessions.begin() as s:
        await s.execute(update(Credential).where(Credential.id == victim.id)
                        .values(owner_id=alice, type_name="http_header"))
    async with sessions() as s:
        with pytest.raises(CredentialSealBroken):
            await open_credential(s, keys, alice, victim.id)


async def test_every_function_is_scoped_to_the_owner(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys, registry = cf.ring("k1"), credential_registry()
    async with sessions.begin() as s:
        alice, bob = await cf.user(s), await cf.user(s)
        cid = (await cf.credential(s, keys, alice, name="Alice's")).id
        await cf.credential(s, keys, bob, name="Bob's")
    async with sessions.begin() as s:
        for call in (get_credential(s, bob, cid), open_credential(s, keys, bob, cid),
                     update_credential(s, keys, registry, owner_id=bob, credential_id=cid, name="mine now"),
                     delete_credential(s, bob, cid), get_credential(s, alice, 999_999),
                     get_credential(s, alice, 2**63), get_credential(s, alice, str(cid)),  # type: ignore[arg-type]
                     get_credential(s, alice, True)):
            with pytest.raises(CredentialNotFound, match="not found"):
                await call
        assert [c.name for c in await list_credentials(s, bob)] == ["Bob's"]
        assert [c.name for c in await list_credentials(s, alice)] == ["Alice's"]
        assert await list_credentials(s, alice, type_names=["http_basic"]) == []
    async with sessions() as s:
        assert (await open_credential(s, keys, alice, cid)).name == "Alice's"


async def test_names_are_required_bounded_and_unique_per_owner(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys, registry = cf.ring("k1"), credential_registry()
    async with sessions.begin() as s:
        alice, bob = await cf.user(s), await cf.user(s)
        first = await cf.credential(s, keys, alice, name="Stripe")
        await cf.credential(s, keys, bob, name="Stripe")  # another owner may use the same name
        second = await cf.credential(s, keys, alice, name="Other")
    for name, message in (("Stripe", "already have a credential named 'Stripe'"), ("  ", "required"),
                          ("x" * 201, "at most 200")):
        async with sessions() as s:
            with pytest.raises(ConfigError, match=message) as caught:
                await cf.credential(s, keys, alice, name=name)
            assert list(caught.value.field_errors) == ["name"]
    async with sessions() as s:
        with pytest.raises(ConfigError, match="already have"):
            await update_credential(s, keys, registry, owner_id=alice, credential_id=second.id, name="Stripe")
    async with sessions.begin() as s:  # keeping its own name is no clash
        await update_credential(s, keys, registry, owner_id=alice, credential_id=first.id, name="Stripe")


async def test_fields_are_validated_one_by_one(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys = cf.ring("k1")
    async with sessions() as s:
        owner = await cf.user(s)
        with pytest.raises(ConfigError) as caught:
            await cf.credential(s, keys, owner, type_name="smtp", public={"port": "many", "security": "ssl3"},
                                secret={"password": "x", "pin": "1"})
        assert set(caught.value.field_errors) == {"host", "port", "security", "pin"}
        assert caught.value.field_errors["host"] == "This field is required."
        assert caught.value.field_errors["pin"] == "unknown field"
        with pytest.raises(ConfigError, match="header name") as caught:
            await cf.credential(s, keys, owner, type_name="http_header", public={"header_name": "X Key:"},
                                secret={"value": "a\r\nInjected: yes"})
        assert set(caught.value.field_errors) == {"header_name", "value"}
        with pytest.raises(ConfigError, match="Unknown credential type 'nope'"):
            await cf.credential(s, keys, owner, type_name="nope")
        with pytest.raises(ConfigError, match="bot token looks like"):
            await cf.credential(s, keys, owner, type_name="telegram_bot", secret={"bot_token": "hello"})
        assert SECRET not in str(caught.value)


async def test_update_keeps_secret_fields_not_given_and_bumps_the_revision(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys, registry = cf.ring("k1"), credential_registry()
    async with sessions.begin() as s:
        owner = await cf.user(s)
        cid = (await cf.credential(s, keys, owner, type_name="smtp", public={"host": "mail.example.com"},
                                   secret={"password": SECRET})).id
    async with sessions.begin() as s:
        row = await update_credential(s, keys, registry, owner_id=owner, credential_id=cid,
                                      public={"host": "smtp.example.com", "port": 465, "security": "tls"},
                                      secret_changes={"password": ""})
        assert row.revision == 2 and row.public["host"] == "smtp.example.com"
    async with sessions() as s:
        assert (await open_credential(s, keys, owner, cid)).secret["password"] == SECRET
    async with sessions.begin() as s:
        await update_credential(s, keys, registry, owner_id=owner, credential_id=cid, secret_changes={"password": "new"})
    async with sessions() as s:
        opened = await open_credential(s, keys, owner, cid)
        assert opened.secret["password"] == "new" and opened.public["port"] == 465


async def test_store_tokens_reseals_keeps_the_refresh_token_and_clears_the_status(db: tuple[str, Sessions]) -> None:
    from datetime import UTC, datetime, timedelta

    _, sessions = db
    keys = cf.ring("k1")
    public = {"authorize_url": "https://id.example/auth", "token_url": "https://id.example/token", "client_id": "c"}
    async with sessions.begin() as s:
        owner = await cf.user(s)
        row = await cf.credential(s, keys, owner, type_name="oauth2", public=public,
                                  secret={"client_secret": "cs", "access_token": "a1", "refresh_token": "r1"})
        cid = row.id
        await mark_status(s, cid, "needs_reconnect", "the provider said invalid_grant")
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with sessions.begin() as s:
        row = await get_credential(s, owner, cid)
        assert row.status == "needs_reconnect"
        await store_tokens(s, keys, row, {"access_token": "a2", "token_type": "Bearer", "expires_in": 3600},
                           expires_at=expires)
    async with sessions() as s:
        row = await get_credential(s, owner, cid)
        opened = await open_credential(s, keys, owner, cid)
    assert opened.secret == {"client_secret": "cs", "access_token": "a2", "refresh_token": "r1", "token_type": "Bearer"}
    assert (row.status, row.status_message, row.revision, row.expires_at) == ("ok", None, 2, expires)
    with pytest.raises(ValueError, match="status must be one of"):
        async with sessions.begin() as s:
            await mark_status(s, cid, "broken")


async def test_a_credential_in_use_is_not_deleted_and_the_workflows_are_named(db: tuple[str, Sessions]) -> None:
    _, sessions = db
    keys = cf.ring("k1")
    async with sessions.begin() as s:
        alice, bob = await cf.user(s), await cf.user(s)
        used, unused = (await cf.credential(s, keys, alice)).id, (await cf.credential(s, keys, alice)).id
        await cf.workflow_using(s, alice, used, name="Nightly sync")
        await cf.workflow_using(s, alice, used, name="Alerts")
        await cf.workflow_using(s, bob, unused, name="Bob names Alice's id")  # not Alice's workflow
    async with sessions() as s:
        assert [name for _, name in await workflows_using(s, alice, used)] == ["Alerts", "Nightly sync"]
        assert await workflows_using(s, alice, unused) == []
        with pytest.raises(CredentialInUse, match=f"credential {used} is used by 2 workflows: 'Alerts', "
                                                  "'Nightly sync'") as caught:
            await delete_credential(s, alice, used)
        assert len(caught.value.workflows) == 2
    async with sessions.begin() as s:
        await delete_credential(s, alice, unused)
    async with sessions() as s:
        assert await s.scalar(select(Credential.id).where(Credential.id == unused)) is None
        assert (await get_credential(s, alice, used)).id == used


async def test_tokens_stored_from_a_stale_row_survive_a_rotation_that_came_first(db: tuple[str, Sessions]) -> None:
    from engine.credentials import rotate_keys

    _, sessions = db
    old = cf.ring("k1")
    public = {"authorize_url": "https://id.example/auth", "token_url": "https://id.example/token", "client_id": "c"}
    async with sessions.begin() as s:
        owner = await cf.user(s)
        cid = (await cf.credential(s, old, owner, type_name="oauth2", public=public,
                                   secret={"client_secret": "cs", "access_token": "a1", "refresh_token": "r1"})).id
    both = cf.ring("k2", "k1", keys={"k1": old.current})
    async with sessions.begin() as s:
        loaded = await get_credential(s, owner, cid)  # a refresher read the row (revision 1) …
        assert await rotate_keys(sessions, both) == 1  # … a rotation resealed it meanwhile (revision 2) …
        await store_tokens(s, both, loaded, {"access_token": "a2", "refresh_token": "r2"}, expires_at=None)
    async with sessions() as s:  # … and the spent refresh token's successor is not lost
        row = await get_credential(s, owner, cid)
        assert (row.key_id, row.revision) == ("k2", 3)
        assert (await open_credential(s, both, owner, cid)).secret["refresh_token"] == "r2"


async def test_last_used_is_recorded_at_most_once_a_minute(db: tuple[str, Sessions]) -> None:
    from datetime import timedelta

    from engine.credentials import touch_last_used

    _, sessions = db
    async with sessions.begin() as s:
        owner = await cf.user(s)
        cid = (await cf.credential(s, cf.ring("k1"), owner)).id
    async with sessions.begin() as s:
        await touch_last_used(s, cid)
    async with sessions() as s:
        first = (await get_credential(s, owner, cid)).last_used_at
    assert first is not None
    async with sessions.begin() as s:
        await touch_last_used(s, cid)
    async with sessions.begin() as s:
        assert (await get_credential(s, owner, cid)).last_used_at == first, "within the minute: not written again"
        await s.execute(update(Credential).where(Credential.id == cid).values(last_used_at=first - timedelta(minutes=2)))
    async with sessions.begin() as s:
        await touch_last_used(s, cid)
    async with sessions() as s:
        assert (await get_credential(s, owner, cid)).last_used_at > first
