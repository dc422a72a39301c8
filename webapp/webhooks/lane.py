"""The webhook route's reads and writes without an ORM session: on SQLite through the run store's own
``sqlite3`` connection, on PostgreSQL through kept asyncpg connections.

Through an ORM session a request cost a pooled aiosqlite connection (a thread per connection, a thread hop per
statement and the GIL handed to and fro) for one read and one write. The run store already keeps a bare
connection that runs a statement *inline* on the loop's thread when the write lock is free
(engine/sqlstore.py, ``sqlite_call``): the route's target read, its execution-and-log write, and the batched
answers go through it — the same SQL and storage formats as the ORM's (the statements are SQLAlchemy's,
compiled once for SQLite). A request that needs more (a credential to open, a file to store, an event id to
remember, a draft to run) still opens a session.

On PostgreSQL (``PostgresLane``) the same: the target read, the execution inserted already claimed together
with its log row (one statement, a CTE), and the batched answers — one round trip each, where the session
took a checkout, ``BEGIN``, each statement and ``COMMIT``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, or_
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.models import Webhook, WebhookEvent, WebhookRequest, utcnow
from engine.sqlstore import SQLRunStore, _KeptConnection
from webapp.webhooks.auth import EVENTS_KEPT
from webapp.webhooks.services import _TARGET, LOG_SIZE, Target, target_from_row
from webapp.webhooks.sqlite_write import sqlite_time

_DIALECT = sqlite_dialect.dialect()


def _compiled(statement: Any) -> tuple[str, Any]:
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), compiled


_FIND_SQL, _FIND = _compiled(_TARGET.where(or_(Webhook.token == bindparam("key"), Webhook.path == bindparam("key")))
                             .limit(2))
_FIND_PARAMS = _FIND.construct_params({"key": ""})
_ANSWER_SQL = "UPDATE webhook_requests SET status = ?, response = ? WHERE id = ?"
_OLDEST_KEPT_SQL = "SELECT id FROM webhook_requests WHERE webhook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
_PRUNE_LOG_SQL = "DELETE FROM webhook_requests WHERE webhook_id = ? AND id < ?"
_PRUNE_EVENTS_SQL = "DELETE FROM webhook_events WHERE webhook_id = ? AND seen_at < ?"
# the hand-written statements (services.prune_log, auth.prune_events) name the models' tables
assert WebhookEvent.__tablename__ == "webhook_events" and WebhookRequest.__tablename__ == "webhook_requests"


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _decode(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


class Lane:
    """The route's reads and writes outside the ORM (one per web process)."""

    async def find_target(self, key: str) -> Target | None:
        raise NotImplementedError

    async def record(self, answers: list[dict[str, Any]], prune: set[int]) -> None:
        """The answers of logged requests, and the logs (and seen event ids) trimmed: one transaction."""
        raise NotImplementedError

    async def close(self) -> None:
        """Nothing to close by default."""


class SQLiteLane(Lane):
    def __init__(self, store: SQLRunStore) -> None:
        assert store.on_sqlite
        self._store = store

    async def find_target(self, key: str) -> Target | None:
        """As ``services.find_target``, on the store's connection."""
        args = tuple(key if name == "key" else _FIND_PARAMS[name] for name in _FIND.positiontup)

        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(_FIND_SQL, args).fetchall()

        rows = await self._store.sqlite_call(read)
        if not rows:
            return None
        row = list(next((r for r in rows if r[12] == key), rows[0]))
        row[7], row[8], row[10] = _datetime(row[7]), _decode(row[8]), _decode(row[10])
        return target_from_row(row)

    async def write(self, write: Any) -> Any:
        return await self._store.sqlite_call(write)

    async def record(self, answers: list[dict[str, Any]], prune: set[int]) -> None:
        """The answers of logged requests, and the logs (and seen event ids) trimmed: one transaction."""
        updates = [(a["status"], _json(a["response"]), a["id"]) for a in answers]
        events_before = sqlite_time(utcnow() - EVENTS_KEPT)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if updates:
                    conn.executemany(_ANSWER_SQL, updates)
                for webhook_id in prune:
                    kept = conn.execute(_OLDEST_KEPT_SQL, (webhook_id, LOG_SIZE - 1)).fetchone()
                    if kept is not None:
                        conn.execute(_PRUNE_LOG_SQL, (webhook_id, kept[0]))
                    conn.execute(_PRUNE_EVENTS_SQL, (webhook_id, events_before))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._store.sqlite_call(write)


