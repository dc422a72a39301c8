"""A webhook request as the trigger's item: method, path, headers (secrets masked), query and body.

Bodies: JSON (held to engine/limits.py: 400 when malformed or nested too deep), URL-encoded forms (UTF-8),
multipart forms (fields as the body, files as binary data), text (any ``text/*`` or other type whose bytes are
UTF-8) and bytes (binary data). Nothing in a body is ever read as a file name to open: ``files`` or ``filepath``
keys are data like any other.
"""

from __future__ import annotations

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
        return parse_json_body(body, max_body), {}
    if media_type == "application/x-www-form-urlencoded":
        return parse_form(body), {}
    if media_type == "multipart/form-data":
        return await _multipart(request, put)
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
                files[key] = await put(data, _base_name(value.filename), value.content_type or "application/octet-stream")
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
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255] or None
