"""Event sinks that publish to the live-status channels of each deployment profile.

The web process subscribes with Litestar Channels; these publishers speak the same wire
format without importing Litestar: Redis ``PUBLISH`` on the raw channel name (what
``RedisChannelsPubSubBackend`` listens to) and PostgreSQL ``pg_notify`` (what
``AsyncPgChannelsBackend`` listens to). In the embedded profile the worker runs inside the web
process and the web layer hands in a ``CallbackSink`` onto its in-memory channels.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis

from engine.events import Event, channel_for
from engine.settings import normalize_service_url

log = logging.getLogger("patchwire.events")


class CallbackSink:
    def __init__(self, publish: Callable[[bytes, str], Awaitable[None] | None]) -> None:
        self._publish = publish

    async def publish(self, event: Event) -> None:
        result = self._publish(event.to_json(), channel_for(event.execution_id))
        if result is not None:
            await result

    async def close(self) -> None:
        return None


class RedisSink:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)

    async def publish(self, event: Event) -> None:
        await self._redis.publish(channel_for(event.execution_id), event.to_json())

    async def close(self) -> None:
        await self._redis.aclose()


class PostgresSink:
    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: asyncpg.Pool | None = None

    async def publish(self, event: Event) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=2)
        await self._pool.execute("SELECT pg_notify($1, $2)", channel_for(event.execution_id), event.to_json().decode())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class SafeSink:
    """Live status is best effort: the database already holds the truth, so a failed publish
    is logged and never fails the node that produced it."""

    def __init__(self, inner: CallbackSink | RedisSink | PostgresSink) -> None:
        self.inner = inner

    async def publish(self, event: Event) -> None:
        try:
            await self.inner.publish(event)
        except (OSError, aioredis.RedisError, asyncpg.PostgresError) as exc:
            log.warning("could not publish %s for execution %s: %s", event.type, event.execution_id, exc)

    async def close(self) -> None:
        await self.inner.close()


def sink_from_url(url: str) -> SafeSink:
    if url.startswith(("redis://", "rediss://")):
        return SafeSink(RedisSink(url))
    url = normalize_service_url(url)
    if url.startswith("postgresql://"):
        return SafeSink(PostgresSink(url))
    raise ValueError(f"no event publisher for channels URL {url!r} (use redis:// or postgresql://)")
