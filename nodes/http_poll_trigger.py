"""HTTP Poll Trigger: starts the workflow with the elements of a JSON list whose key it has not seen before.

GET the URL (optionally with a credential, as the HTTP Request node sends it), find the list at a dotted
path in the JSON answer (``data.items``; empty: the answer itself is the list), and take each element's
key field (dotted too: ``id``, ``meta.uid``). New = keys not in the cursor (``nodes/polling.py``: every key
listed now plus the most recent earlier ones, up to 500). New elements are emitted in the list's order.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import msgspec

from engine.config import KeyValue
from engine.contract import PollContext, PollResult, PollTriggerType
from engine.errors import NodeError
from engine.limits import nesting_exceeds, too_deep_message

# The HTTP Request node's credential handling (authorization headers, one refresh after a 401, scrubbing what
# was sent out of the answer) is shared rather than written twice.
from nodes.http_request import HttpRequest, _Auth, _Request
from nodes.polling import (
    MAX_LISTED,
    IntervalMinutes,
    fetch,
    interval_seconds,
    key_of,
    raise_for_status,
    remember,
    seen_of,
    split_new,
)

PATH_PART = "a name of letters, digits, _ or -, or a list index"


class HttpPollTriggerConfig(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(title="URL", description="GET this http:// or https:// URL; it answers JSON.")]
    key_field: Annotated[str, msgspec.Meta(
        title="Key field", description="The field that identifies an element (dotted for a nested one: meta.id).")] = "id"
    items_path: Annotated[str, msgspec.Meta(
        title="Path to the list", description="Dotted path in the answer, e.g. data.items; empty: the answer is the "
        "list.")] = ""
    headers: Annotated[list[KeyValue], msgspec.Meta(title="Headers")] = []
    credential: Annotated[int | None, msgspec.Meta(
        title="Credential", description="Sent with every request; replaces a header of the same name above.",
        extra={"widget": "credential"})] = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=120, title="Timeout (s)")] = 30.0
    interval_minutes: IntervalMinutes = 5

    def problems(self) -> dict[str, str]:
        problems = {}
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems["url"] = "Enter a full http:// or https:// URL."
        if not self.key_field.strip() or not all(_valid_part(p) for p in self.key_field.strip().split(".")):
            problems["key_field"] = f"Enter a field name (dotted for a nested one); each part is {PATH_PART}."
        path = self.items_path.strip()
        if path and not all(_valid_part(p) for p in path.split(".")):
            problems["items_path"] = f"Each part of the path is {PATH_PART}."
        return problems


def _valid_part(part: str) -> bool:
    return bool(part) and all(c.isalnum() or c in "_-$" for c in part)


class HttpPollTrigger(PollTriggerType):
    """New elements of a JSON list, found by their key field; one execution per poll that found any."""

    type_name = "http_poll_trigger"
    version = 1
    title = "HTTP Poll Trigger"
    description = "Starts the workflow when a JSON list (an API's answer) has new elements."
    Config = HttpPollTriggerConfig
    credential_types: ClassVar[tuple[str, ...]] = HttpRequest.credential_types

    def interval(self, config: HttpPollTriggerConfig) -> float:
        return interval_seconds(config.interval_minutes)

    async def poll(self, ctx: PollContext, config: HttpPollTriggerConfig,
                   state: dict[str, Any] | None) -> PollResult:
        url = config.url.strip()
        elements = list_at(await self._get_json(ctx, config, url), config.items_path.strip(), url)
        keyed = [(key_of(element_key(element, config.key_field.strip(), index, url)), element)
                 for index, element in enumerate(elements)]
        if state is None:
            ctx.logger.info("%s: baseline of %d elements", url, len(keyed))
            return PollResult([], {"seen": remember([], [key for key, _ in keyed])})
        new, later = split_new(keyed, set(seen_of(state)))
        return PollResult(new, {"seen": remember(seen_of(state), [key for key, _ in keyed if key not in later])})

    async def _get_json(self, ctx: PollContext, config: HttpPollTriggerConfig, url: str) -> Any:
        headers = {h.name: h.value for h in config.headers}
        auth = await _Auth.open(ctx, config.credential, self.credential_types)  # type: ignore[arg-type]
        request = _Request("GET", url, headers, {}, None, config.timeout)
        fetched = await _fetch(ctx, auth, request)
        if fetched.status == 401 and auth.refreshable:
            ctx.logger.info("GET %s → HTTP 401: refreshing the credential's token and retrying once", url)
            fetched = await _fetch(ctx, auth, await auth.after_unauthorized(request))
        raise_for_status(fetched, f"GET {url}")
        if nesting_exceeds(fetched.content):
            raise NodeError(f"GET {url}: {too_deep_message('the answer')}", kind="other")
        try:
            body = json.loads(fetched.content)
        except (ValueError, RecursionError):
            start = fetched.content[:80].decode("utf-8", "replace")
            raise NodeError(f"GET {url} did not answer JSON (it began {start!r})", kind="other") from None
        return auth.scrub({"body": body})["body"]


async def _fetch(ctx: PollContext, auth: _Auth, request: _Request) -> Any:
    authorized = await auth.apply(request)
    added = {k: v for k, v in authorized.headers.items() if request.headers.get(k) != v}
    plain = {k: v for k, v in authorized.headers.items() if k not in added}
    return await fetch(ctx.http, request.url, plain, timeout=request.timeout, same_origin_headers=added)


def walk(value: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path through objects (names) and lists (indexes); ``(found, value)``."""
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def list_at(body: Any, path: str, url: str) -> list[Any]:
    found, value = walk(body, path)
    where = f"at {path!r}" if path else "(the whole answer)"
    if not found:
        raise NodeError(f"the answer of {url} has nothing {where}", kind="other")
    if not isinstance(value, list):
        raise NodeError(f"the answer of {url} has {_json_kind(value)} {where}, not a list", kind="other")
    if len(value) > MAX_LISTED:
        raise NodeError(f"the list {where} of {url} has {len(value):,} elements; at most {MAX_LISTED:,} are "
                        "watched", kind="other")
    return value


def element_key(element: Any, key_field: str, index: int, url: str) -> Any:
    if not isinstance(element, dict):
        raise NodeError(f"element {index} of the list of {url} is {_json_kind(element)}, not an object", kind="other")
    found, key = walk(element, key_field)
    if not found or key is None or isinstance(key, dict | list):
        what = "has no" if not found or key is None else f"has {_json_kind(key)} as its"
        raise NodeError(f"element {index} of the list of {url} {what} key field {key_field!r}", kind="other")
    return key


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")
