"""A Litestar ``Store`` on the ``sessions`` table: server-side sessions on every profile.

Two rules make a session cost nothing and reveal nothing (docs/security.md, "Sessions"):

- A row is stored only when there is something to keep (a login, data a later request needs). A request
  without a session — a health check, the login page, a static file — stores nothing and sends no session
  cookie; one whose session was emptied deletes its row and expires the cookie. CSRF needs no session: its
  token is a signed cookie of its own (Litestar's ``CSRFConfig``).
- The row's key is the SHA-256 of the session id; only the cookie carries the id itself. A copy of the
  table (a database read, a backup) holds no id that a cookie could carry, and SHA-256 of a 256-bit random
  id cannot be turned back into one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.types import Empty
from litestar.utils.dataclass import extract_dataclass_items
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import SessionRow


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(UTC) + timedelta(seconds=seconds)


def storage_key(session_id: str) -> str:
    """The key a session is stored under: the SHA-256 of its id (hex), never the id itself."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SQLSessionStore(Store):
    """``sessions`` returns the app's session factory once the lifespan has opened the database. Every
    method takes the session id as the cookie carries it and stores / finds it by ``storage_key``."""

    def __init__(self, sessions: Callable[[], async_sessionmaker[AsyncSession]]) -> None:
        self._get_sessions = sessions

    @property
    def _sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._get_sessions()

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        async with self._sessions.begin() as db:
            row = await db.get(SessionRow, storage_key(key))
            if row is None:
                db.add(SessionRow(key=storage_key(key), data=data, expires_at=_expiry(expires_in)))
            else:
                row.data, row.expires_at = data, _expiry(expires_in)

    async def get_with_expiry(self, key: str, renew_for: int | timedelta | None = None) -> tuple[bytes, datetime | None] | None:
        """The session's data and when it expires, in one read (``None``: no such live session)."""
        async with self._sessions.begin() as db:
            row = await db.get(SessionRow, storage_key(key))
            if row is None:
                return None
            if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
                await db.delete(row)
                return None
            if renew_for is not None and row.expires_at is not None:
                row.expires_at = _expiry(renew_for)
            return row.data, row.expires_at

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        found = await self.get_with_expiry(key, renew_for)
        return found[0] if found is not None else None

    async def delete(self, key: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(delete(SessionRow).where(SessionRow.key == storage_key(key)))

    async def delete_all(self) -> None:
        async with self._sessions.begin() as db:
            await db.execute(delete(SessionRow))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self._sessions() as db:
            expires_at = await db.scalar(select(SessionRow.expires_at).where(SessionRow.key == storage_key(key)))
        if expires_at is None:
            return None
        return max(0, int((expires_at - datetime.now(UTC)).total_seconds()))


ROTATE = "_rotate_session_id"
_NEW_ID = "patchwire.new_session_id"
_LOADED = "patchwire.loaded_session"
"""(session id, stored data, expiry) as read for this request: unchanged data is not written back."""


class RotatingSessionBackend(ServerSideSessionBackend):
    """Gives the session a fresh id when a handler sets ``ROTATE`` (log-in, registration), and
    deletes the old one, so a session id planted before log-in is worthless afterwards."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        return connection.scope.get(_NEW_ID) or super().get_session_id(connection)  # type: ignore[return-value]

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        store = self.config.get_store_from_app(connection.scope["app"])
        session_id = connection.cookies.get(self.config.key)
        if not session_id or session_id == "null":  # "null": an older version's log-out cookie; nothing to read
            return {}
        if not isinstance(store, SQLSessionStore):
            return await super().load_from_connection(connection)
        found = await store.get_with_expiry(session_id)
        if found is None:
            return {}
        data, expires_at = found
        connection.scope[_LOADED] = (session_id, data, expires_at)  # type: ignore[literal-required]
        return self.deserialize_data(data)

    async def store_in_message(self, scope_session: Any, message: Any, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        if isinstance(scope_session, dict) and scope_session.pop(ROTATE, False):
            if old := connection.cookies.get(self.config.key):
                await self.delete(old, store=self.config.get_store_from_app(connection.scope["app"]))
            connection.scope[_NEW_ID] = self.generate_session_id()  # type: ignore[literal-required]
        if scope_session is Empty or not scope_session:
            await self._forget(message, connection)
        elif self._unchanged(scope_session, connection):
            # Nothing to write: the same data, and the stored expiry is far enough away. Only the cookie
            # goes out again (its max-age slides); the row is rewritten once half its lifetime is used.
            self._send_cookie(message, self.get_session_id(connection))
        else:
            await super().store_in_message(scope_session, message, connection)

    async def _forget(self, message: Any, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Nothing to keep (no session, an emptied one, a log-out): no row is written. A row this request
        loaded is deleted, and a session cookie the browser sent is expired; without one, nothing is sent."""
        session_id = connection.cookies.get(self.config.key)
        if not session_id:
            return
        if connection.scope.get(_LOADED) is not None:
            await self.delete(session_id, store=self.config.get_store_from_app(connection.scope["app"]))
        self._send_cookie(message, "null", expires=0, max_age=0)  # Max-Age wins over Expires: both say "now"

    def _send_cookie(self, message: Any, value: str, **extra: Any) -> None:
        params = dict(extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys()))
        MutableScopeHeaders.from_message(message).add(
            "Set-Cookie", Cookie(value=value, key=self.config.key, **{**params, **extra}).to_header(header=""))

    def _unchanged(self, scope_session: Any, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        loaded = connection.scope.get(_LOADED)
        if not loaded or not isinstance(scope_session, dict) or not scope_session:
            return False
        session_id, data, expires_at = loaded
        if session_id != self.get_session_id(connection) or self.serialize_data(scope_session, connection.scope) != data:
            return False
        if self.config.max_age is None or expires_at is None:
            return expires_at is None and self.config.max_age is None
        return (expires_at - datetime.now(UTC)).total_seconds() > self.config.max_age / 2


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]
