"""The executions page with 100,000 executions: server time of ``GET /executions`` (SQLite and PostgreSQL).

100,000 executions are bulk-inserted (two owners, 70 % / 30 %; several workflows; mostly succeeded, some
failed / crashed, the newest 20 running; triggers manual / cli / retry; an input with an order number and a
customer), then ``ANALYZE``. Each page is fetched through Litestar's in-process ``AsyncTestClient`` as the
logged-in owner (handler + middleware + template, no socket), ``--reps`` times after 3 warm-ups; the
query plans of each page (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN ANALYZE``) are recorded.

    .venv/bin/python bench/executions_page.py                    # SQLite and PostgreSQL
    .venv/bin/python bench/executions_page.py --profile embedded --executions 20000
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    base_parser,
    chain_document,
    create_owner,
    percentile,
    profile_env,
    selected_profiles,
    show_and_save,
    table,
)
from sqlalchemy import event, func, insert, select, text, update  # noqa: E402

from engine import eventloop  # noqa: E402
from engine.database import make_engine, make_sessionmaker  # noqa: E402
from engine.models import Execution, Workflow  # noqa: E402

PASSWORD = "correct horse battery staple"
STATUS_MIX = ["succeeded"] * 90 + ["failed"] * 8 + ["crashed"] * 2
RUNNING = 20
"""The newest executions are running, with a live lease: otherwise the server's in-process worker (embedded) would
take unfinished rows for lost jobs (the reconciler) and run thousands of them during the measurement."""
TRIGGERS = ["manual", "cli", "cli", "retry"]
CHUNK = 5_000


async def _setup(client: Any, sessions: Any, executions: int) -> dict[str, Any]:
    """Register the owner (logged in), create workflows for two owners, bulk-insert the executions."""
    from engine.executions import create_execution
    from nodes import registry
    from webapp.workflows.services import WorkflowService

    await client.get("/login")
    csrf = {"x-csrftoken": client.cookies["csrftoken"]}
    await client.post("/register", data={"email": "bench@example.com", "password": PASSWORD}, headers=csrf)
    owners = [await create_owner(sessions, "bench@example.com"), await create_owner(sessions, "other@example.com")]
    workflows: list[tuple[int, int, int]] = []  # (owner, workflow, version)
    for owner, count in ((owners[0], 5), (owners[1], 2)):
        for n in range(count):
            async with sessions() as db:
                workflow = await WorkflowService(db, owner, registry).import_document(chain_document(
                    f"Workflow {owner}-{n}", [("set", f"Set {k}", {"fields": [{"name": "x", "value": "1"}]})
                                              for k in range(1, 5)]))
                execution = await create_execution(db, workflow, registry)  # for its version (never enqueued)
                await db.commit()
                workflows.append((owner, workflow.id, execution.version_id))
    now = datetime.now(UTC)
    first = now - timedelta(seconds=executions)
    for offset in range(0, executions, CHUNK):
        rows = [_row(i, first, workflows) for i in range(offset, min(executions, offset + CHUNK))]
        async with sessions.begin() as db:
            await db.execute(insert(Execution), rows)
    async with sessions.begin() as db:
        newest = await db.scalar(select(func.max(Execution.id))) - RUNNING
        await db.execute(update(Execution).where(Execution.id > newest).values(
            status="running", finished_at=None, error=None, lease_token="bench", lease_until=time.time() + 86400))
    async with sessions.begin() as db:
        await db.execute(text("ANALYZE"))
        newest_a = await db.scalar(select(Execution.id).where(Execution.owner_id == owners[0])
                                   .order_by(Execution.id.desc()).limit(1))
        oldest_a = await db.scalar(select(Execution.id).where(Execution.owner_id == owners[0])
                                   .order_by(Execution.id.asc()).limit(1))
        some_workflow = await db.scalar(select(Workflow.id).where(Workflow.owner_id == owners[0]).limit(1))
    return {"owners": owners, "newest": newest_a, "oldest": oldest_a, "workflow": some_workflow, "first": first}


def _row(i: int, first: datetime, workflows: list[tuple[int, int, int]]) -> dict[str, Any]:
    owner, workflow_id, version_id = workflows[(i * 7) % 10 % len(workflows)] if i % 10 < 7 else workflows[5 + i % 2]
    status = STATUS_MIX[(i * 37) % len(STATUS_MIX)]
    created = first + timedelta(seconds=i)
    return {"workflow_id": workflow_id, "owner_id": owner, "version_id": version_id, "status": status,
            "trigger": TRIGGERS[i % len(TRIGGERS)], "created_at": created,
            "started_at": created + timedelta(milliseconds=20),
            "finished_at": created + timedelta(milliseconds=20 + i % 900),
            "input": {"order": f"ORD-{i:06d}", "customer": {"name": f"cust{i % 5000}", "tier": "gold" if i % 9 else "std"},
                      "amount": i % 1000},
            "error": {"type": "NodeError", "node_name": "Set 3", "message": "something broke"}
            if status in ("failed", "crashed") else None}


def _cases(setup: dict[str, Any]) -> dict[str, str]:
    day = (setup["first"] + timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M")
    later = (setup["first"] + timedelta(hours=11)).strftime("%Y-%m-%dT%H:%M")
    deep = setup["oldest"] + 200
    return {
        "first page": "/executions",
        "first page (htmx partial)": "/executions?status=",
        "status=failed": "/executions?status=failed",
        "status=failed,crashed": "/executions?status=failed&status=crashed",
        "workflow + succeeded": f"/executions?workflow={setup['workflow']}&status=succeeded",
        "trigger=retry": "/executions?trigger=retry",
        "time range (1 h)": f"/executions?from={day}&to={later}",
        "deep page (cursor near the oldest)": f"/executions?before={deep}",
        "deep page, status=failed": f"/executions?status=failed&before={deep}",
        "search, rare value (ORD-012345)": "/executions?q=ORD-012345",
        "search, common value (cust42)": "/executions?q=cust42",
        "search + status=failed": "/executions?q=gold&status=failed",
    }


async def _plans(client: Any, engine: Any, url: str) -> list[str]:
    """The plans of the SELECTs on executions that one request makes (run on the benchmark's own engine)."""
    app_engine = client.app.state.runtime.engine
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "executions" in statement and "sessions" not in statement:
            statements.append((statement, parameters))

    event.listen(app_engine.sync_engine, "before_cursor_execute", capture)
    try:
        await client.get(url)
    finally:
        event.remove(app_engine.sync_engine, "before_cursor_execute", capture)
    postgres = engine.dialect.name == "postgresql"
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in statements:
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
            result = await conn.exec_driver_sql(prefix + statement, parameters)
            rows = result.all()
            plans.append("\n".join(str(r[0]) if postgres else f"{'  ' * (r[1] and 1)}{r[-1]}" for r in rows))
    return plans


async def measure(profile: str, executions: int, reps: int) -> dict[str, Any]:
    from litestar.testing import AsyncTestClient

    from webapp.app import create_app

    with profile_env(profile, "execpage") as deployment:
        engine = make_engine(deployment.settings.database_url)  # the app's engine lives on the client's loop
        async with AsyncTestClient(app=create_app(deployment.settings)) as client:
            started = time.perf_counter()
            setup = await _setup(client, make_sessionmaker(engine), executions)
            insert_s = time.perf_counter() - started
            results: dict[str, Any] = {"executions": executions, "insert_s": round(insert_s, 1), "cases": {}}
            for name, url in _cases(setup).items():
                headers = {"hx-request": "true"} if "htmx" in name else {}
                times = []
                for i in range(reps + 3):
                    begin = time.perf_counter()
                    response = await client.get(url, headers=headers)
                    elapsed = (time.perf_counter() - begin) * 1000
                    assert response.status_code == 200, (url, response.status_code, response.text[:300])
                    if i >= 3:
                        times.append(elapsed)
                rows = response.text.count('class="exec-row"')
                results["cases"][name] = {"url": url, "rows": rows, "ms": times, "plans": await _plans(client, engine, url)}
        await engine.dispose()
    return results


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    profiles = [p for p in selected_profiles(args.profile) if p != "redis"]  # redis: the same database as postgres
    results: dict[str, Any] = {}
    lines = []
    for profile in profiles:
        measured = eventloop.run(measure(profile, args.executions, args.reps))
        database = {"embedded": "SQLite", "postgres": "PostgreSQL"}[profile]
        results[database] = measured
        rows = [[name, case["rows"], percentile(case["ms"], 0.5), percentile(case["ms"], 0.95), max(case["ms"])]
                for name, case in measured["cases"].items()]
        lines += [f"{database}: GET /executions with {args.executions} executions (inserted in {measured['insert_s']} s), "
                  f"ms of in-process server time, {args.reps} requests each",
                  table(["page", "rows", "p50", "p95", "max"], rows), ""]
    show_and_save("executions_page", results, "\n".join(lines), save=not args.no_save)


if __name__ == "__main__":
    main()
