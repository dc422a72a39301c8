"""Stored credentials: sealing (AES-256-GCM), keys, registered credential types and the owner-scoped store.

docs/credentials.md describes the threat model, the keys, the blob format and the types. No web imports.
"""

from engine.credentials.keys import load_keyring, new_key_entry, parse_keys
from engine.credentials.redaction import REDACTED, Redactor
from engine.credentials.registry import CredentialRegistry
from engine.credentials.rotation import startup_keyring
from engine.credentials.sealing import Key, KeyRing, aad_for, seal, unseal
from engine.credentials.store import (
    TOKEN_FIELDS,
    create_credential,
    delete_credential,
    get_credential,
    list_credentials,
    mark_status,
    open_credential,
    open_row,
    rotate_keys,
    store_tokens,
    touch_last_used,
    update_credential,
    verify_keyring,
    workflows_using,
)
from engine.credentials.types import (
    CredentialTestContext,
    CredentialType,
    EmptyPublic,
    EmptySecret,
    OAuthSpec,
    OpenCredential,
)
from engine.credentials.vault import CredentialRefused, NodeCredentials, Vault

__all__ = [
    "REDACTED", "TOKEN_FIELDS", "CredentialRefused", "CredentialRegistry", "CredentialTestContext", "CredentialType",
    "EmptyPublic", "EmptySecret", "Key", "KeyRing", "NodeCredentials", "OAuthSpec", "OpenCredential", "Redactor", "Vault",
    "aad_for", "create_credential", "delete_credential", "get_credential", "list_credentials", "load_keyring",
    "mark_status", "new_key_entry", "open_credential", "open_row", "parse_keys", "rotate_keys", "seal",
    "startup_keyring", "store_tokens", "touch_last_used", "unseal", "update_credential", "verify_keyring",
    "workflows_using",
]
