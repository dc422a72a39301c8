"""A webhook request as the trigger's item: method, path, headers (secrets masked), query and body.

Bodies: JSON (held to engine/limits.py: 400 when malformed or nested too deep), URL-encoded forms (UTF-8),
multipart forms (fields as the body, files as binary data), text (any ``text/*`` or other type whose bytes are
UTF-8) and bytes (binary data). Nothing in a body is ever read as a file name to open: ``files`` or ``filepath``
keys are data like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.limits import JSONLimitError, JSONTooDeep, load_json
from webapp.errors import BadRequest

MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-hub-signature",
                            "x-hub-signature-256", "stripe-signature", "x-slack-signature"})
SECRET_WORDS = ("token", "secret", "key", "signature", "auth", "password", "cookie", "session")


def is_secret_header(name: str) -> bool:
    return name in SECRET_HEADERS or any(word in name for word in SECRET_WORDS)


def masked_headers(raw: Iterable[tuple[bytes, bytes]], extra_secret: str | None = None) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", "; secret ones (and ``extra_secret``, e.g. a chosen
    signature header) replaced by ``***``."""
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        value = MASK if is_secret_header(name) or name == extra_secret else value_bytes.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers and value != MASK else value
    return headers


def query_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters; a repeated one becomes a list."""
    query: dict[str, Any] = {}
    for key, value in pairs:
        if key in query:
            current = query[key]
            query[key] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            query[key] = value
    return query


def is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_json_body(body: bytes, max_bytes: int) -> Any:
    try:
        return load_json(body, "The request body", max_bytes=max_bytes)
    except JSONTooDeep as exc:
        raise BadRequest(str(exc)) from None
    except JSONLimitError as exc:
        raise BadRequest(f"{exc} The Content-Type says JSON.") from None


def text_or_none(body: bytes, charset: str | None) -> str | None:
    """The body as text when it decodes in its charset (UTF-8 unless named), else ``None`` (keep it as bytes)."""
    try:
        return body.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None
