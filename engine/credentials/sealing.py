"""Sealing secrets with AES-256-GCM: the blob format, the additional authenticated data, the key ring.

Blob: ``b"\\x01"`` (format version) ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. The AAD binds the
blob to the row it was written for — ``patchwire-credential:v1:{owner}:{id}:{type}:{key id}`` — so a blob
copied onto another row, owner or type, or tampered with, fails GCM's check and opens nothing
(:class:`~engine.errors.CredentialSealBroken`). The key id is stored beside the blob (``credentials.key_id``)
and is part of the AAD too, so relabelling a blob with another key id fails as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import CredentialKeyMissing, CredentialSealBroken

FORMAT_VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True)
class Key:
    """One AES-256 key and its id (``[A-Za-z0-9_-]{1,64}``). Its ``repr`` never shows the material."""

    id: str
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise ValueError(f"key {self.id!r} must be {KEY_BYTES} bytes, not {len(self.material)}")


@dataclass
class KeyRing:
    """The keys a process holds: ``keys[0]`` seals, any of them opens. ``source`` says where they came from
    (``"PATCHWIRE_CREDENTIALS_KEY"`` or the key file's path). ``reload`` (set for a ring read from the key
    file) gives the keys again: asked once for an unknown id, so a running process sees a key that
    ``patchwire credentials rotate-key`` added to the file."""

    keys: tuple[Key, ...]
    source: str
    reload: Callable[[], tuple[Key, ...]] | None = field(default=None, repr=False)
    changed: Callable[[], bool] | None = field(default=None, repr=False)
    """Whether the source changed since it was read (the key file's stat): then ``current`` reads it again, so a
    running process seals with the key ``rotate-key`` put first."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError(f"no credential key in {self.source}")

    @property
    def current(self) -> Key:
        if self.reload is not None and self.changed is not None and self.changed():
            self.keys = self.reload() or self.keys
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.keys)

    def find(self, key_id: str) -> Key | None:
        """The key with this id, re-reading the source once if the ring does not hold it; else None."""
        key = self._lookup(key_id)
        if key is None and self.reload is not None:
            self.keys = self.reload() or self.keys
            key = self._lookup(key_id)
        return key

    def get(self, key_id: str, credential_id: int | None = None) -> Key:
        key = self.find(key_id)
        if key is None:
            raise CredentialKeyMissing(credential_id, key_id)
        return key

    def _lookup(self, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.id == key_id), None)


def aad_for(owner_id: int, credential_id: int, type_name: str, key_id: str) -> bytes:
    """The additional authenticated data that binds a blob to its row, owner, type and key."""
    return f"patchwire-credential:v1:{owner_id}:{credential_id}:{type_name}:{key_id}".encode()


def seal(ring: KeyRing, plaintext: bytes, owner_id: int, credential_id: int, type_name: str) -> tuple[bytes, str]:
    """Seal with the ring's current key: ``(blob, key id)``."""
    key = ring.current
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.material).encrypt(nonce, plaintext, aad_for(owner_id, credential_id, type_name, key.id))
    return FORMAT_VERSION + nonce + sealed, key.id


def unseal(ring: KeyRing, blob: bytes, key_id: str, owner_id: int, credential_id: int, type_name: str) -> bytes:
    """Open a blob sealed for this row; :class:`CredentialKeyMissing` if the ring lacks ``key_id``,
    :class:`CredentialSealBroken` if the blob was altered or belongs elsewhere."""
    key = ring.get(key_id, credential_id)
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != FORMAT_VERSION:
        raise CredentialSealBroken(credential_id)
    nonce, sealed = blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:]
    try:
        return AESGCM(key.material).decrypt(nonce, sealed, aad_for(owner_id, credential_id, type_name, key_id))
    except InvalidTag:
        raise CredentialSealBroken(credential_id) from None
