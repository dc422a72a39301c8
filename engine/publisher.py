"""Event sinks that publish to the live-status channels of each deployment profile.

The web process subscribes with Litestar Channels; these publishers speak the same wire
format without importing Litestar: Redis ``PUBLISH`` on the raw channel name (what
``RedisChannelsPubSubBackend`` listens to) and PostgreSQL ``pg_notify`` (what
``AsyncPgChannelsBackend`` listens to). In the embedded profile the worker runs inside the web
process and the web layer hands in a ``LocalSink``: each message goes straight to its consumer in
that process (execution changes to the live hub, events onto the in-memory channels), on the
committing task's own turn of the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy.engine import URL, make_url

from engine.events import Message
from engine.settings import normalize_service_url

log = logging.getLogger("patchwire.events")


class LocalSink:
    """Hands each message to ``deliver`` at once, in the caller's thread and turn of the event loop.

    For a consumer in the same process (the embedded profile). ``deliver`` must neither block nor
    wait: it queues or dispatches. Its sink is *immediate*: the run store calls ``publish_now`` right
    after each commit instead of going through its outbox task (engine/sqlstore.py), so a change
    reaches the web process's hub with no hop through a queue or a task of its own."""

    immediate = True

    def __init__(self, deliver: Callable[[Message], None]) -> None:
        self._deliver = deliver

    def publish_now(self, events: list[Message]) -> None:
        for event in events:
            self._deliver(event)

    async def publish(self, event: Message) -> None:
        self._deliver(event)

    async def publish_many(self, events: list[Message]) -> None:
        self.publish_now(events)

    async def close(self) -> None:
        return None


_PUBLISH_ALL = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return 0"
"""PUBLISH each (channel, payload) pair of ARGV, in order: one command, and Redis caches the script."""


def redis_channel_prefix(url: str) -> str:
    """The prefix of every Patchwire channel name on the Redis server of ``url``: its database number.

    Redis pub/sub ignores database numbers — a message published while on db 3 reaches subscribers on
    every db — so two instances on one Redis server with their own databases (and a test suite's parallel
    workers) would see each other's executions. The web process (``webapp/runtime.py``) and the workers
    derive the same prefix from the same ``CHANNELS_URL``."""
    parts = urlsplit(url)
    db = parts.path.strip("/") or dict(parse_qsl(parts.query)).get("db", "0")
    return f"pw{db}:"


class RedisSink:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._publish_all = self._redis.register_script(_PUBLISH_ALL)
        self._prefix = redis_channel_prefix(url)

    async def publish(self, event: Message) -> None:
        await self._redis.publish(self._prefix + event.channel, event.to_json())

    async def publish_many(self, events: list[Message]) -> None:
        """In order, in one round trip: one ``EVALSHA`` (cheaper for the client than a pipeline)."""
        args: list[str | bytes] = []
        for event in events:
            args += (self._prefix + event.channel, event.to_json())
        await self._publish_all(keys=[], args=args)

    async def close(self) -> None:
        await self._redis.aclose()


class PostgresSink:
    """``pg_notify`` on its own connection. A worker whose database is this one does not use it for
    run events: its run store notifies inside the transaction that stores them (engine/sqlstore.py)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None

    async def publish(self, event: Message) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: list[Message]) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2)
        await self._pool.execute(
            "SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)",
            [e.channel for e in events], [e.to_json().decode() for e in events])

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class SafeSink:
    """Live status is best effort: the database already holds the truth, so a failed publish
    is logged and never fails the node that produced it."""

    def __init__(self, inner: LocalSink | RedisSink | PostgresSink) -> None:
        self.inner = inner
        self.immediate = isinstance(inner, LocalSink)
        """Whether ``publish_now`` may be called (a ``LocalSink``): see ``LocalSink``."""

    async def publish(self, event: Message) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: list[Message]) -> None:
        if self.immediate:
            self.publish_now(events)
            return
        try:
            await self.inner.publish_many(events)
        except (OSError, aioredis.RedisError, asyncpg.PostgresError) as exc:
            log.warning("could not publish %d messages on %s: %s", len(events),
                        ", ".join(sorted({e.channel for e in events})), exc)

    def publish_now(self, events: list[Message]) -> None:
        """For an immediate sink only. Whatever its consumer raises is logged, never raised: the commit
        that produced the messages has happened, and its run goes on."""
        assert isinstance(self.inner, LocalSink)
        try:
            self.inner.publish_now(events)
        except Exception:
            log.warning("could not deliver %d messages in process", len(events), exc_info=True)

    async def close(self) -> None:
        await self.inner.close()


def notifies_in(sink: object, database_url: URL) -> bool:
    """Whether ``sink`` is PostgreSQL ``NOTIFY`` on the database at ``database_url``: then the run
    store can send the notifications inside the transaction that stores the events."""
    inner = sink.inner if isinstance(sink, SafeSink) else sink
    if not isinstance(inner, PostgresSink) or database_url.get_backend_name() != "postgresql":
        return False
    channels = make_url(inner.url)
    return all(getattr(channels, part) == getattr(database_url, part)
               for part in ("host", "port", "database", "username", "password", "query"))


def sink_from_url(url: str) -> SafeSink:
    if url.startswith(("redis://", "rediss://")):
        return SafeSink(RedisSink(url))
    url = normalize_service_url(url)
    if url.startswith("postgresql://"):
        return SafeSink(PostgresSink(url))
    raise ValueError(f"no event publisher for channels URL {url!r} (use redis:// or postgresql://)")
