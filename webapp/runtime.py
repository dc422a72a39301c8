"""Process-wide resources: database, queue, channels, and (embedded profile) the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from saq import Queue, Worker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine import metrics
from engine.changes import Announce, ExecutionChange
from engine.credentials import KeyRing
from engine.credentials.rotation import startup_keyring
from engine.database import make_engine, make_sessionmaker
from engine.errors import CredentialKeyError
from engine.events import Message
from engine.migrate import upgrade_async
from engine.netguard import outbound_client, parse_networks
from engine.publisher import LocalSink, SafeSink, redis_channel_prefix, sink_from_url
from engine.queue import queue_from_url
from engine.settings import Settings
from engine.worker import WorkerServices, build_worker, credentials_vault
from nodes import registry
from nodes.credentials import credential_registry
from webapp.executions.hub import DirectSubscriber, ExecutionHub
from webapp.webhooks.inline import InlineRuns
from webapp.webhooks.lane import Lane, PostgresLane, SQLiteLane

log = logging.getLogger("patchwire.runtime")
SUBSCRIBER_BACKLOG = 1000


def channels_plugin(settings: Settings) -> ChannelsPlugin:
    url = settings.channels_url
    if url.startswith("memory"):
        backend: Any = MemoryChannelsBackend()
    elif url.startswith(("redis://", "rediss://")):
        backend = _RedisChannels(redis=Redis.from_url(url), prefix=redis_channel_prefix(url))
    elif url.startswith("postgresql://"):
        backend = AsyncPgChannelsBackend(dsn=url)
    else:
        raise ValueError(f"unsupported CHANNELS_URL {url!r}: use memory://, redis:// or postgresql://")
    # A slow browser's subscription keeps at most SUBSCRIBER_BACKLOG messages, dropping the oldest: it
    # never holds memory without bound or slows the others, and the stream fills gaps from the database.
    # DirectSubscriber: the execution hub's subscription skips that queue (webapp/executions/hub.py)
    return ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True, subscriber_class=DirectSubscriber,
                          subscriber_max_backlog=SUBSCRIBER_BACKLOG, subscriber_backlog_strategy="dropleft")


class _RedisChannels(RedisChannelsPubSubBackend):
    """Litestar's Redis pub/sub backend, which also closes its client's pool on shutdown (the web process
    publishes through it — new rows are announced there — so the pool holds connections), and names every
    channel on the server with the prefix of its database (``engine.publisher.redis_channel_prefix``: pub/sub
    ignores database numbers), as the workers' ``RedisSink`` does."""

    def __init__(self, *, redis: Redis, prefix: str) -> None:
        super().__init__(redis=redis)
        self._prefix = prefix

    async def subscribe(self, channels: Iterable[str]) -> None:
        await super().subscribe([self._prefix + c for c in channels])

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        await super().unsubscribe([self._prefix + c for c in channels])

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        await super().publish(data, [self._prefix + c for c in channels])

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        cut = len(self._prefix)
        async for channel, data in super().stream_events():
            yield channel[cut:], data

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self._redis.aclose()


def local_delivery(channels: ChannelsPlugin, hub: ExecutionHub | None) -> Callable[[Message], None]:
    """How this process hands over a message of its own (the in-process worker's ``LocalSink``, the
    producers' announcements): onto its channels (queued there: it never waits for the backend); with
    ``hub`` (in-memory channels: nobody outside this process listens) an execution change goes straight
    to the hub instead (no JSON, no queue, no task hop: its browsers' tasks are woken in the same turn
    of the loop)."""

    def deliver(message: Message) -> None:
        if hub is not None and isinstance(message, ExecutionChange):
            hub.dispatch(message)
        else:
            channels.publish(message.to_json(), [message.channel])
    return deliver


