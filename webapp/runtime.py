"""Process-wide resources: database, queue, channels, and (embedded profile) the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar.channels import ChannelsPlugin
from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from saq import Queue, Worker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine import metrics
from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from engine.netguard import outbound_client, parse_networks
from engine.publisher import CallbackSink, SafeSink
from engine.queue import queue_from_url
from engine.settings import Settings
from engine.worker import WorkerServices, build_worker
from nodes import registry

log = logging.getLogger("patchwire.runtime")
SUBSCRIBER_BACKLOG = 1000


def channels_plugin(settings: Settings) -> ChannelsPlugin:
    url = settings.channels_url
    if url.startswith("memory"):
        backend: Any = MemoryChannelsBackend()
    elif url.startswith(("redis://", "rediss://")):
        backend = RedisChannelsPubSubBackend(redis=Redis.from_url(url))
    elif url.startswith("postgresql://"):
        backend = AsyncPgChannelsBackend(dsn=url)
    else:
        raise ValueError(f"unsupported CHANNELS_URL {url!r}: use memory://, redis:// or postgresql://")
    # A slow browser's subscription keeps at most SUBSCRIBER_BACKLOG messages, dropping the oldest: it
    # never holds memory without bound or slows the others, and the stream fills gaps from the database.
    return ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True,
                          subscriber_max_backlog=SUBSCRIBER_BACKLOG, subscriber_backlog_strategy="dropleft")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: Queue
    worker: Worker | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)


@asynccontextmanager
async def lifespan_runtime(settings: Settings, channels: ChannelsPlugin, *, migrate: bool = True):
    """Open everything the web process needs; in the embedded profile also run the worker."""
    allow = parse_networks(settings.http_allow_networks)
    if migrate:
        await upgrade_async(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    queue = queue_from_url(settings.queue_url)
    await queue.connect()
    runtime = Runtime(settings, engine, sessions, queue)
    http = outbound_client(allow)
    try:
        if settings.embedded_queue:
            sink = SafeSink(CallbackSink(lambda data, channel: channels.publish(data, [channel])))
            services = WorkerServices(sessions=sessions, sink=sink, registry=registry, http=http,
                                      execution_timeout=settings.execution_timeout, inline_wait=settings.inline_wait,
                                      retention=settings.retention, retention_every=settings.retention_every)
            metrics.expose()  # the worker runs here: /metrics shows its counters
            runtime.worker = build_worker(queue, services, concurrency=settings.worker_concurrency, in_process=True)
            runtime._tasks.append(asyncio.create_task(runtime.worker.start()))
        yield runtime
    finally:
        if runtime.worker is not None:
            await runtime.worker.stop()
        await http.aclose()
        await queue.disconnect()
        await engine.dispose()