# -- PostgreSQL ------------------------------------------------------------------------------------------------

_PG_FIND = _TARGET.where(or_(Webhook.token == bindparam("key"), Webhook.path == bindparam("key"))).limit(2) \
    .compile(dialect=postgresql_asyncpg.dialect())
_PG_FIND_SQL = str(_PG_FIND)
_PG_FIND_PARAMS = _PG_FIND.construct_params({"key": ""})
_PG_CLAIMED = """WITH e AS (
    INSERT INTO executions (workflow_id, owner_id, version_id, status, "trigger", input, created_at, interruptions,
                            trigger_node, started_at, lease_token, lease_until)
    VALUES ($1, $2, $3, 'running', 'webhook', $4::json, $5, 0, $6, $5, $7, $8) RETURNING id),
  l AS (
    INSERT INTO webhook_requests (webhook_id, received_at, method, input, status, outcome, execution_id)
    SELECT $9, $5, $10, $4::json, 0, 'ran', e.id FROM e RETURNING id)
SELECT (SELECT id FROM e), (SELECT id FROM l), (SELECT settings FROM workflows WHERE id = $1)"""
_PG_ANSWERS = """UPDATE webhook_requests AS r SET status = u.status, response = u.response::json
    FROM unnest($1::int[], $2::int[], $3::text[]) AS u(id, status, response) WHERE r.id = u.id"""
_PG_PRUNE_LOG = """DELETE FROM webhook_requests WHERE webhook_id = $1 AND id < (
    SELECT id FROM webhook_requests WHERE webhook_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)"""
_PG_PRUNE_EVENTS = "DELETE FROM webhook_events WHERE webhook_id = $1 AND seen_at < $2"


class PostgresLane(Lane):
    """The route's statements on PostgreSQL: each one round trip on a connection kept from the pool (the run
    store's ``_KeptConnection``: no checkout, no ping per statement); ``size`` of them, so that concurrent
    requests do not queue behind one commit."""

    def __init__(self, engine: AsyncEngine, size: int = 4) -> None:
        self._kept = [_KeptConnection(engine) for _ in range(size)]
        self._free: asyncio.Queue[_KeptConnection] = asyncio.Queue()
        for kept in self._kept:
            self._free.put_nowait(kept)

    async def _call(self, statement: Any) -> Any:
        kept = await self._free.get()
        try:
            return await kept.call(statement)
        finally:
            self._free.put_nowait(kept)

    async def find_target(self, key: str) -> Target | None:
        args = [key if name == "key" else _PG_FIND_PARAMS[name] for name in _PG_FIND.positiontup]
        rows = await self._call(lambda pg: pg.fetch(_PG_FIND_SQL, *args))
        if not rows:
            return None
        row = list(next((r for r in rows if r[12] == key), rows[0]))
        row[8], row[10] = _decode(row[8]), _decode(row[10])
        return target_from_row(row)

    async def insert_claimed(self, *, workflow_id: int, owner_id: int, version_id: int | None, node_id: str,
                             webhook_id: int, method: str, item: dict[str, Any], created_at: datetime,
                             lease: tuple[str, float]) -> tuple[int, int, Any]:
        """The execution, inserted claimed, and its log row, in one statement: ids and the workflow's settings."""
        item_json = _json(item)
        row = await self._call(lambda pg: pg.fetchrow(_PG_CLAIMED, workflow_id, owner_id, version_id, item_json,
                                                      created_at, node_id, lease[0], lease[1], webhook_id, method))
        return row[0], row[1], _decode(row[2])

    async def record(self, answers: list[dict[str, Any]], prune: set[int]) -> None:
        ids = [a["id"] for a in answers]
        statuses = [a["status"] for a in answers]
        responses = [_json(a["response"]) for a in answers]
        events_before = utcnow() - EVENTS_KEPT

        async def write(pg: Any) -> None:
            async with pg.transaction():
                if ids:
                    await pg.execute(_PG_ANSWERS, ids, statuses, responses)
                for webhook_id in prune:
                    await pg.execute(_PG_PRUNE_LOG, webhook_id, LOG_SIZE - 1)
                    await pg.execute(_PG_PRUNE_EVENTS, webhook_id, events_before)

        await self._call(write)

    async def close(self) -> None:
        for kept in self._kept:
            await kept.close()
