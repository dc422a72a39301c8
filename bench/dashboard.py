"""The dashboard's queries at 100,000 executions: the home page's counts and recent failures, and a
workflow overview over the last day and week (SQLite and PostgreSQL).

One owner, two workflows, executions spread evenly over 30 days (ids growing with time, as they do
for real; 80 % succeeded, 20 % failed or crashed with six distinct errors). Times are the service
calls' wall time on the benchmark's own event loop (SQL + result handling, no HTTP), over fresh
sessions; PostgreSQL's tables are ANALYZEd first.

    .venv/bin/python bench/dashboard.py                         # embedded (SQLite) and postgres
    .venv/bin/python bench/dashboard.py --profile embedded --executions 20000 --repeat 5
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import base_parser, percentile, profile_env, selected_profiles, show_and_save, table  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from engine import eventloop  # noqa: E402
from engine.database import make_engine, make_sessionmaker  # noqa: E402
from engine.models import Execution, User, Workflow, WorkflowVersion  # noqa: E402
from webapp.dashboard.home import HomeService  # noqa: E402
from webapp.dashboard.overview import OverviewService  # noqa: E402

DAYS = 30
BATCH = 5000


def execution_rows(count: int, now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    for i in range(count):
        created = now - timedelta(seconds=DAYS * 86400 * (count - i) / count)
        status = rng.choice(["succeeded"] * 8 + ["failed", "crashed"])
        error = None if status == "succeeded" else {"node_name": rng.choice(["Fetch", "Parse"]), "type": "Error",
                                                    "message": f"failure {rng.randint(0, 2)}"}
        rows.append({"workflow_id": 1 + i % 2, "owner_id": 1, "version_id": 1 + i % 2, "status": status,
                     "trigger": "manual", "input": {}, "error": error, "created_at": created, "started_at": created,
                     "finished_at": created + timedelta(milliseconds=rng.randint(10, 5000))})
    return rows


async def seed(sessions: Any, count: int, now: datetime) -> None:
    async with sessions() as db:
        db.add(User(id=1, email="bench@example.com", password_hash="x"))
        await db.flush()
        db.add_all([Workflow(id=w, owner_id=1, name=f"w{w}") for w in (1, 2)])
        await db.flush()
        db.add_all([WorkflowVersion(id=w, workflow_id=w, number=1, graph={}) for w in (1, 2)])
        await db.flush()
        rows = execution_rows(count, now)
        for start in range(0, len(rows), BATCH):
            await db.execute(insert(Execution), rows[start:start + BATCH])
        await db.commit()
        if db.get_bind().dialect.name == "postgresql":
            await db.execute(text("ANALYZE executions"))
            await db.commit()


async def timed(sessions: Any, repeat: int, call: Any) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        async with sessions() as db:
            started = time.perf_counter()
            await call(db)
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95), "min_ms": min(times)}


async def home(db: Any) -> None:
    service, now = HomeService(db, 1), datetime.now(UTC)
    await service.counts(now)
    await service.recent_failures(now)


async def measure(database_url: str, count: int, repeat: int) -> dict[str, Any]:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        await seed(sessions, count, datetime.now(UTC))
        results = {"home": await timed(sessions, repeat, home)}
        for name in ("day", "week"):
            async def overview(db: Any, name: str = name) -> None:
                await OverviewService(db, 1).overview(1, name, datetime.now(UTC))
            results[f"overview_{name}"] = await timed(sessions, repeat, overview)
        return results
    finally:
        await engine.dispose()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(profile="embedded,postgres")
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for profile in selected_profiles(args.profile):
        with profile_env(profile, "dashboard") as deployment:
            results[profile] = eventloop.run(measure(deployment.settings.database_url, args.executions, args.repeat))
    rows = [[profile, what, r["p50_ms"], r["p95_ms"], r["min_ms"]]
            for profile, parts in results.items() for what, r in parts.items()]
    text_report = (f"{args.executions} executions over {DAYS} days, {args.repeat} calls each\n"
                   + table(["profile", "query", "p50 ms", "p95 ms", "min ms"], rows))
    show_and_save("dashboard", results, text_report, save=not args.no_save,
                  extra={"executions": args.executions, "repeat": args.repeat})


if __name__ == "__main__":
    main()
