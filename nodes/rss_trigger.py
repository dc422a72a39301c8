"""RSS / Atom Trigger: starts the workflow with the entries a feed did not have at the previous poll.

The feed is fetched with ``ctx.http`` (the SSRF guard) and parsed by feedparser from the bytes (feedparser
never fetches anything itself). The cursor keeps the feed's ``ETag`` / ``Last-Modified`` for a conditional
GET (``304 Not Modified`` → nothing new, nothing parsed) and the ids of the entries seen
(``nodes/polling.py``). An entry's id is its ``<guid>`` / ``<id>``, else a digest of its link and title.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urljoin, urlsplit

import feedparser
import msgspec

from engine.contract import Item, PollContext, PollResult, PollTriggerType
from engine.errors import NodeError
from nodes.polling import IntervalMinutes, fetch, interval_seconds, raise_for_status, remember, seen_of, split_new

ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"


class RssTriggerConfig(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(title="Feed URL", description="The RSS or Atom feed's http:// or https:// URL.")]
    interval_minutes: IntervalMinutes = 15

    def problems(self) -> dict[str, str]:
        parts = urlsplit(self.url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return {"url": "Enter a full http:// or https:// URL."}
        return {}


class RssTrigger(PollTriggerType):
    """New entries of an RSS or Atom feed, oldest first; one execution per poll that found any."""

    type_name = "rss_trigger"
    version = 1
    title = "RSS / Atom Trigger"
    description = "Starts the workflow when a feed has new entries."
    Config = RssTriggerConfig

    def interval(self, config: RssTriggerConfig) -> float:
        return interval_seconds(config.interval_minutes)

    async def poll(self, ctx: PollContext, config: RssTriggerConfig, state: dict[str, Any] | None) -> PollResult:
        url = config.url.strip()
        fetched = await fetch(ctx.http, url, {"Accept": ACCEPT, **_conditional(state)})
        if fetched.status == 304 and state is not None:
            ctx.logger.info("feed %s not modified", url)
            return PollResult([], state)
        raise_for_status(fetched, f"the feed {url}")
        # parsing 5 MiB of XML takes a while: off the event loop the worker's runs share
        entries = await asyncio.to_thread(parse_feed, fetched.content, fetched.headers.get("content-type", ""), url)
        validators = {"etag": fetched.headers.get("etag"), "modified": fetched.headers.get("last-modified")}
        if state is None:
            ctx.logger.info("feed %s: baseline of %d entries", url, len(entries))
            return PollResult([], {**validators, "seen": remember([], [entry["id"] for entry in entries])})
        # oldest first, so that entries left for the next poll (beyond the limit) are the newest ones
        new, later = split_new([(entry["id"], entry) for entry in oldest_first(entries)], set(seen_of(state)))
        current = [entry["id"] for entry in entries if entry["id"] not in later]
        # a feed that changed but still has entries for later must be read again in full: no validators then
        cursor = {**(validators if not later else {"etag": None, "modified": None}),
                  "seen": remember(seen_of(state), current)}
        return PollResult(new, cursor)


def _conditional(state: dict[str, Any] | None) -> dict[str, str]:
    headers = {}
    if state and isinstance(state.get("etag"), str):
        headers["If-None-Match"] = state["etag"]
    if state and isinstance(state.get("modified"), str):
        headers["If-Modified-Since"] = state["modified"]
    return headers


def parse_feed(content: bytes, content_type: str, url: str) -> list[Item]:
    """The feed's entries as items; a ``NodeError`` when the bytes are not an RSS or Atom feed. External
    entities are never resolved (feedparser's XML parser does not load them: a feed cannot read a file)."""
    # Only the content type is passed: a Content-Location would change how <guid>s resolve (their ids).
    parsed = feedparser.parse(content, response_headers={"content-type": content_type or "application/xml"})
    if not parsed.get("version"):
        why = parsed.get("bozo_exception")
        detail = f" ({type(why).__name__}: {str(why)[:200]})" if why else ""
        raise NodeError(f"{url} is not an RSS or Atom feed{detail}", kind="other")
    feed = {"title": parsed.feed.get("title", ""), "link": parsed.feed.get("link", "")}
    return [entry_item(entry, feed, url) for entry in parsed.entries]


def entry_item(entry: Any, feed: dict[str, str], url: str) -> Item:
    link = entry.get("link") or ""
    title = entry.get("title") or ""
    return {
        "id": entry.get("id") or "sha256:" + hashlib.sha256(f"{link}\n{title}".encode()).hexdigest()[:32],
        "title": title,
        "link": urljoin(url, link) if link else "",
        "published": _iso(entry.get("published_parsed")),
        # dict.get: feedparser's own get maps a missing updated_parsed to published_parsed, with a warning
        "updated": _iso(dict.get(entry, "updated_parsed")),
        "summary": entry.get("summary") or "",
        "author": entry.get("author") or "",
        "categories": [tag.get("term") for tag in entry.get("tags") or [] if tag.get("term")],
        "feed": feed,
    }


def _iso(value: time.struct_time | None) -> str | None:
    """feedparser's parsed dates are UTC ``struct_time``s."""
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat().replace("+00:00", "Z")


def oldest_first(entries: list[Item]) -> list[Item]:
    """By publication date when every entry has one; else the reverse of the feed's order (newest first)."""
    if entries and all(entry["published"] for entry in entries):
        return sorted(entries, key=lambda entry: entry["published"])
    return entries[::-1]
