"""Files at rest that only their owner can read: the data directory 0700, databases and secrets 0600.

Each mode is given when the directory or file is made (``mkdir`` / ``os.open`` with the mode: a umask can
only take bits away, so a umask of 022 still gives 0700 / 0600) — a file is never made with the process's
default mode and narrowed afterwards, which would leave a window in which others can open it. SQLite gives
a database's ``-wal``, ``-shm`` and ``-journal`` files the mode of the database file, so making that file
first (empty: SQLite takes an empty file for an empty database) is enough for all of them.

A directory or file left with a wider mode by an older version (0755 / 0644) is narrowed when Patchwire
opens it, if this user owns it (a warning says so); one owned by someone else is left alone.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database; they hold its data too."""
log = logging.getLogger("patchwire.files")


def private_directory(path: Path) -> Path:
    """Make ``path`` with mode 0700 unless it exists (its parents get the usual mode: they are not ours
    alone); narrow an existing one of ours. Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIRECTORY)
    except FileExistsError:
        narrow(path, PRIVATE_DIRECTORY)
    return path


def private_file(path: str | Path) -> bool:
    """Make ``path`` as an empty file with mode 0600 unless it exists; narrow an existing one of ours.
    True when it made the file."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        narrow(path, PRIVATE_FILE)
        return False
    return True


def private_sqlite_file(path: str) -> None:
    """Before SQLite opens ``path``: the database file exists with mode 0600 (so the files SQLite makes
    beside it get 0600 too), and companions left by an older version are narrowed. In-memory databases
    and ``file:`` URIs are left to SQLite."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        if os.path.exists(path + suffix):
            narrow(path + suffix, PRIVATE_FILE)


def narrow(path: str | Path, allowed: int) -> None:
    """Take away every permission bit outside ``allowed`` from a file or directory this user owns."""
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid() or not mode & ~allowed:
        return
    os.chmod(path, mode & allowed)
    log.warning("%s was readable by others (mode %o): narrowed to %o", path, mode, mode & allowed)
