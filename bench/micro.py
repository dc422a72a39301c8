"""Micro-benchmarks behind docs/benchmarks.md's analysis: what one store write, one config parse and
the connection pool cost, today and with the proposed fixes (implemented here, not in engine/).

    .venv/bin/python bench/micro.py [--profile embedded|postgres|all] [--nodes 200]

1. ``parse_config``: today's code vs. the same code with ``msgspec.structs.fields`` cached.
2. The run store, per node, sequentially (one execution, no contention):
   - today: two ``SQLRunStore.commit`` calls (the ``running`` row with ``node.started``, the outcome
     with ``node.completed``), each one bare-driver transaction through the store's group writer
     (the ORM path with 4 transactions measured in docs/benchmarks.md is gone);
   - the floor: the same two transitions with the bare driver (aiosqlite / asyncpg): a 2-statement
     transaction, one CTE statement (autocommit), and one CTE that also does ``pg_notify``.
3. The pool under a worker's concurrency: 10 tasks doing today's writes per node at once (the group
   writer commits them together), with
   SQLAlchemy's default pool (5 + 10 overflow, overflow connections closed on return) vs.
   ``pool_size=concurrency + 5``; counts the connections opened.

Not a test: nothing is asserted. Results go to bench/results/micro.json.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import msgspec  # noqa: E402
from sqlalchemy import event  # noqa: E402

import engine.config as config_module  # noqa: E402
from engine import eventloop  # noqa: E402
from engine.database import make_engine, make_sessionmaker  # noqa: E402
from engine.events import Event  # noqa: E402
from engine.models import Execution, Workflow, WorkflowVersion  # noqa: E402
from engine.sqlstore import SQLRunStore  # noqa: E402
from engine.store import NodeRunRecord, Transition  # noqa: E402
from nodes.set import SetConfig  # noqa: E402

NAME = "micro"


# -- 1. parse_config ---------------------------------------------------------------------------

def bench_parse_config(n: int = 5000) -> dict[str, float]:
    raw = {"fields": [{"name": "f1", "value": "v1"}], "keep_existing": True}
    config_module.parse_config(SetConfig, raw)
    t0 = time.perf_counter()
    for _ in range(n):
        config_module.parse_config(SetConfig, raw)
    today = (time.perf_counter() - t0) / n * 1e6

    original = msgspec.structs.fields
    cache: dict[Any, Any] = {}

    def cached_fields(t: Any) -> Any:
        if t not in cache:
            cache[t] = original(t)
        return cache[t]

    config_module.msgspec.structs.fields = cached_fields  # the proposed lru_cache, applied in this process only
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            config_module.parse_config(SetConfig, raw)
        cached = (time.perf_counter() - t0) / n * 1e6
    finally:
        config_module.msgspec.structs.fields = original
    t0 = time.perf_counter()
    for _ in range(n):
        msgspec.convert(raw, SetConfig, strict=False)
    whole = (time.perf_counter() - t0) / n * 1e6
    return {"today_us": today, "fields_cached_us": cached, "one_msgspec_convert_us": whole}


# -- 2. store writes ---------------------------------------------------------------------------

async def seed(sessions: Any) -> int:
    owner = await common.create_owner(sessions)
    async with sessions.begin() as db:
        workflow = Workflow(owner_id=owner, name="micro")
        db.add(workflow)
        await db.flush()
        version = WorkflowVersion(workflow_id=workflow.id, number=1, graph={})
        db.add(version)
        await db.flush()
        execution = Execution(workflow_id=workflow.id, owner_id=owner, version_id=version.id, status="running",
                              trigger="manual", input={})
        db.add(execution)
        await db.flush()
        return execution.id


def record(i: int, status: str) -> NodeRunRecord:
    now = time.time()
    return NodeRunRecord(f"node{i}", f"Node {i}", "set", 1, status, input=[{"a": 1}],
                         output={"main": [{"a": 1}]} if status == "succeeded" else None,
                         started_at=now, finished_at=now if status == "succeeded" else None)


def make_event(execution_id: int, type_: Any, seq: int) -> Event:
    return Event(type=type_, execution_id=execution_id, workflow_id=1, seq=seq, at=time.time())


async def today_node(store: SQLRunStore, execution_id: int, i: int, seq: int) -> None:
    """Two commits of the run store (``running`` + ``node.started``, outcome + ``node.completed``);
    in a chain the run loop merges a node's outcome with its successor's start into one."""
    await store.commit(execution_id, Transition([record(i, "running")], [make_event(execution_id, "node.started", seq)]))
    await store.commit(execution_id, Transition([record(i, "succeeded")],
                                                [make_event(execution_id, "node.completed", seq + 1)]))


async def bench_store(penv: common.ProfileEnv, nodes: int) -> dict[str, Any]:
    engine = make_engine(penv.settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        out: dict[str, Any] = {}
        for label, make, node in (("today_2_commits", lambda: SQLRunStore(sessions), today_node),):
            execution_id = await seed(sessions)
            store = make()
            for i in range(10):  # warm up: statement caches, connections
                await node(store, execution_id, 10_000 + i, 10_000 + 2 * i)
            cpu0, t0 = common.cpu_seconds(), time.perf_counter()
            for i in range(nodes):
                await node(store, execution_id, i, 2 * i + 1)
            wall, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
            out[label] = {"wall_ms_per_node": wall / nodes * 1000, "cpu_ms_per_node": cpu / nodes * 1000}
        return out
    finally:
        await engine.dispose()


# -- 2b. the floor: the same transition with the database driver alone -------------------------

PG_TRANSITION = """
WITH r AS (
    INSERT INTO node_runs (execution_id, node_id, node_name, node_type, attempt, status, input, output, error,
                           started_at, finished_at)
    VALUES ($1, $2, $3, $4, 1, $5, $6::jsonb, $7::jsonb, NULL, $8, $9)
    ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET
        status = excluded.status, output = excluded.output, error = excluded.error, finished_at = excluded.finished_at
    RETURNING 1)
