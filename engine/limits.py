"""The limits every piece of outside input is held to: ids, and the size and depth of JSON.

One module, used by the web layer for request bodies and path parameters and by the engine for
the JSON it stores (pinned data, node config, imported and pasted workflows). A value past a
limit is refused with a message that names the limit; nothing is decoded recursively before the
depth is known, so no input reaches a ``RecursionError`` (which stored, made every later read of
the row fail).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

MAX_ID = 2**63 - 1
"""Ids are positive signed 64-bit integers (SQLite ``INTEGER``, PostgreSQL ``BIGINT``)."""
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
"""A field that holds the id of a row: anything else is refused when the config is parsed."""

MAX_JSON_DEPTH = 64
"""Objects and lists nest at most this deep, in a request body and in any JSON that is stored."""
MAX_JSON_BYTES = 2 * 1024 * 1024
"""A request body (JSON or form) is at most 2 MiB; some stored values have a smaller limit of their own."""

# A JSON string, escapes included; an unclosed one runs to the end (the text is then invalid anyway,
# and the decoder says so). Possessive: each character is looked at once, whatever the input.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CLOSE_ANY = bytes.maketrans(b"{}", b"[]")
_CONTAINERS = (dict, list, tuple)


class JSONLimitError(ValueError):
    """JSON that is not decoded: not UTF-8, not JSON, or past a limit. The message says which."""


class JSONTooDeep(JSONLimitError):
    pass


class JSONTooLarge(JSONLimitError):
    pass


def is_id(value: Any) -> bool:
    """Whether ``value`` can be the id of a row (so it may be used in a query)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def nesting_exceeds(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests objects / lists deeper than ``limit``, found without parsing it.

    Strings are removed, then only brackets kept; each pass removes the innermost pairs, one level.
    Linear in the text for each level, at most ``limit`` passes, all in C (no Python loop per byte).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(_CLOSE_ANY, _NOT_BRACKETS)
    for passes in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            # Unbalanced, so not JSON; but a decoder would still descend into every bracket left open.
            return brackets.count(b"[") > limit - passes
        brackets = shorter
    return bool(brackets)


def depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a decoded value nests dicts / lists deeper than ``limit`` (no recursion)."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(limit):
        if not level:
            return False
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, _CONTAINERS)]
    return bool(level)


def check_size(size: int, what: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise JSONTooLarge(f"{what} is {size:,} bytes; at most {max_bytes:,} bytes ({_mib(max_bytes)}) are allowed.")


def check_depth(value: Any, what: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse an already decoded value (e.g. a node's output about to be pinned) that nests too deep."""
    if depth_exceeds(value, max_depth):
        raise JSONTooDeep(too_deep_message(what, max_depth))


def too_deep_message(what: str, max_depth: int = MAX_JSON_DEPTH) -> str:
    return f"{what} is nested more than {max_depth} levels deep; at most {max_depth} levels are allowed."


def load_json(data: bytes | str, what: str = "The JSON", *, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH, type: Any = Any) -> Any:
    """Decode JSON text held to the limits: size first, then UTF-8, then depth, then the decoder.

    ``what`` names the input in the messages ("The request body", "Pinned data"). Raises
    ``JSONTooLarge``, ``JSONTooDeep`` or ``JSONLimitError``; a ``type`` mismatch raises
    ``msgspec.ValidationError`` as ``msgspec.json.decode`` does.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    check_size(len(raw), what, max_bytes)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONLimitError(f"{what} is not valid UTF-8 text (byte {exc.start:,}).") from None
    if nesting_exceeds(raw, max_depth):
        raise JSONTooDeep(too_deep_message(what, max_depth))
    try:
        return msgspec.json.decode(raw, type=type)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        raise JSONLimitError(f"{what} is not valid JSON: {str(exc).replace('`', '')}.") from None


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
