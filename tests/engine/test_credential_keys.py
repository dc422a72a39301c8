"""Credential keys: the setting's format and its errors (which never echo key material), the key file made
once with mode 0600 whatever the umask, a ring that sees a key added to the file, and sealing itself."""

from __future__ import annotations

import base64
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.credentials import Key, KeyRing, aad_for, load_keyring, new_key_entry, parse_keys, seal, unseal
from engine.credentials.keys import format_entry, new_key, read_key_file, write_key_file
from engine.errors import CredentialKeyError, CredentialKeyMissing, CredentialSealBroken
from engine.settings import load_settings

MATERIAL = base64.urlsafe_b64encode(b"\x07" * 32).decode().rstrip("=")
SHORT = base64.urlsafe_b64encode(b"\x07" * 30).decode()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_setting_holds_ids_and_keys_and_the_first_one_seals() -> None:
    second = new_key_entry("k1")
    keys = parse_keys(f" k2:{MATERIAL} , {second}", "PATCHWIRE_CREDENTIALS_KEY")
    assert [k.id for k in keys] == ["k2", "k1"] and keys[0].material == b"\x07" * 32
    ring = KeyRing(keys, "env")
    assert ring.current.id == "k2" and ring.get("k1").id == "k1"
    assert MATERIAL not in repr(ring) and MATERIAL not in repr(keys[0])
    assert re.fullmatch(r"k\d{14}:[A-Za-z0-9_-]{43}", new_key_entry())


@pytest.mark.parametrize(("value", "message"), [
    ("", "holds no key"),
    (MATERIAL, "entry 1: expected id:base64url-of-32-bytes"),
    (f"k 1:{MATERIAL}", "entry 1: the key id must be 1-64 letters"),
    (f"{'k' * 65}:{MATERIAL}", "the key id must be 1-64"),
    (f"k1:{MATERIAL},k2:{SHORT}", r"entry 2 \(key 'k2'\): the key must be 32 bytes, not 30"),
    (f"k1:{MATERIAL[:-1]}!", r"entry 1 \(key 'k1'\): the key is not valid base64url"),
    (f"k1:{MATERIAL},k1:{MATERIAL}", "key id 'k1' appears twice"),
])
def test_a_malformed_setting_names_the_problem_never_the_key(value: str, message: str) -> None:
    with pytest.raises(CredentialKeyError, match=message) as caught:
        parse_keys(value, "PATCHWIRE_CREDENTIALS_KEY")
    assert str(caught.value).startswith("PATCHWIRE_CREDENTIALS_KEY")
    assert MATERIAL[:16] not in str(caught.value)


def test_the_setting_wins_over_the_key_file(tmp_path: Path) -> None:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "PATCHWIRE_CREDENTIALS_KEY": f"env1:{MATERIAL}"})
    ring = load_keyring(settings)
    assert ring.ids == ("env1",) and ring.source == "PATCHWIRE_CREDENTIALS_KEY"
    assert not (tmp_path / "credentials.key").exists()
    assert MATERIAL not in repr(settings)


def test_the_key_file_is_made_once_with_mode_0600(tmp_path: Path, umask_022: None) -> None:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "data")})
    path = tmp_path / "data" / "credentials.key"
    assert settings.credentials_key_file == path and settings.credentials_key is None
    first = load_keyring(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keyring(settings).current == first.current, "read again, not regenerated"
    assert first.source == str(path)
    write_key_file(path, (new_key("k2"), *first.keys))  # a rewrite (rotation) keeps the mode
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [k.id for k in read_key_file(path)][0] == "k2"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".credentials")] == []


def test_a_wider_key_file_is_narrowed_and_a_broken_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "credentials.key"
    path.write_text(f"# comment\nk1:{MATERIAL}\n")
    path.chmod(0o644)
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path)})
    assert load_keyring(settings).ids == ("k1",)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_text("k1:short\n")
    with pytest.raises(CredentialKeyError, match=rf"{re.escape(str(path))}, entry 1 \(key 'k1'\)"):
        load_keyring(settings)


def test_a_ring_from_the_file_sees_a_key_added_later(tmp_path: Path) -> None:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path)})
    ring = load_keyring(settings)
    added = new_key("k9")
    write_key_file(settings.credentials_key_file, (added, *ring.keys))
    assert ring.get("k9") == added and ring.current == added
    with pytest.raises(CredentialKeyMissing, match="sealed with key 'gone'"):
        ring.get("gone", 5)


def test_seal_and_unseal_bind_the_blob_to_owner_id_type_and_key() -> None:
    ring = KeyRing((Key("k1", os.urandom(32)), Key("k0", os.urandom(32))), "test")
    blob, key_id = seal(ring, b"secret", 1, 2, "http_bearer")
    assert key_id == "k1" and blob[:1] == b"\x01" and len(blob) == 1 + 12 + 6 + 16
    assert unseal(ring, blob, "k1", 1, 2, "http_bearer") == b"secret"
    assert aad_for(1, 2, "http_bearer", "k1") == b"patchwire-credential:v1:1:2:http_bearer:k1"
    for owner, cid, type_name, kid in ((9, 2, "http_bearer", "k1"), (1, 9, "http_bearer", "k1"),
                                       (1, 2, "http_basic", "k1"), (1, 2, "http_bearer", "k0")):
        with pytest.raises(CredentialSealBroken):
            unseal(ring, blob, kid, owner, cid, type_name)
    assert seal(ring, b"secret", 1, 2, "http_bearer")[0] != blob, "a fresh nonce every time"
    assert format_entry(ring.current).startswith("k1:")
