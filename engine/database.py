"""Async SQLAlchemy engines for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from engine.files import private_sqlite_file

BUSY_TIMEOUT_MS = 10_000
PING_IDLE_AFTER = 1.0
"""A pooled PostgreSQL connection idle for longer than this (seconds) is pinged when it is checked out."""


def async_url(url: str) -> str:
    """Map the user-facing URL to the async driver SQLAlchemy needs."""
    for prefix, driver in (("sqlite:///", "sqlite+aiosqlite:///"), ("postgresql://", "postgresql+asyncpg://"),
                           ("postgres://", "postgresql+asyncpg://")):
        if url.startswith(prefix):
            return driver + url[len(prefix):]
    return url


def sync_url(url: str) -> str:
    """The URL for synchronous tools (Alembic offline, tests): sqlite stays, postgres uses psycopg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url.replace("sqlite+aiosqlite:///", "sqlite:///")


def make_engine(url: str, *, pool_size: int = 20, ping_idle_after: float | None = PING_IDLE_AFTER,
                **kwargs: Any) -> AsyncEngine:
    """PostgreSQL gets a pool as large as the work in flight: overflow connections are closed on
    return, and a new one forks a backend, so a small pool churns under a busy worker. Pooled
    connections idle for more than ``ping_idle_after`` seconds are pinged on checkout: after a server
    restart the idle ones are dead, and the first query on one would fail (and with it the job that
    made it) before SQLAlchemy recycles the rest. One checked in less than that ago is not pinged: a
    ping saved per session, on asyncpg three round trips (``BEGIN``, ``;``, ``ROLLBACK``), and a webhook
    request opens three sessions (bench/webhook.py). The run store's kept connection has the same rule
    (engine/sqlstore.py). ``None``: ping at every checkout (SQLAlchemy's ``pool_pre_ping``)."""
    kwargs.setdefault("pool_size", pool_size)  # SQLite's default, 5: an overflow aiosqlite connection is a new thread
    kwargs.setdefault("max_overflow", 10)
    if not url.startswith("sqlite") and ping_idle_after is None:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(async_url(url), **kwargs)
    if engine.dialect.name != "sqlite" and ping_idle_after is not None and not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_idle_after)
    if engine.dialect.name == "sqlite":
        path = make_url(async_url(url)).database or ""
        # before SQLite opens (and maybe makes) the file: it is made 0600 first (engine/files.py)
        event.listen(engine.sync_engine, "do_connect", lambda *_args: private_sqlite_file(path))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    """``pool_pre_ping`` for connections idle longer than ``idle_after``: SQLAlchemy's pessimistic
    disconnect handling through pool events. A failed ping invalidates the pool (every connection made
    before now, as ``pool_pre_ping`` does) and the checkout is retried on a fresh connection."""
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info["pw_idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("pw_idle_since", None)
        if since is None or time.monotonic() - since <= idle_after:
            return  # a new connection, or one in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:  # dead (the server restarted, or dropped it): retried on a new one
            raise exc.InvalidatePoolError(f"pooled connection found dead: {error}") from error


def connect_sqlite(path: str, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` for every raw connection of ours: the file (and the ones SQLite makes beside it)
    readable by its owner only."""
    private_sqlite_file(path)
    return sqlite3.connect(path, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Before any table: on a new, empty file this makes the database prunable to a smaller file
    # (engine/retention.py runs `PRAGMA incremental_vacuum`); an existing file keeps its mode until
    # `engine.migrate.ensure_incremental_vacuum` converts it once. Before the busy timeout, so that on
    # a file another connection is writing to it fails at once instead of waiting for that writer
    # (which may be waiting for us): such a file is not new, and the pragma has nothing to do there.
    try:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