def announcer(deliver: Callable[[Message], None]) -> Announce:
    """``Announce`` through ``deliver`` (``local_delivery``)."""

    async def announce(changes: list[ExecutionChange]) -> None:
        for change in changes:
            deliver(change)
    return announce


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: Queue
    announce: Announce
    """Publishes execution changes (a producer's ``created``) onto the live channels (engine/changes.py)."""
    hub: ExecutionHub
    """The live execution-change hub of this web process (webapp/executions/hub.py)."""
    worker: Worker | None = None
    keyring: KeyRing | None = None
    """The credential keys, checked against the stored credentials at start-up (engine/credentials/rotation.py)."""
    http: httpx.AsyncClient | None = None
    """The guarded outbound client (engine/netguard.py): a credential's Test calls its service through it."""
    inline: InlineRuns | None = None
    lane: Lane | None = None
    """The webhook route's reads and writes on the run store's SQLite connection (webapp/webhooks/lane.py)."""
    """Runs webhook executions that answer with their output on this loop (embedded profile:
    webapp/webhooks/inline.py)."""
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def _worker_services(settings: Settings, sessions: async_sessionmaker[AsyncSession], deliver: Callable[[Message], None],
                     http: httpx.AsyncClient, keyring: KeyRing | None) -> WorkerServices | None:
    """What runs executions in this process: the embedded worker's services; with separate workers, the
    webhook runs' only (no scheduler, no upkeep, no OAuth refresh pass: the workers run those); ``None``: no
    execution runs here."""
    if not (settings.embedded_queue or settings.webhook_inline_runs):
        return None
    # with separate workers, the runs here publish as theirs do (Redis: one round trip per commit; PostgreSQL:
    # inside the commit); the web process's hub hears them back like the workers' runs
    sink = (SafeSink(LocalSink(deliver)) if settings.embedded_queue or settings.channels_url.startswith("memory")
            else sink_from_url(settings.channels_url))
    vault = credentials_vault(settings, sessions, credential_registry(), http, ring=keyring)
    if settings.embedded_queue:
        return WorkerServices(sessions=sessions, sink=sink, registry=registry, http=http,
                              execution_timeout=settings.execution_timeout, inline_wait=settings.inline_wait,
                              poll_timeout=settings.poll_timeout,
                              retention=settings.retention, retention_every=settings.retention_every,
                              vault=vault)  # it also keeps the OAuth tokens fresh (the refresh pass)
    return WorkerServices(sessions=sessions, sink=sink, registry=registry, http=http,
                          execution_timeout=settings.execution_timeout, inline_wait=settings.inline_wait,
                          poll_timeout=settings.poll_timeout, scheduler_every=None, vault=vault)


def _webhook_runs(runtime: Runtime, services: WorkerServices) -> None:
    """The webhook route's runs in this process and its reads and writes outside the ORM (webapp/webhooks/)."""
    if runtime.settings.webhook_inline_runs:
        runtime.inline = InlineRuns(services, runtime.queue, runtime.settings.webhook_inline_runs)
    runtime.lane = SQLiteLane(services.store) if services.store.on_sqlite else PostgresLane(runtime.engine)


@asynccontextmanager
async def lifespan_runtime(settings: Settings, channels: ChannelsPlugin, *, migrate: bool = True):
    """Open everything the web process needs; in the embedded profile also run the worker."""
    allow = parse_networks(settings.http_allow_networks)
    if migrate:
        await upgrade_async(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:  # keys that cannot open the stored credentials: refuse to start, saying why
        keyring = await startup_keyring(settings, sessions)
    except CredentialKeyError as exc:
        log.error("cannot start: %s", exc)
        await engine.dispose()
        raise
    queue = queue_from_url(settings.queue_url)
    await queue.connect()
    hub = ExecutionHub(channels, sessions)
    deliver = local_delivery(channels, hub if settings.channels_url.startswith("memory") else None)
    http = outbound_client(allow)
    runtime = Runtime(settings, engine, sessions, queue, announcer(deliver), hub, keyring=keyring, http=http)
    own_store = None
    try:
        services = _worker_services(settings, sessions, deliver, http, keyring)
        if settings.embedded_queue:
            assert services is not None
            metrics.expose()  # the worker runs here: /metrics shows its counters
            runtime.worker = build_worker(queue, services, concurrency=settings.worker_concurrency, in_process=True)
            runtime._tasks.append(asyncio.create_task(runtime.worker.start()))
        elif services is not None:
            own_store, own_store_sink = services.store, services.sink
        if services is not None:
            _webhook_runs(runtime, services)
        yield runtime
    finally:
        if runtime.inline is not None:
            await runtime.inline.close()
        await runtime.hub.stop()
        if runtime.worker is not None:
            await runtime.worker.stop()
        if own_store is not None:
            await own_store.close()
            await own_store_sink.close()
        if runtime.lane is not None:
            await runtime.lane.close()
        await http.aclose()
        await queue.disconnect()
        await engine.dispose()
