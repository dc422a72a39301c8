"""The three poll sources through the real scheduler (``Scheduler.tick()`` with an injected clock) on SQLite and
PostgreSQL: the baseline starts nothing, new entries start one ``poll`` execution with them as its input, the
same entries never start another, and a source answering garbage is the trigger's failure, shown on its row."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from saq import Queue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials import Vault
from engine.events import MemorySink
from engine.models import Execution, Trigger
from engine.netguard import outbound_client, parse_networks
from engine.queue import queue_from_url
from engine.triggers.scheduler import Scheduler
from engine.worker import WorkerServices, run_execution
from nodes import registry
from tests import credential_factories as factories
from tests.engine.oauth_support import connected, oauth_services
from tests.fakes import FakeProviders
from tests.fakes.feeds import FeedServer, rss
from tests.triggers.support import add_owner, trigger_workflow


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    queue: Queue
    http: httpx.AsyncClient
    clock: Clock
    vault: Vault | None = None

    async def tick(self) -> int:
        scheduler = Scheduler(self.sessions, self.queue, registry, http=self.http, vault=self.vault, clock=self.clock,
                              job_timeout=120, heartbeat=5, poll_timeout=20)
        return await scheduler.tick()

    async def tick_after(self, minutes: float) -> int:
        self.clock.now += timedelta(minutes=minutes)
        return await self.tick()

    async def trigger(self, trigger_id: int) -> Trigger:
        async with self.sessions() as session:
            return await session.get_one(Trigger, trigger_id)

    async def executions(self, workflow_id: int) -> list[Execution]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Execution).where(Execution.workflow_id == workflow_id)
                                              .order_by(Execution.id)))


@asynccontextmanager
async def world(sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
                vault: Vault | None = None) -> AsyncIterator[World]:
    queue = queue_from_url(f"sqlite:///{tmp_path / 'queue.db'}")
    await queue.connect()
    try:
        async with outbound_client(parse_networks("127.0.0.0/8")) as http:
            yield World(sessions, queue, http, Clock(datetime.now(UTC)), vault)
    finally:
        await queue.disconnect()


async def started_once(w: World, workflow_id: int, trigger_id: int, minutes: float) -> list[dict[str, Any]]:
    """One tick after ``minutes`` starts exactly one execution; the next interval starts none. Its items."""
    assert await w.tick_after(minutes) == 1
    [execution] = await w.executions(workflow_id)
    row = await w.trigger(trigger_id)
    assert execution.trigger == "poll" and execution.trigger_node == row.node_id
    assert (row.failures, row.last_error) == (0, None)
    assert await w.queue.job(str(execution.id)) is not None, "enqueued after the commit"
    assert await w.tick_after(minutes) == 0 and len(await w.executions(workflow_id)) == 1, "never twice"
    return list(execution.input["items"])


async def test_rss_through_the_scheduler(migrated_db: tuple[str, async_sessionmaker[AsyncSession]], tmp_path: Path,
                                         feed_server: FeedServer) -> None:
    _, sessions = migrated_db
    entries = [{"title": "One", "link": "https://example.com/1", "guid": "1"}]
    url = feed_server.put("/feed.xml", rss(entries))
    async with world(sessions, tmp_path) as w:
        workflow_id, trigger_id = await trigger_workflow(
            sessions, registry, await add_owner(sessions), trigger_type="rss_trigger",
            config={"url": url, "interval_minutes": 15}, next_run_at=w.clock.now)
        assert await w.tick() == 0, "the baseline starts nothing"
        assert (await w.trigger(trigger_id)).state["seen"] == ["1"]
        feed_server.put("/feed.xml", rss([{"title": "Two", "link": "https://example.com/2", "guid": "2"}, *entries]))
        items = await started_once(w, workflow_id, trigger_id, 15)
        assert [(i["id"], i["title"]) for i in items] == [("2", "Two")]
        [execution] = await w.executions(workflow_id)
        services = WorkerServices(sessions=sessions, sink=MemorySink(), registry=registry, http=w.http,
                                  scheduler_every=None)
        try:
            await run_execution({"services": services}, execution_id=execution.id)
        finally:
            await services.store.close()
        [ran] = await w.executions(workflow_id)
        assert ran.status == "succeeded", ran.error
        assert [(i["title"], i["done"]) for i in ran.output["Set"]] == [("Two", "yes")], "the entries ran the workflow"

        feed_server.put("/feed.xml", "<html><body>maintenance</body></html>", "text/html")
        assert await w.tick_after(15) == 0
        row = await w.trigger(trigger_id)
        assert row.failures == 1 and "is not an RSS or Atom feed" in (row.last_error or "")
        assert row.state["seen"] == ["2", "1"], "a failed poll does not move the cursor"


async def test_http_json_list_through_the_scheduler(migrated_db: tuple[str, async_sessionmaker[AsyncSession]],
                                                    tmp_path: Path, feed_server: FeedServer) -> None:
    _, sessions = migrated_db
    url = feed_server.put("/orders", json.dumps({"data": [{"id": 1}]}), "application/json")
    async with world(sessions, tmp_path) as w:
        workflow_id, trigger_id = await trigger_workflow(
            sessions, registry, await add_owner(sessions), trigger_type="http_poll_trigger",
            config={"url": url, "items_path": "data", "interval_minutes": 5}, next_run_at=w.clock.now)
        assert await w.tick() == 0
        feed_server.put("/orders", json.dumps({"data": [{"id": 2, "total": 9.5}, {"id": 1}]}), "application/json")
        assert await started_once(w, workflow_id, trigger_id, 5) == [{"id": 2, "total": 9.5}]

        feed_server.put("/orders", "upstream error", "text/plain", status=502)
        assert await w.tick_after(5) == 0
        row = await w.trigger(trigger_id)
        assert row.failures == 1 and "answered HTTP 502" in (row.last_error or "")


async def test_gmail_through_the_scheduler(migrated_db: tuple[str, async_sessionmaker[AsyncSession]], tmp_path: Path,
                                           fake_providers: FakeProviders) -> None:
    url, _ = migrated_db
    async with oauth_services(url, factories.ring("k1"), fake_providers) as deps:
        owner_id, credential_id = await connected(deps, fake_providers, "google", "google")
        vault = Vault(deps.sessions, deps.ring, deps.registry, deps.http, deps.env)
        async with world(deps.sessions, tmp_path, vault) as w:
            fake_providers.google.mailbox.add("Before activation")
            workflow_id, trigger_id = await trigger_workflow(
                deps.sessions, registry, owner_id, trigger_type="gmail_trigger",
                config={"credential": credential_id, "query": "subject:invoice"}, next_run_at=w.clock.now)
            assert await w.tick() == 0
            wanted = fake_providers.google.mailbox.add("Invoice 42", sender="billing@acme.test")
            fake_providers.google.mailbox.add("Lunch")
            items = await started_once(w, workflow_id, trigger_id, 1)
            assert [(i["id"], i["subject"], i["from"]) for i in items] == [(wanted.id, "Invoice 42", "billing@acme.test")]

            fake_providers.google.mailbox.fail_next(429, count=10)
            assert await w.tick_after(1) == 0
            row = await w.trigger(trigger_id)
            assert row.failures == 1 and "Gmail answered HTTP 429" in (row.last_error or "")
