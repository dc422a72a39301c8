"""The executions table's query: owner-scoped, filtered, keyset-paginated by id (never OFFSET).

Indexes (migration 0012_exec_indexes): ``(owner_id, id)`` serves the unfiltered page and the time
range, ``(owner_id, status, id)`` and ``(owner_id, trigger, id)`` the status and trigger filters,
``(workflow_id, id)`` the workflow filter — each one a backwards index range scan that stops after
``PAGE_SIZE + 1`` rows, however deep the cursor.

A search on the trigger input cannot use an index (it matches any value at any depth of the JSON), so
it is *bounded*: one page looks at the newest ``SEARCH_WINDOW`` executions that pass the other
filters (below the cursor) and no more. When the window ends before a page is full, the page says so
and its "older" link continues below the window, so paging through finds every match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.models import Execution, NodeRun, Workflow
from webapp.executions.filters import Cursor, ExecutionFilter, like_pattern
from webapp.executions.rows import ExecutionRow, epoch

PAGE_SIZE = 50
SEARCH_WINDOW = 5_000

_SQLITE_MATCH = text("EXISTS (SELECT 1 FROM json_tree(executions.input) AS t WHERE t.atom IS NOT NULL "
                     "AND CAST(t.atom AS TEXT) LIKE :pattern ESCAPE '\\')")
_POSTGRES_MATCH = text("EXISTS (SELECT 1 FROM jsonb_path_query(executions.input, 'strict $.**') AS v(value) "
                       "WHERE jsonb_typeof(v.value) NOT IN ('object', 'array') "
                       "AND (v.value #>> '{}') ILIKE :pattern)")


@dataclass
class Page:
    rows: list[ExecutionRow]
    older: int | None = None
    """The ``before`` cursor of the next older page (None: this is the last)."""
    newer: int | None = None
    """The ``after`` cursor of the next newer page (None: this is the first)."""
    searched_to: int | None = None
    """A search stopped at its window: it looked at executions down to (up to, on a newer page) this id."""


def _columns() -> Select[Any]:
    return select(Execution.id, Execution.owner_id, Execution.workflow_id, Execution.status, Workflow.name,
                  Execution.trigger, Execution.created_at, Execution.started_at, Execution.finished_at,
                  Execution.error["node_name"].as_string(), Execution.error["message"].as_string()
                  ).join(Workflow, Workflow.id == Execution.workflow_id)


def _conditions(owner_id: int, filters: ExecutionFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Execution.owner_id == owner_id]
    if filters.statuses:
        where.append(Execution.status.in_(sorted(filters.statuses)))
    if filters.workflow_id is not None:
        where.append(Execution.workflow_id == filters.workflow_id)
    if filters.trigger is not None:
        where.append(Execution.trigger == filters.trigger)
    if filters.since is not None:
        where.append(Execution.created_at >= filters.since)
    if filters.until is not None:
        where.append(Execution.created_at < filters.until)
    return where


def _cursor(cursor: Cursor) -> list[ColumnElement[bool]]:
    if cursor.before is not None:
        return [Execution.id < cursor.before]
    if cursor.after is not None:
        return [Execution.id > cursor.after]
    return []


def _order(cursor: Cursor) -> Any:
    return Execution.id.asc() if cursor.after is not None else Execution.id.desc()


def _row(values: Any) -> ExecutionRow:
    (id_, owner_id, workflow_id, status, name, trigger, created, started, finished, failed_node, error) = values
    return ExecutionRow(id_, owner_id, workflow_id, status, name, trigger, epoch(created), epoch(started),
                        epoch(finished), failed_node=failed_node, error=(error or "")[:200] or None)


async def read_page(db: AsyncSession, owner_id: int, filters: ExecutionFilter, cursor: Cursor,
                    size: int = PAGE_SIZE) -> Page:
    """One page of the owner's executions, newest first."""
    where = [*_conditions(owner_id, filters), *_cursor(cursor)]
    searched_to = None
    if filters.search:
        window = select(Execution.id).where(*where).order_by(_order(cursor)).limit(SEARCH_WINDOW).subquery()
        bounds = (await db.execute(select(func.count(), func.min(window.c.id), func.max(window.c.id)))).one()
        if bounds[0] == SEARCH_WINDOW:
            searched_to = bounds[1] if cursor.after is None else bounds[2]
        low, high = bounds[1], bounds[2]
        where.append(and_(Execution.id >= (low or 0), Execution.id <= (high or 0)))
        where.append(_match(db, filters.search))
    query = _columns().where(*where).order_by(_order(cursor)).limit(size + 1)
    rows = [_row(r) for r in (await db.execute(query)).all()]
    page = _paged(rows, cursor, size, searched_to)
    running = await _running_nodes(db, [r.id for r in page.rows if r.status == "running"])
    for row in page.rows:
        row.node = running.get(row.id)
    return page


def _match(db: AsyncSession, search: str) -> ColumnElement[bool]:
    clause = _POSTGRES_MATCH if db.bind.dialect.name == "postgresql" else _SQLITE_MATCH
    exact = clause.bindparams(pattern=like_pattern(search))
    if not _PLAIN.fullmatch(search):
        return exact  # type: ignore[return-value]
    # a cheap first pass on the JSON text (it can only match more: keys too) spares the walk of most inputs;
    # only for text that JSON writes as it is (the stored text escapes quotes, backslashes, non-ASCII)
    text_match = cast(Execution.input, Text).ilike(like_pattern(search), escape="\\")
    return and_(text_match, exact)  # type: ignore[arg-type]


_PLAIN = re.compile(r"[ -!#-\[\]-~]+")
"""Printable ASCII but the quote and the backslash."""


def _paged(rows: list[ExecutionRow], cursor: Cursor, size: int, searched_to: int | None) -> Page:
    more = len(rows) > size
    rows = rows[:size]
    if cursor.after is not None:  # read upwards: the newest of them last
        rows.reverse()
        newer = rows[0].id if more and rows else (searched_to if searched_to is not None else None)
        older = rows[-1].id if rows else cursor.after + 1
        return Page(rows, older=older, newer=newer, searched_to=searched_to)
    older = rows[-1].id if more and rows else searched_to
    newer = rows[0].id if rows and not cursor.first_page else (cursor.before - 1 if cursor.before and not rows
                                                                 else None)
    return Page(rows, older=older, newer=newer, searched_to=searched_to)


async def _running_nodes(db: AsyncSession, execution_ids: list[int]) -> dict[int, str]:
    if not execution_ids:
        return {}
    rows = await db.execute(select(NodeRun.execution_id, NodeRun.node_name).where(
        NodeRun.execution_id.in_(execution_ids), NodeRun.status == "running"))
    return {execution_id: name for execution_id, name in rows.all()}


async def read_rows(db: AsyncSession, owner_id: int, execution_ids: list[int]) -> list[ExecutionRow]:
    """These executions of the owner (others' and missing ones are left out)."""
    if not execution_ids:
        return []
    query = _columns().where(Execution.owner_id == owner_id, Execution.id.in_(execution_ids))
    return [_row(r) for r in (await db.execute(query)).all()]
