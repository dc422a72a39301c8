"""Binary data of items, stored by reference (docs/triggers.md "Binary data").

An item never carries bytes: it holds a reference under ``item["binary"][name]`` —
``{"$binary": "<id>", "file_name", "mime_type", "size", "sha256"}`` — and a node that needs the bytes asks the
store for them with the execution's owner. The bytes live in a file under ``<data dir>/binary/`` (the default)
or in the database (``PATCHWIRE_BINARY_STORAGE=db``, for several machines without a shared disk).
"""

from engine.binary.store import (
    BinaryNotFound,
    BinaryStore,
    attach,
    binary_id_of,
    is_binary_ref,
    prune_binary,
)

__all__ = ["BinaryNotFound", "BinaryStore", "attach", "binary_id_of", "is_binary_ref", "prune_binary"]
