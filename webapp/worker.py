"""``patchwire worker``: a separate SAQ worker process for the PostgreSQL and Redis profiles."""

from __future__ import annotations

import logging
from typing import Any
from wsgiref.simple_server import WSGIServer

from engine import metrics
from engine.credentials.rotation import startup_keyring
from engine.database import make_engine, make_sessionmaker
from engine.gctune import freeze_startup
from engine.netguard import outbound_client, parse_networks
from engine.publisher import sink_from_url
from engine.queue import queue_from_url
from engine.settings import Settings
from engine.worker import SHUTDOWN_GRACE, WorkerServices, build_worker, credentials_vault
from nodes import registry
from nodes.credentials import credential_registry

log = logging.getLogger("patchwire.worker")


async def run_worker(settings: Settings) -> None:
    allow = parse_networks(settings.http_allow_networks)
    engine = make_engine(settings.database_url, pool_size=settings.worker_concurrency + 5)
    try:  # keys that cannot open the stored credentials: refuse to start (CredentialKeyError says why)
        keyring = await startup_keyring(settings, make_sessionmaker(engine))
    except BaseException:
        await engine.dispose()
        raise
    log.info("credential keys: %s (sealing with %r)", ", ".join(keyring.ids), keyring.current.id)
    queue = queue_from_url(settings.queue_url)
    sink = sink_from_url(settings.channels_url)
    metrics_server: WSGIServer | None = None
    await queue.connect()
    try:
        async with outbound_client(allow) as http:
            sessions = make_sessionmaker(engine)
            vault = credentials_vault(settings, sessions, credential_registry(), http, ring=keyring)
            services = WorkerServices(sessions=sessions, sink=sink, registry=registry, http=http,
                                      execution_timeout=settings.execution_timeout, inline_wait=settings.inline_wait,
                                      poll_timeout=settings.poll_timeout,
                                      retention=settings.retention, retention_every=settings.retention_every,
                                      vault=vault)  # it also keeps the OAuth tokens fresh (the refresh pass)
            worker = build_worker(queue, services, concurrency=settings.worker_concurrency,
                                  shutdown_grace=SHUTDOWN_GRACE)
            metrics_server = _serve_metrics(settings)
            freeze_startup()  # what startup made lives as long as the process (engine/gctune.py)

            async def announce(ctx: dict[str, Any]) -> None:
                # a startup hook runs once SAQ has installed its SIGINT / SIGTERM handlers: a signal sent as
                # soon as this line is read stops the worker cleanly instead of killing it
                print(f"Patchwire worker {worker.id} on {settings.profile} queue", flush=True)

            worker.startup = [*(worker.startup or []), announce]
            await worker.start()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await sink.close()
        await queue.disconnect()
        await engine.dispose()


def _serve_metrics(settings: Settings) -> WSGIServer | None:
    """This worker's counters and histograms on ``PATCHWIRE_METRICS_PORT`` (docs/operations.md)."""
    if settings.metrics_port is None or not settings.metrics_enabled:
        return None
    server = metrics.serve_metrics(settings.metrics_host, settings.metrics_port, settings.metrics_token)
    log.info("worker metrics at http://%s:%d/metrics", settings.metrics_host, server.server_port)
    return server
