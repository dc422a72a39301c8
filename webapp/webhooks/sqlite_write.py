"""SQLite: a webhook request's execution row and its log row, inserted and committed in **one** call on the
connection's thread.

Through the ORM session the two ``INSERT``s and the ``COMMIT`` are three awaits (three aiosqlite thread hops,
each waiting for a turn of a busy event loop), and SQLite's write lock is held from the first ``INSERT`` to the
``COMMIT``: the run store's commits and the answer writer waited behind it, in SQLite's busy handler whose
sleeps grow to 100 ms (the embedded profile's p99 of 1.2–1.5 s, docs/benchmarks.md). Here the rows are built
first, then one function on the connection's own thread takes the lock (``BEGIN IMMEDIATE``, waiting in the
busy handler *without* holding it), inserts both, and commits — no await while the lock is held, as the run
store's inline commit (engine/sqlstore.py). A transaction the session already opened (the authentication's
``remember_event``) is continued and committed with them.

The columns written are the ones ``receive._insert_execution`` and ``services.log_request`` write through Core,
in SQLAlchemy's storage formats (JSON as text, ``UTCDateTime`` as naive UTC text);
``tests/webapp/test_webhooks_fast_write.py`` reads the rows back through the ORM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

_EXECUTION = ("INSERT INTO executions (workflow_id, owner_id, version_id, status, \"trigger\", input, created_at, "
              "interruptions, trigger_node) VALUES (?, ?, ?, 'queued', ?, ?, ?, 0, ?)")
_CLAIMED = ("INSERT INTO executions (workflow_id, owner_id, version_id, status, \"trigger\", input, created_at, "
            "interruptions, trigger_node, started_at, lease_token, lease_until) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?, 0, ?, ?, ?, ?)")
_SETTINGS = "SELECT settings FROM workflows WHERE id = ?"
_LOG = ("INSERT INTO webhook_requests (webhook_id, received_at, method, input, status, outcome, message, response, "
        "execution_id) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)")

LogAnswer = Callable[[int], tuple[int, dict[str, Any] | None]]
"""The log row's status and response, from the new execution's id (``0, None``: written after the answer)."""


def sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a ``UTCDateTime`` on SQLite (naive UTC, microseconds)."""
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


Written = tuple[int, int, str | None]
"""The new execution's id, its log row's id, and (claimed) the workflow's settings as JSON text."""


def started_write(*, workflow_id: int, owner_id: int, version_id: int | None, node_id: str, webhook_id: int,
                  method: str, item: dict[str, Any], trigger: str, created_at: datetime,
                  answer: LogAnswer, lease: tuple[str, float] | None = None) -> Callable[[sqlite3.Connection], Written]:
    """The transaction that inserts the execution and its log row and commits them. It continues a transaction
    the connection has open (the session's), else begins one with the write lock (``BEGIN IMMEDIATE``).

    ``lease`` (a token and its expiry, epoch seconds): the execution is inserted already *claimed* — running,
    started, leased — as ``SQLRunStore.claim`` would leave it, for a run that starts in this process at once
    (webapp/webhooks/inline.py); the workflow's settings are read in the same transaction. Without, it is
    ``queued`` for the queue."""
    item_json = _json(item)
    at = sqlite_time(created_at)

    def write(conn: sqlite3.Connection) -> Written:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")  # waits for the lock in the busy handler, on this thread
        try:
            settings = None
            if lease is None:
                execution_id = conn.execute(_EXECUTION, (workflow_id, owner_id, version_id, trigger, item_json, at,
                                                         node_id)).lastrowid
            else:
                execution_id = conn.execute(_CLAIMED, (workflow_id, owner_id, version_id, trigger, item_json, at,
                                                       node_id, at, *lease)).lastrowid
                settings = conn.execute(_SETTINGS, (workflow_id,)).fetchone()[0]
            assert execution_id is not None
            status, response = answer(execution_id)
            log_id = conn.execute(_LOG, (webhook_id, at, method, item_json, status, "ran", _json(response),
                                         execution_id)).lastrowid
            assert log_id is not None
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return execution_id, log_id, settings

    return write


async def insert_started(db: AsyncSession, write: Callable[[sqlite3.Connection], Written]) -> Written:
    """``started_write``'s transaction on the session's own connection, in one call on its thread (continuing
    the transaction the session opened, if any)."""
    connection = await db.connection()
    raw = await connection.get_raw_connection()
    aio = raw.driver_connection  # aiosqlite.Connection: runs functions on the connection's own thread
    assert aio is not None
    result: Written = await aio._execute(write, aio._conn)
    return result
