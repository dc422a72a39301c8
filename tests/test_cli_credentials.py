"""`patchwire credentials …` and the start-up refusal, as an operator meets them: real processes, a real
SQLite database and key file in a temporary data directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.credentials import open_credential
from engine.credentials.keys import format_entry, new_key, read_key_file
from engine.credentials.sealing import KeyRing
from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from tests import credential_factories as cf

SECRET = "cli-secret-token-0123456789"


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    env = {**os.environ, "PATCHWIRE_DATA_DIR": str(tmp_path / "data")}
    for key in ("DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL", "PATCHWIRE_CREDENTIALS_KEY"):
        env.pop(key, None)

    def run(*args: str, ok: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "webapp", *args], cwd=tmp_path, env={**env, **extra},
                                capture_output=True, text=True, timeout=120)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run.data = tmp_path / "data"  # type: ignore[attr-defined]
    return run


def seal_one(data: Path, ring: KeyRing) -> tuple[int, int]:
    """A user and one bearer credential in the CLI's database, sealed with ``ring``: (owner, credential id)."""
    url = f"sqlite:///{data / 'patchwire.db'}"

    async def seed() -> tuple[int, int]:
        await upgrade_async(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine).begin() as s:
                owner = await cf.user(s)
                return owner, (await cf.credential(s, ring, owner, secret={"token": SECRET})).id
        finally:
            await engine.dispose()

    data.mkdir(mode=0o700, exist_ok=True)
    return asyncio.run(seed())


def opened(data: Path, ring: KeyRing, owner: int, cid: int) -> dict[str, Any]:
    url = f"sqlite:///{data / 'patchwire.db'}"

    async def read() -> dict[str, Any]:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as s:
                return (await open_credential(s, ring, owner, cid)).secret
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_generate_key_prints_an_entry_for_the_setting(cli: Any) -> None:
    assert re.fullmatch(r"k\d{14}:[A-Za-z0-9_-]{43}\n", cli("credentials", "generate-key").stdout)
    assert cli("credentials", "generate-key", "--id", "prod-2027").stdout.startswith("prod-2027:")
    refused = cli("credentials", "generate-key", "--id", "bad id", ok=False)
    assert refused.returncode == 2 and "patchwire: a key id must be" in refused.stderr


def test_rotate_the_key_file_then_drop_the_old_key(cli: Any) -> None:
    verified = json.loads(cli("credentials", "verify").stdout)  # makes the key file
    key_file = cli.data / "credentials.key"
    assert verified["ok"] and verified["credentials"] == {} and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    first = read_key_file(key_file)
    owner, cid = seal_one(cli.data, KeyRing(first, "test"))
    assert json.loads(cli("credentials", "verify").stdout)["credentials"] == {first[0].id: 1}

    rotated = json.loads(cli("credentials", "rotate-key").stdout)
    after = read_key_file(key_file)
    assert [k.id for k in after] == [rotated["key"], first[0].id] and rotated["resealed"] == 1
    dropped = json.loads(cli("credentials", "rotate-key", "--drop-old").stdout)
    assert dropped["resealed"] == 1 and dropped["dropped"] == [rotated["key"], first[0].id]
    final = read_key_file(key_file)
    assert len(final) == 1 and final[0].id == dropped["key"] and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert opened(cli.data, KeyRing(final, "test"), owner, cid) == {"token": SECRET}
    assert SECRET not in (cli.data / "patchwire.db").read_bytes().decode("latin-1")


def test_rotate_with_the_setting_reseals_with_its_first_key(cli: Any) -> None:
    old, new = new_key("old"), new_key("new")
    owner, cid = seal_one(cli.data, KeyRing((old,), "test"))
    both = f"{format_entry(new)},{format_entry(old)}"
    report = json.loads(cli("credentials", "rotate-key", "--drop-old", PATCHWIRE_CREDENTIALS_KEY=both).stdout)
    assert report == {"key": "new", "resealed": 1, "source": "PATCHWIRE_CREDENTIALS_KEY", "dropped": ["old"],
                      "todo": "remove old from PATCHWIRE_CREDENTIALS_KEY on every process"}
    assert opened(cli.data, KeyRing((new,), "test"), owner, cid) == {"token": SECRET}
    assert not (cli.data / "credentials.key").exists(), "the setting given: no key file"


def test_verify_and_start_up_refuse_a_key_that_cannot_open_the_store(cli: Any) -> None:
    seal_one(cli.data, KeyRing((new_key("k1"),), "test"))
    wrong = {"PATCHWIRE_CREDENTIALS_KEY": format_entry(new_key("k1"))}
    result = cli("credentials", "verify", ok=False, **wrong)
    assert result.returncode == 1
    assert "key 'k1' in PATCHWIRE_CREDENTIALS_KEY does not open credential" in json.loads(result.stdout)["error"]
    malformed = cli("credentials", "verify", ok=False, PATCHWIRE_CREDENTIALS_KEY="k1:c2hvcnQ")
    assert "entry 1 (key 'k1'): the key must be 32 bytes, not 5" in malformed.stdout and "c2hvcnQ" not in malformed.stdout

    worker = cli("worker", ok=False, QUEUE_URL="postgresql://127.0.0.1:9/never-reached", **wrong)
    assert worker.returncode == 3
    assert "patchwire: cannot start: the credential keys cannot open the stored credentials" in worker.stderr
    serve = cli("serve", "--port", "0", ok=False, **wrong)
    assert serve.returncode == 3 and "Patchwire is running" not in serve.stdout
    assert "cannot start: the credential keys cannot open the stored credentials" in serve.stderr
