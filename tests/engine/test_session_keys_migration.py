"""Migration 0013 on real SQLite and PostgreSQL: live sessions are re-keyed by the hash of their id (nobody
is logged out), empty and expired ones are deleted; a downgrade deletes them all (a hash cannot be undone)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from engine.database import sync_url
from engine.migrate import downgrade, upgrade
from engine.models import SessionRow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_live_sessions_are_rekeyed_and_the_rest_deleted(database_url: str) -> None:
    upgrade(database_url, "0012")
    engine = create_engine(sync_url(database_url))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(SessionRow.__table__.insert(), [
            {"key": "live-id", "data": b'{"user_id": 1}', "expires_at": now + timedelta(days=3)},
            {"key": "empty-id", "data": b"{}", "expires_at": now + timedelta(days=3)},
            {"key": "expired-id", "data": b'{"user_id": 2}', "expires_at": now - timedelta(seconds=1)},
        ])
    upgrade(database_url)
    with engine.connect() as conn:
        assert conn.execute(select(SessionRow.key, SessionRow.data)).all() == [(hashlib.sha256(b"live-id").hexdigest(), b'{"user_id": 1}')]
    downgrade(database_url, "0012")
    with engine.connect() as conn:
        assert conn.execute(select(SessionRow.key)).all() == []
    engine.dispose()
