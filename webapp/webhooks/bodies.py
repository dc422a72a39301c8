"""A webhook request as the trigger's item: method, path, headers (secrets masked), query and body.

Bodies: JSON (held to engine/limits.py: 400 when malformed or nested too deep), URL-encoded forms (UTF-8),
multipart forms (fields as the body, files as binary data), text (any ``text/*`` or other type whose bytes are
UTF-8) and bytes (binary data). Nothing in a body is ever read as a file name to open: ``files`` or ``filepath``
keys are data like any other.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile

from engine.limits import JSONLimitError, JSONTooDeep, load_json
from webapp.errors import BadRequest
from webapp.requests import parse_form

MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-hub-signature",
                            "x-hub-signature-256", "stripe-signature", "x-slack-signature"})
SECRET_WORDS = ("token", "secret", "key", "signature", "auth", "password", "cookie", "session")


@functools.lru_cache(maxsize=1024)
def is_secret_header(name: str) -> bool:
    return name in SECRET_HEADERS or any(word in name for word in SECRET_WORDS)


def masked_headers(raw: Iterable[tuple[bytes, bytes]], extra_secret: str | None = None) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", "; secret ones (and ``extra_secret``, e.g. a chosen
    signature header) replaced by ``***``."""
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        value = MASK if is_secret_header(name) or name == extra_secret else value_bytes.decode("latin-1")
        if "\x00" in value or "\x00" in name:  # a lenient HTTP parser let one through: it cannot be stored
            name, value = name.replace("\x00", ""), value.replace("\x00", "\ufffd")
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
    """The body as text when it decodes in its charset (UTF-8 unless named) and holds no NUL character, else
    ``None`` (keep it as bytes)."""
    try:
        text = body.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return None
    return None if "\x00" in text else text


def holds_nul(value: Any) -> bool:
    """Whether a decoded value has a NUL character in a string or key (PostgreSQL cannot store one in JSON)."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return False


def scrub(value: Any) -> Any:
    """``value`` with every NUL character replaced by U+FFFD (what the log keeps of a refused request)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def refuse_nul(where: str, value: Any) -> None:
    if holds_nul(value):
        raise BadRequest(f"The {where} holds a NUL character (\\u0000), which cannot be stored: remove it.")


PutBinary = Callable[[bytes, str | None, str], Awaitable[dict[str, Any]]]
"""Stores bytes (data, file name, MIME type) and returns the reference (engine/binary/)."""


async def parse_body(request: Request[Any, Any, Any], body: bytes, *, raw_body: bool, max_body: int,
                     put: PutBinary) -> tuple[Any, dict[str, Any]]:
    """The item's ``body`` and ``binary`` (name → reference) for a request whose raw bytes are ``body``."""
    media_type, options = request.content_type
    if not body:
        return None, {}
    if raw_body:
        return None, {"data": await put(body, None, media_type or "application/octet-stream")}
    if is_json_type(media_type):
        data = parse_json_body(body, max_body)
        if b"\\u0000" in body:
            refuse_nul("JSON body", data)
        return data, {}
    if media_type == "application/x-www-form-urlencoded":
        form = parse_form(body)
        refuse_nul("form", form)
        return form, {}
    if media_type == "multipart/form-data":
        fields, files = await _multipart(request, put)
        refuse_nul("form", fields)
        return fields, files
    text = text_or_none(body, options.get("charset"))
    if text is not None:
        return text, {}
    return None, {"data": await put(body, None, media_type or "application/octet-stream")}


async def _multipart(request: Request[Any, Any, Any], put: PutBinary) -> tuple[dict[str, Any], dict[str, Any]]:
    """Text fields as the body (a repeated one becomes a list); each file as binary data named by its field
    (``field``, ``field_1``, … when a field has several). A file name is only a label: it is never opened."""
    form = await request.form()
    fields: dict[str, Any] = {}
    files: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                key = name if name not in files else next(f"{name}_{i}" for i in range(1, len(files) + 2)
                                                          if f"{name}_{i}" not in files)
                data = await value.read()
                mime_type = (value.content_type or "application/octet-stream").replace("\x00", "")
                files[key] = await put(data, _base_name(value.filename), mime_type)
            elif name in fields:
                current = fields[name]
                fields[name] = [*current, value] if isinstance(current, list) else [current, value]
            else:
                fields[name] = value
    finally:
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
    return fields, files


def _base_name(name: str | None) -> str | None:
    """The last segment of a client's file name (``C:\\x\\a.pdf`` and ``../a.pdf`` are ``a.pdf``): a label."""
    if not name:
        return None
    return name.replace("\\", "/").replace("\x00", "").rsplit("/", 1)[-1][:255] or None
