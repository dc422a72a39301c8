"""The scheduler tests run on a migrated SQLite and PostgreSQL database (``migrated_db``, as the engine tests)."""

from __future__ import annotations

from tests.engine.conftest import migrated_db

__all__ = ["migrated_db"]
