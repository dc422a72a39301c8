"""HTTP Poll Trigger: ``poll()`` against a real loopback JSON server through the guarded client; a stored
credential opened by the real vault (sealed rows in SQLite)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import parse_config
from engine.credentials import Key, KeyRing, create_credential
from engine.credentials.redaction import Redactor
from engine.credentials.vault import Vault, for_node
from engine.database import make_engine, make_sessionmaker
from engine.errors import ConfigError, NodeError
from engine.migrate import upgrade_async
from engine.netguard import outbound_client, parse_networks
from nodes.credentials import credential_registry
from nodes.http_poll_trigger import HttpPollTrigger
from nodes.polling import MAX_NEW_PER_POLL, SEEN_LIMIT
from tests import credential_factories as factories
from tests.fakes.feeds import FeedServer
from tests.nodes.poll_support import poll, poll_context

JSON = "application/json"


def answer(items: list[Any], **around: Any) -> str:
    return json.dumps({"data": {"items": items}, **around})


async def test_baseline_then_new_elements_by_key(feed_server: FeedServer) -> None:
    url = feed_server.put("/orders", answer([{"id": 2, "total": 20}, {"id": 1, "total": 10}]), JSON)
    config = {"url": url, "items_path": "data.items", "key_field": "id"}
    async with poll_context() as ctx:
        baseline = await poll(HttpPollTrigger, ctx, config, None)
        assert baseline.items == [] and baseline.state == {"seen": ["2", "1"]}
        feed_server.put("/orders", answer([{"id": 4, "total": 40}, {"id": 3, "total": 30}, {"id": 2, "total": 21},
                                           {"id": 1, "total": 10}]), JSON)
        found = await poll(HttpPollTrigger, ctx, config, baseline.state)
        assert found.items == [{"id": 4, "total": 40}, {"id": 3, "total": 30}], "new keys only, in the list's order"
        assert (await poll(HttpPollTrigger, ctx, config, found.state)).items == []


async def test_the_whole_answer_as_the_list_and_nested_keys(feed_server: FeedServer) -> None:
    url = feed_server.put("/list", json.dumps([{"meta": {"uid": "a"}}, {"meta": {"uid": "b"}}]), JSON)
    config = {"url": url, "key_field": "meta.uid"}
    async with poll_context() as ctx:
        baseline = await poll(HttpPollTrigger, ctx, config, None)
        feed_server.put("/list", json.dumps([{"meta": {"uid": "c"}}, {"meta": {"uid": "c"}},
                                             {"meta": {"uid": "a"}}]), JSON)
        found = await poll(HttpPollTrigger, ctx, config, baseline.state)
    assert found.items == [{"meta": {"uid": "c"}}], "a key listed twice starts one item"
    assert found.state["seen"] == ["c", "a", "b"]


async def test_state_is_bounded(feed_server: FeedServer) -> None:
    url = feed_server.put("/many", json.dumps([{"id": n} for n in range(SEEN_LIMIT + 50)]), JSON)
    async with poll_context() as ctx:
        baseline = await poll(HttpPollTrigger, ctx, {"url": url}, None)
        feed_server.put("/many", json.dumps([{"id": "x" * 200}]), JSON)
        found = await poll(HttpPollTrigger, ctx, {"url": url}, baseline.state)
    assert len(baseline.state["seen"]) == SEEN_LIMIT + 50
    assert len(found.state["seen"]) == SEEN_LIMIT and found.state["seen"][0].startswith("sha256:")
    assert found.items == [{"id": "x" * 200}]


@pytest.mark.parametrize(("body", "config", "message"), [
    ("<html>oops</html>", {}, r"did not answer JSON \(it began '<html>oops</html>'\)"),
    (json.dumps({"data": {}}), {"items_path": "data.items"}, r"has nothing at 'data.items'"),
    (json.dumps({"data": {"items": {"id": 1}}}), {"items_path": "data.items"}, r"has an object at 'data.items', not a list"),
    (json.dumps({"id": 1}), {}, r"has an object \(the whole answer\), not a list"),
    (json.dumps([{"id": 1}, 7]), {}, r"element 1 of the list of .* is a number, not an object"),
    (json.dumps([{"id": 1}, {"name": "x"}]), {}, r"element 1 of the list of .* has no key field 'id'"),
    (json.dumps([{"id": {"deep": 1}}]), {}, r"element 0 of the list of .* has an object as its key field 'id'"),
    ("[" * 100 + "]" * 100, {}, r"nested"),
])
async def test_garbage_is_a_precise_error(feed_server: FeedServer, body: str, config: dict[str, Any],
                                          message: str) -> None:
    url = feed_server.put("/api", body, JSON)
    async with poll_context() as ctx:
        with pytest.raises(NodeError, match=message):
            await poll(HttpPollTrigger, ctx, {"url": url, **config}, {"seen": []})


@pytest.mark.parametrize(("status", "kind"), [(500, "5xx"), (503, "5xx"), (429, "429"), (403, "4xx")])
async def test_error_statuses(feed_server: FeedServer, status: int, kind: str) -> None:
    url = feed_server.put("/api", '{"error": "no"}', JSON, status=status, headers={"Retry-After": "7"})
    async with poll_context() as ctx:
        with pytest.raises(NodeError, match=f"answered HTTP {status}") as caught:
            await poll(HttpPollTrigger, ctx, {"url": url}, {"seen": []})
    assert caught.value.kind == kind and caught.value.retry_after == 7


async def test_the_ssrf_guard_refuses_private_addresses_unless_allowed(feed_server: FeedServer) -> None:
    url = feed_server.put("/api", "[]", JSON)
    async with poll_context(allow="10.0.0.0/8") as ctx:
        with pytest.raises(NodeError, match=r"refused: .*loopback"):
            await poll(HttpPollTrigger, ctx, {"url": url}, None)
    async with poll_context() as ctx:
        assert (await poll(HttpPollTrigger, ctx, {"url": url}, None)).state == {"seen": []}
    assert len(feed_server.received("/api")) == 1


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[tuple[Vault, int]]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as db:
        owner_id = await factories.user(db)
    ring = KeyRing((Key("k1", os.urandom(32)),), source="test")
    async with outbound_client(allow=parse_networks("127.0.0.0/8")) as http:
        yield Vault(sessions, ring, credential_registry(), http, {}), owner_id
    await engine.dispose()


async def test_a_credential_is_sent_to_its_origin_only(feed_server: FeedServer, vault: tuple[Vault, int]) -> None:
    store, owner_id = vault
    secret = "tok-5e1b9f0c3a7d"
    async with store.sessions.begin() as db:
        credential = await create_credential(db, store.ring, credential_registry(), owner_id=owner_id,
                                             type_name="http_bearer", name="API", public={},
                                             secret={"token": secret})
    url = feed_server.put("/private", json.dumps([{"id": 1, "echo": f"you sent {secret}"}]), JSON,
                          require=("Authorization", f"Bearer {secret}"))
    raw = {"url": url, "credential": credential.id, "headers": [{"name": "X-Trace", "value": "t1"}]}
    config = parse_config(HttpPollTrigger.Config, raw)
    credentials = for_node(store.for_run(owner_id, Redactor()), config, "Trigger")
    async with poll_context(credentials=credentials) as ctx:
        baseline = await poll(HttpPollTrigger, ctx, raw, None)
        feed_server.put("/private", json.dumps([{"id": 2, "echo": f"you sent {secret}"}]), JSON,
                        require=("Authorization", f"Bearer {secret}"))
        found = await poll(HttpPollTrigger, ctx, raw, baseline.state)
        assert found.items == [{"id": 2, "echo": "you sent [redacted]"}], "an echoed secret never reaches the items"

        feed_server.put("/elsewhere", "[]", JSON)
        moved = feed_server.redirect("/private", f"http://localhost:{feed_server.url.rsplit(':', 1)[1]}/elsewhere")
        await poll(HttpPollTrigger, ctx, {**raw, "url": moved}, baseline.state)
    sent = feed_server.received("/elsewhere")[-1]["headers"]
    assert sent["x-trace"] == "t1" and "authorization" not in sent, \
        "another origin gets the typed headers, never the credential"
    with pytest.raises(NodeError, match="no access to credentials"):
        async with poll_context() as ctx:
            await poll(HttpPollTrigger, ctx, raw, None)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(HttpPollTrigger.Config, {"url": "javascript:alert(1)", "key_field": "a..b",
                                              "items_path": "data items"})
    assert set(caught.value.field_errors) == {"url", "key_field", "items_path"}
    config = parse_config(HttpPollTrigger.Config, {"url": "https://api.example.com/x"})
    assert HttpPollTrigger().interval(config) == 300 and config.key_field == "id"


async def test_more_new_elements_than_one_poll_hands_on_come_with_the_next(feed_server: FeedServer) -> None:
    url = feed_server.put("/burst", "[]", JSON)
    async with poll_context() as ctx:
        state = (await poll(HttpPollTrigger, ctx, {"url": url}, None)).state
        feed_server.put("/burst", json.dumps([{"id": n} for n in range(MAX_NEW_PER_POLL + 20)]), JSON)
        first = await poll(HttpPollTrigger, ctx, {"url": url}, state)
        second = await poll(HttpPollTrigger, ctx, {"url": url}, first.state)
        third = await poll(HttpPollTrigger, ctx, {"url": url}, second.state)
    assert [i["id"] for i in first.items] == list(range(MAX_NEW_PER_POLL))
    assert [i["id"] for i in second.items] == list(range(MAX_NEW_PER_POLL, MAX_NEW_PER_POLL + 20))
    assert third.items == []
