"""Run the Alembic migrations in ``migrations/`` programmatically."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from engine.database import connect_sqlite

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
INCREMENTAL = 2
"""``PRAGMA auto_vacuum`` value of ``INCREMENTAL``."""
log = logging.getLogger("patchwire.migrate")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
    ensure_incremental_vacuum(database_url)


def ensure_incremental_vacuum(database_url: str) -> bool:
    """SQLite: make sure the file can shrink after a prune (``auto_vacuum=INCREMENTAL``). A database made
    by Patchwire has it from its first connection (engine/database.py); an older file is converted once,
    with a ``VACUUM`` (it rewrites the file: it takes a while on a big database and needs as much free
    disk space again). True when it converted."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    conn = connect_sqlite(url.database, isolation_level=None)
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
            return False
        log.warning("converting %s to auto_vacuum=INCREMENTAL (a one-time VACUUM)", url.database)
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
        return True
    finally:
        conn.close()


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Alembic's env.py runs its own event loop: call it from a thread when one is running."""
    await asyncio.to_thread(upgrade, database_url, revision)
