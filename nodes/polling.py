"""What the poll trigger nodes share: the interval field, the bounded "seen" cursor and a guarded fetch.

A poll trigger (``engine.contract.PollTriggerType``) keeps a small JSON cursor between polls. The three
sources here (Gmail, RSS / Atom, HTTP JSON list) all remember the ids they have seen: ``remember`` keeps
every id the source lists now (a source that lists 800 entries needs 800 ids, or the oldest would come
back as new at every poll) and, up to ``SEEN_LIMIT``, the most recent ids of earlier polls (so an entry
that drops out of the list for a while and comes back is not new again).

``fetch`` makes one GET through ``ctx.http`` (the SSRF-guarded client): a time limit, at most
``MAX_REDIRECTS`` redirects (each a new connection, checked by the guard again), a body of at most
``MAX_BODY_BYTES`` read before anything is parsed. Every failure is a ``NodeError`` with a precise message
and a kind (network, timeout, 4xx, 429, 5xx) the scheduler records as the trigger's failure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from engine.errors import NodeError
from engine.netguard import AddressRefused
from engine.policy import kind_of_status

SEEN_LIMIT = 500
"""Ids of earlier polls kept besides those the source lists now."""
MAX_LISTED = 10_000
"""A source listing more entries than this is refused (its cursor would not stay small)."""
MAX_NEW_PER_POLL = 500
"""New entries one poll hands on (below the scheduler's limit per execution); the rest stay new for the next
poll: ``split_new`` keeps them out of the cursor."""
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
FETCH_TIMEOUT = 30.0
MAX_KEY_CHARS = 64
"""Longer keys are kept as a digest (the cursor stays small; equality is all that is needed)."""

IntervalMinutes = Annotated[int, msgspec.Meta(
    ge=1, le=10_080, title="Poll every (minutes)", description="From 1 minute to one week.")]


def interval_seconds(minutes: int) -> float:
    return float(minutes * 60)


def key_of(value: Any) -> str:
    """A stable text key for an id (text as is, other JSON values as JSON; long ones as a digest)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return text


def remember(before: Iterable[str], current: Iterable[str], limit: int = SEEN_LIMIT) -> list[str]:
    """The ids to keep: every id listed now, then the most recent of ``before`` (first = most recent) until
    ``limit`` ids are kept in all."""
    kept = list(dict.fromkeys(current))
    listed = set(kept)
    room = max(0, limit - len(kept))
    kept += [key for key in dict.fromkeys(before) if key not in listed][:room]
    return kept


def split_new(keyed: list[tuple[str, Any]], seen: set[str], limit: int = MAX_NEW_PER_POLL,
              ) -> tuple[list[Any], set[str]]:
    """The new values of ``(key, value)`` pairs (first of each key, in order), at most ``limit``; and the keys of
    the new ones left for a later poll (they must not be remembered as seen)."""
    new, taken, later = [], set(), set()
    for key, value in keyed:
        if key in seen or key in taken or key in later:
            continue
        if len(new) < limit:
            taken.add(key)
            new.append(value)
        else:
            later.add(key)
    return new, later


def seen_of(state: Mapping[str, Any] | None) -> list[str]:
    """The ``seen`` list of a stored cursor (tolerant of a cursor written by hand or by an older version)."""
    seen = (state or {}).get("seen")
    return [s for s in seen if isinstance(s, str)] if isinstance(seen, list) else []


@dataclass(frozen=True)
class Fetched:
    """A response read whole (within the limits): status, headers, body and the URL it came from."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str


async def fetch(http: httpx.AsyncClient, url: str, headers: Mapping[str, str] | None = None, *,
                timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_BODY_BYTES,
                same_origin_headers: Mapping[str, str] | None = None) -> Fetched:
    """GET ``url``, following at most ``MAX_REDIRECTS`` redirects. ``same_origin_headers`` (a credential's)
    are sent only to the origin of ``url``, never to where a redirect leads elsewhere."""
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        sent = {**(headers or {}), **((same_origin_headers or {}) if _origin(url) == origin else {})}
        status, answer, content = await _get(http, url, sent, timeout, max_bytes)
        location = answer.get("location")
        if status not in (301, 302, 303, 307, 308) or not location:
            return Fetched(status, answer, content, url)
        url = urljoin(url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise NodeError(f"the redirect to {url!r} leaves HTTP", kind="4xx")
    raise NodeError(f"GET {url}: more than {MAX_REDIRECTS} redirects", kind="4xx")


def raise_for_status(fetched: Fetched, what: str) -> None:
    """A ``NodeError`` naming the status (and ``Retry-After`` when the source sent one) for 4xx / 5xx."""
    if fetched.status < 400:
        return
    retry_after = fetched.headers.get("retry-after", "")
    raise NodeError(f"{what} answered HTTP {fetched.status}", kind=kind_of_status(fetched.status),
                    retry_after=float(retry_after) if retry_after.strip().isdigit() else None)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


async def _get(http: httpx.AsyncClient, url: str, headers: Mapping[str, str], timeout: float,
               max_bytes: int) -> tuple[int, httpx.Headers, bytes]:
    what = f"GET {url}"  # never the headers: they may carry a credential
    try:
        async with http.stream("GET", url, headers=dict(headers), timeout=timeout) as response:
            return response.status_code, response.headers, await _read_capped(response, what, max_bytes)
    except AddressRefused as exc:
        raise NodeError(f"{what} refused: {exc}. Workflows may only call public addresses; an operator can "
                        "allow networks with PATCHWIRE_HTTP_ALLOW_NETWORKS", kind="other") from None
    except httpx.TimeoutException:
        raise NodeError(f"{what} timed out after {timeout:g} s", kind="timeout") from None
    except httpx.InvalidURL as exc:
        raise NodeError(f"{what}: invalid URL ({exc})", kind="other") from None
    except httpx.HTTPError as exc:
        raise NodeError(f"{what} failed: {type(exc).__name__} {exc}".rstrip(), kind="network") from None


async def _read_capped(response: httpx.Response, what: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise NodeError(f"{what}: the response is larger than {max_bytes:,} bytes ({int(declared):,})", kind="other")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise NodeError(f"{what}: the response is larger than {max_bytes:,} bytes", kind="other")
        chunks.append(chunk)
    return b"".join(chunks)
