"""Files at rest: the data directory is made 0700 and every database, SQLite companion and secret file 0600,
under a umask of 022 (which would give 0755 / 0644); what an older version left wider is narrowed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.files import private_sqlite_file
from engine.migrate import upgrade
from engine.settings import load_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual umask: without explicit modes, directories would be 0755 and files 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_settings_make_the_data_directory_and_the_secret_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "parent" / "data"
    load_settings({"PATCHWIRE_DATA_DIR": str(data_dir)})
    assert mode(data_dir) == 0o700 and mode(data_dir / "secret_key") == 0o600
    assert mode(data_dir.parent) == 0o755  # a parent is not ours alone: its mode is left to the umask


def test_a_migrated_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "patchwire.db"
    upgrade(f"sqlite:///{database}")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "patchwire.db" in files and all(mode(tmp_path / name) == 0o600 for name in files), \
        {name: oct(mode(tmp_path / name)) for name in files}


def test_what_an_older_version_left_readable_is_narrowed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    old = [data_dir / name for name in ("patchwire.db", "patchwire.db-wal", "patchwire.db-shm", "secret_key")]
    for path in old:
        path.write_text("x")
        path.chmod(0o644)
    load_settings({"PATCHWIRE_DATA_DIR": str(data_dir)})
    private_sqlite_file(str(data_dir / "patchwire.db"))
    assert mode(data_dir) == 0o700 and [mode(path) for path in old] == [0o600] * 4



def test_every_database_connection_of_the_app_goes_through_the_private_file_helpers() -> None:
    """So that a new module cannot make a database file with the umask's mode: SQLite is opened directly only
    where the file was made 0600 first."""
    root = Path(__file__).resolve().parents[2]
    allowed = {"engine/database.py", "engine/queue/sqlite.py"}
    openers = ("sqlite3.connect(", "aiosqlite.connect(", "create_engine(", "create_async_engine(")
    found = {str(path.relative_to(root)) for package in ("engine", "nodes", "webapp")
             for path in (root / package).rglob("*.py") if any(o in path.read_text() for o in openers)}
    assert found <= allowed, found - allowed
