"""The SAQ queue of a deployment profile, chosen by URL.

| URL | queue |
| --- | --- |
| ``sqlite:///relative.db``, ``sqlite:////abs/queue.db`` | :class:`SQLiteQueue` (embedded) |
| ``redis://…``, ``rediss://…`` | SAQ's ``RedisQueue`` |
| ``postgres://…``, ``postgresql://…`` (also ``postgresql+psycopg/asyncpg://``) | SAQ's ``PostgresQueue`` |

Every queue must be connected before use (``await queue.connect()``) and disconnected after
(``await queue.disconnect()``); the Postgres queue creates its tables on connect.
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

import saq
from saq.queue.postgres import PostgresQueue as PostgresQueueBase
from saq.queue.redis import RedisQueue as RedisQueueBase

from engine.queue.sqlite import SQLiteQueue

__all__ = ["SQLiteQueue", "queue_from_url"]

SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
REDIS_SCHEMES = {"redis", "rediss"}
POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg"}


SWEEP_ABORT_WAIT = 0.5
"""Seconds SAQ's Redis / PostgreSQL sweep waits, per stuck job and one job after another, for the job's
worker to acknowledge the abort. SAQ's default (5 s) makes recovery after a crash take 5 s per job the
dead worker held; a worker that missed its heartbeat (5 s) is dead or wedged and won't answer anyway — and if it
is alive after all, the execution lease (engine/worker.py) keeps the retried job from running it twice."""


POOL_RECONNECT_TIMEOUT = 10.0
"""Seconds the PostgreSQL queue's psycopg pool retries one lost connection before it gives that attempt up
(psycopg_pool's default: 300); the next request for a connection starts a new attempt at a 1 s delay. The
delay doubles within an attempt, so with the default a worker could wait about as long again as PostgreSQL
was down before it reconnects and dequeues (21 s after a 40 s outage in the crash suite; 2 s with 10)."""


EMBEDDED_SYNCHRONOUS = "NORMAL"
"""The embedded queue's SQLite ``synchronous`` mode. ``SQLiteQueue`` defaults to ``FULL`` (an fsync per commit);
Patchwire's queue does not need it: the database is the source of truth and is itself ``NORMAL`` (a process
crash loses nothing, a power cut may lose the last commits of both files), and the reconciler re-enqueues any
unfinished execution whose job the queue lost. Each job commits four times on the queue's one connection
(enqueue, claim, start, finish); on the test VM a WAL commit takes 0.22 ms with ``FULL``, 0.02 ms with ``NORMAL``."""


class _QuickSweep:
    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        return await super().sweep(lock, abort=min(abort, SWEEP_ABORT_WAIT))  # type: ignore[misc]


class RedisQueue(_QuickSweep, RedisQueueBase):
    pass


class PostgresQueue(_QuickSweep, PostgresQueueBase):
    pass


def queue_from_url(url: str, *, name: str = "patchwire", **kwargs: t.Any) -> saq.Queue:
    """The SAQ queue named ``name`` for ``url``; ``kwargs`` go to the queue's constructor."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in SQLITE_SCHEMES:
        kwargs.setdefault("synchronous", EMBEDDED_SYNCHRONOUS)
        return SQLiteQueue.from_url(url, name=name, **kwargs)
    if scheme in REDIS_SCHEMES:
        return RedisQueue.from_url(url, name=name, **kwargs)
    if scheme in POSTGRES_SCHEMES:
        queue = PostgresQueue.from_url(_libpq_url(url), name=name, **kwargs)
        queue.pool.reconnect_timeout = POOL_RECONNECT_TIMEOUT
        return queue
    raise ValueError(
        f"Unsupported queue URL scheme {scheme or '(none)'!r} in {url!r}: "
        "use sqlite:///path, redis://host or postgresql://host/db"
    )


def _libpq_url(url: str) -> str:
    """``postgresql://…``: the scheme psycopg/libpq accepts, without a SQLAlchemy driver suffix."""
    return "postgresql://" + url.split("://", 1)[1]
