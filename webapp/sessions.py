"""A Litestar ``Store`` on the ``sessions`` table: server-side sessions on every profile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.models import SessionRow


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(UTC) + timedelta(seconds=seconds)


class SQLSessionStore(Store):
    """``sessions`` returns the app's session factory once the lifespan has opened the database."""

    def __init__(self, sessions: Callable[[], async_sessionmaker[AsyncSession]]) -> None:
        self._get_sessions = sessions

    @property
    def _sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._get_sessions()

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        async with self._sessions.begin() as db:
            row = await db.get(SessionRow, key)
            if row is None:
                db.add(SessionRow(key=key, data=data, expires_at=_expiry(expires_in)))
            else:
                row.data, row.expires_at = data, _expiry(expires_in)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        async with self._sessions.begin() as db:
            row = await db.get(SessionRow, key)
            if row is None:
                return None
            if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
                await db.delete(row)
                return None
            if renew_for is not None and row.expires_at is not None:
                row.expires_at = _expiry(renew_for)
            return row.data

    async def delete(self, key: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(delete(SessionRow).where(SessionRow.key == key))

    async def delete_all(self) -> None:
        async with self._sessions.begin() as db:
            await db.execute(delete(SessionRow))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self._sessions() as db:
            expires_at = await db.scalar(select(SessionRow.expires_at).where(SessionRow.key == key))
        if expires_at is None:
            return None
        return max(0, int((expires_at - datetime.now(UTC)).total_seconds()))


ROTATE = "_rotate_session_id"
_NEW_ID = "patchwire.new_session_id"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Gives the session a fresh id when a handler sets ``ROTATE`` (log-in, registration), and
    deletes the old one, so a session id planted before log-in is worthless afterwards."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        return connection.scope.get(_NEW_ID) or super().get_session_id(connection)  # type: ignore[return-value]

    async def store_in_message(self, scope_session: Any, message: Any, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        if isinstance(scope_session, dict) and scope_session.pop(ROTATE, False):
            if old := connection.cookies.get(self.config.key):
                await self.delete(old, store=self.config.get_store_from_app(connection.scope["app"]))
            connection.scope[_NEW_ID] = self.generate_session_id()  # type: ignore[literal-required]
        await super().store_in_message(scope_session, message, connection)


@dataclass
class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]