INSERT INTO execution_events (execution_id, seq, data, created_at) SELECT $1, $10, $11::jsonb, now() FROM r
"""
PG_TRANSITION_NOTIFY = PG_TRANSITION.replace(
    "INSERT INTO execution_events (execution_id, seq, data, created_at) SELECT $1, $10, $11::jsonb, now() FROM r",
    ", e AS (INSERT INTO execution_events (execution_id, seq, data, created_at) "
    "SELECT $1, $10, $11::jsonb, now() FROM r RETURNING 1) SELECT pg_notify($12, $11::text) FROM e").replace(
    "RETURNING 1)\n,", "RETURNING 1),")
SQLITE_UPSERT = """
    INSERT INTO node_runs (execution_id, node_id, node_name, node_type, attempt, status, input, output, error,
                           started_at, finished_at)
    VALUES (?, ?, ?, ?, 1, ?, ?, ?, NULL, ?, ?)
    ON CONFLICT (execution_id, node_id, attempt) DO UPDATE SET
        status = excluded.status, output = excluded.output, error = excluded.error, finished_at = excluded.finished_at
"""
SQLITE_EVENT = "INSERT INTO execution_events (execution_id, seq, data, created_at) VALUES (?, ?, ?, ?)"


async def bench_floor(penv: common.ProfileEnv, nodes: int) -> dict[str, Any]:
    """Per node (two transitions), with the driver SQLAlchemy uses underneath, no ORM, no Core."""
    import json
    from datetime import UTC, datetime

    engine = make_engine(penv.settings.database_url)
    execution_id = await seed(make_sessionmaker(engine))
    await engine.dispose()
    out: dict[str, Any] = {}

    def args(i: int, status: str, seq: int) -> list[Any]:
        now = datetime.now(UTC)
        return [execution_id, f"node{i}", f"Node {i}", "set", status, json.dumps([{"a": 1}]),
                json.dumps({"main": [{"a": 1}]}) if status == "succeeded" else None, now,
                now if status == "succeeded" else None, seq, json.dumps({"type": "node." + status, "seq": seq})]

    if penv.profile == "embedded":
        import aiosqlite

        from engine.queue.sqlite import path_from_url

        async with aiosqlite.connect(path_from_url(penv.settings.database_url), isolation_level=None) as conn:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")

            async def transition(a: list[Any]) -> None:
                await conn.execute("BEGIN")
                await conn.execute(SQLITE_UPSERT, [str(v) if isinstance(v, datetime) else v for v in a[:9]])
                await conn.execute(SQLITE_EVENT, (a[0], a[9], a[10], str(datetime.now(UTC))))
                await conn.execute("COMMIT")

            variants = {"aiosqlite_tx_2_statements": transition}
            out.update(await _time_floor(variants, args, nodes))
    else:
        import asyncpg

        conn = await asyncpg.connect(penv.settings.database_url)
        try:
            async def two_statement_tx(a: list[Any]) -> None:
                async with conn.transaction():
                    await conn.execute(SQLITE_UPSERT.replace("?", "{}").format(*(f"${i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9)))
                                       .replace("$6,", "$6::jsonb,").replace("$7,", "$7::jsonb,"), *a[:9])
                    await conn.execute("INSERT INTO execution_events (execution_id, seq, data, created_at) "
                                       "VALUES ($1, $2, $3::jsonb, now())", a[0], a[9], a[10])

            async def one_statement(a: list[Any]) -> None:
                await conn.execute(PG_TRANSITION, *a)

            async def one_statement_notify(a: list[Any]) -> None:
                await conn.execute(PG_TRANSITION_NOTIFY, *a, f"pw_execution_{a[0]}")

            variants = {"asyncpg_tx_2_statements": two_statement_tx, "asyncpg_1_statement_cte": one_statement,
                        "asyncpg_1_statement_cte_with_pg_notify": one_statement_notify}
            out.update(await _time_floor(variants, args, nodes))
        finally:
            await conn.close()
    return out


async def _time_floor(variants: dict[str, Any], args: Any, nodes: int) -> dict[str, Any]:
    out = {}
    offset = 0
    for label, transition in variants.items():
        offset += 100_000
        for i in range(10):
            await transition(args(offset + 50_000 + i, "running", offset + 50_000 + 2 * i))
        cpu0, t0 = common.cpu_seconds(), time.perf_counter()
        for i in range(nodes):
            await transition(args(offset + i, "running", offset + 2 * i))
            await transition(args(offset + i, "succeeded", offset + 2 * i + 1))
        wall, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
        out[label] = {"wall_ms_per_node": wall / nodes * 1000, "cpu_ms_per_node": cpu / nodes * 1000}
    return out


# -- 3. the pool under concurrency ----------------------------------------------------------------

async def bench_pool(penv: common.ProfileEnv, nodes: int, concurrency: int = 10) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, kwargs in (("default_pool", {}), (f"pool_size_{concurrency + 5}", {"pool_size": concurrency + 5})):
        engine = make_engine(penv.settings.database_url, **kwargs)
        sessions = make_sessionmaker(engine)
        opened = [0]
        event.listen(engine.sync_engine.pool, "connect", lambda *_, o=opened: o.__setitem__(0, o[0] + 1))
        try:
            ids = [await seed(sessions) for _ in range(concurrency)]
            store = SQLRunStore(sessions)
            per_task = max(nodes // concurrency, 1)

            async def task(execution_id: int, store: SQLRunStore = store, per_task: int = per_task) -> None:
                for i in range(per_task):
                    await today_node(store, execution_id, i, 2 * i + 1)

            cpu0, t0 = common.cpu_seconds(), time.perf_counter()
            await asyncio.gather(*(task(e) for e in ids))
            wall, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
            total = per_task * concurrency
            out[label] = {"node_transitions_per_s": total / wall, "cpu_ms_per_node": cpu / total * 1000,
                          "connections_opened": opened[0], "nodes": total}
        finally:
            await engine.dispose()
    return out


async def main_async(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {"parse_config": bench_parse_config()}
    for profile in common.selected_profiles(args.profile):
        if profile == "redis":
            continue  # the same PostgreSQL database as the postgres profile
        with common.profile_env(profile, NAME) as penv:
            db = "sqlite" if profile == "embedded" else "postgresql"
            print(f"{db}: store writes, {args.nodes} nodes ...", flush=True)
            results[db] = {"store": await bench_store(penv, args.nodes),
                           "floor": await bench_floor(penv, args.nodes),
                           "pool": await bench_pool(penv, args.nodes)}
    return results


def report(results: dict[str, Any]) -> str:
    p = results["parse_config"]
    lines = [f"parse_config(SetConfig): today {p['today_us']:.1f} µs, with fields() cached "
             f"{p['fields_cached_us']:.1f} µs, one msgspec.convert {p['one_msgspec_convert_us']:.1f} µs", ""]
    rows = []
    for db in ("sqlite", "postgresql"):
        if db not in results:
            continue
        for label, r in {**results[db]["store"], **results[db]["floor"]}.items():
            rows.append([db, label, r["wall_ms_per_node"], r["cpu_ms_per_node"]])
    if rows:
        lines += ["store writes per node (sequential, one execution):",
                  common.table(["database", "write path", "wall ms/node", "CPU ms/node"], rows), ""]
    rows = []
    for db in ("sqlite", "postgresql"):
        if db not in results:
            continue
        for label, r in results[db]["pool"].items():
            rows.append([db, label, r["node_transitions_per_s"], r["cpu_ms_per_node"], r["connections_opened"]])
    if rows:
        lines += ["today's 4 writes per node from 10 concurrent tasks:",
                  common.table(["database", "pool", "nodes/s", "CPU ms/node", "connections opened"], rows)]
    return "\n".join(lines)


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    args = parser.parse_args()
    results = eventloop.run(main_async(args))
    common.show_and_save(NAME, results, report(results), save=not args.no_save)


if __name__ == "__main__":
    main()
