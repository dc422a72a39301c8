"""Where the credential keys come from: ``PATCHWIRE_CREDENTIALS_KEY`` or the key file.

Format (both): entries ``<id>:<base64url of 32 bytes>``, the first one seals; the setting separates them by
commas, the file by lines. Ids are ``[A-Za-z0-9_-]{1,64}``. A malformed entry is a
:class:`~engine.errors.CredentialKeyError` that names the entry by its position and id, never its material.

Without the setting, the key file ``<data dir>/credentials.key`` is read, or generated once with mode 0600
(``os.open`` with the mode: no window in which others could read it, whatever the umask). The file is
rewritten only whole, through a new file renamed over it (``rotate-key`` prepends a key, ``--drop-old``
removes the others), so a reader never sees half of it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.credentials.sealing import KEY_BYTES, Key, KeyRing
from engine.errors import CredentialKeyError
from engine.files import PRIVATE_FILE, narrow

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger("patchwire.credentials")
ENV_NAME = "PATCHWIRE_CREDENTIALS_KEY"
KEY_FILE_NAME = "credentials.key"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def parse_keys(text: str, source: str, separator: str = ",") -> tuple[Key, ...]:
    """Parse the entries of the setting (``separator=","``) or of the key file (``"\\n"``)."""
    entries = [e.strip() for e in text.split(separator)]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise CredentialKeyError(f"{source} holds no key: expected entries id:base64url-of-32-bytes")
    keys = tuple(_parse_entry(entry, n, source) for n, entry in enumerate(entries, start=1))
    seen: set[str] = set()
    for key in keys:
        if key.id in seen:
            raise CredentialKeyError(f"{source}: key id {key.id!r} appears twice")
        seen.add(key.id)
    return keys


def _parse_entry(entry: str, n: int, source: str) -> Key:
    key_id, sep, encoded = entry.partition(":")
    key_id, encoded = key_id.strip(), encoded.strip()
    where = f"{source}, entry {n}"
    if not sep:
        raise CredentialKeyError(f"{where}: expected id:base64url-of-32-bytes (no ':' found)")
    if not KEY_ID.fullmatch(key_id):
        raise CredentialKeyError(f"{where}: the key id must be 1-64 letters, digits, '_' or '-'")
    material = _decode(encoded)
    if material is None:
        raise CredentialKeyError(f"{where} (key {key_id!r}): the key is not valid base64url")
    if len(material) != KEY_BYTES:
        raise CredentialKeyError(f"{where} (key {key_id!r}): the key must be {KEY_BYTES} bytes, "
                                 f"not {len(material)}")
    return Key(key_id, material)


def _decode(encoded: str) -> bytes | None:
    # the alphabet first: b64decode would skip characters outside it without a word
    if not BASE64URL.fullmatch(encoded):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None


def format_entry(key: Key) -> str:
    return f"{key.id}:{base64.urlsafe_b64encode(key.material).decode().rstrip('=')}"


def new_key(key_id: str | None = None) -> Key:
    """A fresh random key; its id defaults to ``k<yyyymmddHHMMSS>`` (UTC)."""
    return Key(key_id or f"k{datetime.now(UTC):%Y%m%d%H%M%S}", secrets.token_bytes(KEY_BYTES))


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh key as one entry of ``PATCHWIRE_CREDENTIALS_KEY`` / the key file."""
    if key_id is not None and not KEY_ID.fullmatch(key_id):
        raise CredentialKeyError("a key id must be 1-64 letters, digits, '_' or '-'")
    return format_entry(new_key(key_id))


def key_file_path(settings: Settings) -> Path:
    return settings.credentials_key_file


def load_keyring(settings: Settings) -> KeyRing:
    """The process's key ring: from ``PATCHWIRE_CREDENTIALS_KEY`` if set, else from the key file (made once)."""
    if settings.credentials_key:
        return KeyRing(parse_keys(settings.credentials_key, ENV_NAME), ENV_NAME)
    path = settings.credentials_key_file
    if ensure_key_file(path) and settings.profile != "embedded":
        log.info("generated the credentials key file %s: every web and worker process must hold the same keys "
                 "(set PATCHWIRE_CREDENTIALS_KEY on all of them, or share this file)", path)
    watch = KeyFileWatch(path)
    return KeyRing(watch.read(), str(path), reload=watch.read, changed=watch.changed)


class KeyFileWatch:
    """Reads the key file and tells whether it was replaced since (``rotate-key`` renames a new file over it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def read(self) -> tuple[Key, ...]:
        self._stamp = self._stat()
        return read_key_file(self.path)

    def changed(self) -> bool:
        return self._stat() != self._stamp


def ensure_key_file(path: Path) -> bool:
    """Generate the key file with one new key unless it exists; True when it made it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        narrow(path, PRIVATE_FILE)
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(_file_text((new_key(),)))
    return True


def read_key_file(path: Path) -> tuple[Key, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialKeyError(f"cannot read the credentials key file {path}: {exc.strerror}") from None
    return parse_keys(text, str(path), separator="\n")


def write_key_file(path: Path, keys: tuple[Key, ...]) -> None:
    """Replace the key file's content whole: a new 0600 file beside it, renamed over it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(_file_text(keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _file_text(keys: tuple[Key, ...]) -> str:
    header = ("# Patchwire credential keys: the first line seals, every line opens. Keep this file secret and\n"
              "# backed up apart from the database: without it, the stored credentials cannot be opened.\n")
    return header + "".join(format_entry(k) + "\n" for k in keys)
