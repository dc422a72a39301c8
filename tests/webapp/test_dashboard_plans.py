"""The dashboard's queries read executions through an index, never by scanning the table (SQLite's
planner, checked with EXPLAIN QUERY PLAN). PostgreSQL chooses its plans from table statistics, so an
empty test database says nothing there: docs/overview-and-home.md has its plans at 100,000 executions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from engine.database import make_engine, make_sessionmaker
from tests.webapp.conftest import Browser
from tests.webapp.dashboard_rows import user_id
from webapp.dashboard.home import HomeService
from webapp.dashboard.overview import OverviewService


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """This module only: SQLite."""
    return f"sqlite:///{tmp_path / 'plans.db'}"


@dataclass
class Recorded:
    """A database connection of the test's own (not the app's, which its worker shares): ``call(fn)``
    runs ``fn(db)``, and ``seen`` holds every statement it ran, with its parameters."""

    call: Callable[..., Any]
    seen: list[tuple[str, Any]] = field(default_factory=list)

    def plans(self) -> list[str]:
        """SQLite's plan lines about the executions table, for each recorded statement that reads it."""
        reading = [(statement, parameters) for statement, parameters in self.seen if "FROM executions" in statement]

        async def explain(db: Any) -> list[str]:
            conn = await db.connection()
            lines = []
            for statement, parameters in reading:  # a copy taken first: these EXPLAINs are recorded too
                rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
                lines += [row[-1] for row in rows if "executions" in row[-1]]
            return lines

        return self.call(explain)


@pytest.fixture
def recorded(client: Any, database_url: str) -> Iterator[Recorded]:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    def call(fn: Callable[[Any], Any]) -> Any:
        async def run() -> Any:
            async with sessions() as db:
                return await fn(db)

        return client.blocking_portal.call(run)

    result = Recorded(call)

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        result.seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield result
    client.blocking_portal.call(engine.dispose)


def test_the_home_counts_and_failures_use_indexes(browser: Browser, db_call: Any, recorded: Recorded) -> None:
    browser.register("plans@example.com")
    owner = user_id(db_call, "plans@example.com")
    now = datetime.now(UTC)
    recorded.call(lambda db: HomeService(db, owner).counts(now))
    recorded.call(lambda db: HomeService(db, owner).recent_failures(now))
    plans = recorded.plans()
    assert len(plans) == 3, plans
    assert all("USING INDEX" in line or "USING COVERING INDEX" in line for line in plans), plans
    # the counts by status: the owner's (owner, status, id) index of the executions page, or the status index
    assert any("ix_executions_owner_status_id" in line or "ix_executions_status" in line for line in plans), plans
    assert any("ix_executions_owner_created" in line for line in plans), plans


def test_the_overview_reads_one_workflows_window_through_its_index(browser: Browser, db_call: Any,
                                                                   recorded: Recorded) -> None:
    browser.register("plans-overview@example.com")
    owner = user_id(db_call, "plans-overview@example.com")
    wid = browser.create_workflow("Planned")
    recorded.call(lambda db: OverviewService(db, owner).overview(wid, "week", datetime.now(UTC)))
    plans = recorded.plans()
    assert len(plans) == 4, plans  # hourly counts, durations per hour and overall, top errors
    assert all("SEARCH executions USING INDEX ix_executions_workflow_created" in line for line in plans), plans
