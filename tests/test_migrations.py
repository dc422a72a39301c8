"""Migrations run up and down on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from engine.database import sync_url
from engine.migrate import downgrade, upgrade
from engine.models import Base


def _check(url: str) -> None:
    upgrade(url)
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    downgrade(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade(url)
    engine.dispose()


def test_sqlite_upgrade_downgrade_and_models_match(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_downgrade_and_models_match(postgres_url: str) -> None:
    _check(postgres_url)
