"""PostgreSQL pools ping a connection on checkout only when it was idle for more than ``ping_idle_after``
(engine/database.py): a dead idle connection is replaced before anyone uses it; one used a moment ago is
trusted (one round trip less per session), and if the server dropped it meanwhile, its first query fails
once and the pool is recycled."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.database import make_engine

pytestmark = pytest.mark.postgres


async def _kill(url: str, pid: int) -> None:
    """Terminate backend ``pid`` from another connection and wait until it is gone."""
    admin = make_engine(url, ping_idle_after=None)
    try:
        async with admin.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.commit()
            # a new transaction per look: pg_stat_activity is a snapshot taken once per transaction
            while await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}):
                await conn.rollback()
                await asyncio.sleep(0.01)
    finally:
        await admin.dispose()


async def _pid(engine: object) -> int:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def test_an_idle_connection_that_died_is_pinged_and_replaced(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_idle_after=0.0)
    try:
        first = await _pid(engine)
        await _kill(postgres_url, first)
        assert await _pid(engine) != first  # the checkout's ping found it dead: a new one, no error
    finally:
        await engine.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_idle_after=3600.0)
    try:
        first = await _pid(engine)
        await _kill(postgres_url, first)
        with pytest.raises(DBAPIError) as failed:  # trusted, not pinged: its first query finds it dead
            await _pid(engine)
        assert failed.value.connection_invalidated
        assert await _pid(engine) != first  # and the pool has replaced it
    finally:
        await engine.dispose()


async def test_pinging_at_every_checkout_is_still_available(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_idle_after=None)
    try:
        first = await _pid(engine)
        await _kill(postgres_url, first)
        assert await _pid(engine) != first
    finally:
        await engine.dispose()
