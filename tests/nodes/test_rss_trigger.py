"""RSS / Atom Trigger: ``poll()`` against a real loopback feed server through the guarded client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.errors import ConfigError, NodeError
from nodes.polling import MAX_NEW_PER_POLL, SEEN_LIMIT
from nodes.rss_trigger import RssTrigger
from tests.fakes.feeds import FeedServer, atom, rss
from tests.nodes.poll_support import poll, poll_context


def entry(n: int, **extra: str) -> dict[str, str]:
    return {"title": f"Post {n}", "link": f"https://example.com/posts/{n}", "guid": f"post-{n}",
            "description": f"Summary {n}", **extra}


async def test_baseline_then_only_new_entries_oldest_first(feed_server: FeedServer) -> None:
    url = feed_server.put("/feed.xml", rss([entry(2), entry(1)]))
    async with poll_context() as ctx:
        first = await poll(RssTrigger, ctx, {"url": url}, None)
        assert first.items == [], "the first poll takes a baseline"
        assert first.state["seen"] == ["post-2", "post-1"]

        feed_server.put("/feed.xml", rss([entry(4, pubDate="Tue, 01 Dec 2026 10:00:00 GMT"),
                                          entry(3, pubDate="Mon, 30 Nov 2026 10:00:00 GMT"), entry(2), entry(1)]))
        second = await poll(RssTrigger, ctx, {"url": url}, first.state)
        assert [i["id"] for i in second.items] == ["post-3", "post-4"]
        assert second.items[1] == {
            "id": "post-4", "title": "Post 4", "link": "https://example.com/posts/4",
            "published": "2026-12-01T10:00:00Z", "updated": None, "summary": "Summary 4",
            "author": "", "categories": [], "feed": {"title": "Example feed", "link": "https://example.com/"}}

        third = await poll(RssTrigger, ctx, {"url": url}, second.state)
        assert third.items == [], "nothing is new twice"


async def test_conditional_get_and_304(feed_server: FeedServer) -> None:
    url = feed_server.put("/feed.xml", rss([entry(1)]))
    async with poll_context() as ctx:
        baseline = await poll(RssTrigger, ctx, {"url": url}, None)
        assert baseline.state["etag"] and baseline.state["modified"]
        again = await poll(RssTrigger, ctx, {"url": url}, baseline.state)
    last = feed_server.received("/feed.xml")[-1]["headers"]
    assert last["if-none-match"] == baseline.state["etag"]
    assert last["if-modified-since"] == baseline.state["modified"]
    assert again.items == [] and again.state == baseline.state


async def test_atom_and_entries_without_an_id(feed_server: FeedServer) -> None:
    url = feed_server.put("/atom", atom([{"title": "A", "link": "/a", "id": "urn:a"}]), "application/atom+xml")
    async with poll_context() as ctx:
        baseline = await poll(RssTrigger, ctx, {"url": url}, None)
        feed_server.put("/atom", atom([{"title": "No id", "link": "/b", "summary": "S"},
                                       {"title": "A", "link": "/a", "id": "urn:a"}]), "application/atom+xml")
        found = await poll(RssTrigger, ctx, {"url": url}, baseline.state)
        again = await poll(RssTrigger, ctx, {"url": url}, found.state)
    assert [i["title"] for i in found.items] == ["No id"]
    item = found.items[0]
    assert item["id"].startswith("sha256:") and item["link"] == f"{feed_server.url}/b" and item["summary"] == "S"
    assert again.items == [], "a derived id is stable from one poll to the next"


async def test_state_stays_bounded_but_keeps_every_listed_id(feed_server: FeedServer) -> None:
    many = [entry(n) for n in range(SEEN_LIMIT + 100, 0, -1)]
    url = feed_server.put("/big.xml", rss(many))
    async with poll_context() as ctx:
        baseline = await poll(RssTrigger, ctx, {"url": url}, None)
        assert len(baseline.state["seen"]) == SEEN_LIMIT + 100, "every listed id, or the oldest would come back"
        feed_server.put("/big.xml", rss([entry(n) for n in range(SEEN_LIMIT + 110, SEEN_LIMIT + 100, -1)]))
        shorter = await poll(RssTrigger, ctx, {"url": url}, baseline.state)
        assert len(shorter.items) == 10
        assert len(shorter.state["seen"]) == SEEN_LIMIT
        assert shorter.state["seen"][:11] == [f"post-{n}" for n in range(SEEN_LIMIT + 110, SEEN_LIMIT + 99, -1)]


@pytest.mark.parametrize(("body", "content_type"), [
    ("<!doctype html><html><body><p>Not a feed</p></body></html>", "text/html"),
    ('{"items": []}', "application/json"),
    ("", "application/rss+xml"),
    ("\x00\x01\x02 binary", "application/octet-stream"),
])
async def test_garbage_is_a_precise_error(feed_server: FeedServer, body: str, content_type: str) -> None:
    url = feed_server.put("/feed", body, content_type)
    async with poll_context() as ctx:
        with pytest.raises(NodeError, match=r"is not an RSS or Atom feed"):
            await poll(RssTrigger, ctx, {"url": url}, None)


@pytest.mark.parametrize(("status", "kind", "retry_after"), [(500, "5xx", None), (429, "429", 30.0), (404, "4xx", None)])
async def test_error_statuses(feed_server: FeedServer, status: int, kind: str, retry_after: float | None) -> None:
    url = feed_server.put("/feed", "nope", "text/plain", status=status,
                          headers={"Retry-After": "30"} if status == 429 else {})
    async with poll_context() as ctx:
        with pytest.raises(NodeError, match=f"HTTP {status}") as caught:
            await poll(RssTrigger, ctx, {"url": url}, {"seen": []})
    assert caught.value.kind == kind and caught.value.retry_after == retry_after


async def test_redirects_are_followed_a_few_times(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", rss([entry(1)]))
    url = feed_server.redirect("/old", "/feed.xml", 301)
    for n in range(6):
        feed_server.redirect(f"/loop{n}", f"/loop{n + 1}")
    async with poll_context() as ctx:
        assert (await poll(RssTrigger, ctx, {"url": url}, None)).state["seen"] == ["post-1"]
        with pytest.raises(NodeError, match="more than 5 redirects"):
            await poll(RssTrigger, ctx, {"url": f"{feed_server.url}/loop0"}, None)


async def test_a_body_over_the_limit_is_refused(feed_server: FeedServer) -> None:
    url = feed_server.put("/huge", rss([entry(n, description="x" * 2000) for n in range(4000)]))  # ~9 MB
    async with poll_context() as ctx:
        with pytest.raises(NodeError, match="larger than"):
            await poll(RssTrigger, ctx, {"url": url}, None)


async def test_the_ssrf_guard_refuses_private_addresses_unless_allowed(feed_server: FeedServer) -> None:
    url = feed_server.put("/feed.xml", rss([entry(1)]))
    async with poll_context(allow="") as ctx:
        with pytest.raises(NodeError, match=r"refused: .*loopback.*PATCHWIRE_HTTP_ALLOW_NETWORKS"):
            await poll(RssTrigger, ctx, {"url": url}, None)
    assert feed_server.received("/feed.xml") == [], "nothing was sent to a refused address"


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(RssTrigger.Config, {"url": "file:///etc/passwd", "interval_minutes": 0})
    assert set(caught.value.field_errors) == {"interval_minutes"}
    with pytest.raises(ConfigError) as caught:
        parse_config(RssTrigger.Config, {"url": "ftp://example.com/feed"})
    assert caught.value.field_errors == {"url": "Enter a full http:// or https:// URL."}
    assert RssTrigger().interval(parse_config(RssTrigger.Config, {"url": "https://example.com/f"})) == 900


async def test_more_new_entries_than_one_poll_hands_on_come_with_the_next(feed_server: FeedServer) -> None:
    url = feed_server.put("/burst.xml", rss([]))
    async with poll_context() as ctx:
        state = (await poll(RssTrigger, ctx, {"url": url}, None)).state
        feed_server.put("/burst.xml", rss([entry(n) for n in range(MAX_NEW_PER_POLL + 20, 0, -1)]))
        first = await poll(RssTrigger, ctx, {"url": url}, state)
        assert first.state["etag"] is None, "the feed must be read in full again"
        second = await poll(RssTrigger, ctx, {"url": url}, first.state)
        third = await poll(RssTrigger, ctx, {"url": url}, second.state)
    assert [i["id"] for i in first.items] == [f"post-{n}" for n in range(1, MAX_NEW_PER_POLL + 1)]
    assert [i["id"] for i in second.items] == [f"post-{n}" for n in range(MAX_NEW_PER_POLL + 1, MAX_NEW_PER_POLL + 21)]
    assert third.items == [] and third.state["etag"]


async def test_a_feed_cannot_make_the_worker_read_a_file(feed_server: FeedServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a")
    doctype = f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    body = rss([entry(1)]).replace('<rss version="2.0">', doctype + '<rss version="2.0">', 1)
    body = body.replace("<title>Post 1</title>", "<title>Post 1 &xxe;</title>")
    url = feed_server.put("/xxe.xml", body)
    async with poll_context() as ctx:
        baseline = await poll(RssTrigger, ctx, {"url": url}, {"seen": []})
    assert "TOP-SECRET" not in json.dumps(baseline.items) and baseline.items[0]["title"].startswith("Post 1")
