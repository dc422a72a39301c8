"""Schedule slots: how late does a slot's execution start, in real time?

Per profile: one worker process (``patchwire serve`` on the embedded profile, ``patchwire worker`` otherwise)
and ``--triggers`` active workflows *Schedule Trigger (every 10 s) → Set*, activated through
``engine.triggers.activation.activate``; all of them are due at the same instants (interval slots are anchored
at multiples of 10 s), so every 10 s that many slots fire in the same second. After ``--seconds`` the workflows
are deactivated and the executions drained. For each slot: slot time → execution ``created_at`` (the
scheduler's claim committed) and → ``started_at`` (the worker began running it). No injected clock.

    .venv/bin/python bench/schedule_latency.py [--profile embedded,postgres] [--triggers 30] [--seconds 120]

Goal (issue 16): a schedule slot starts its execution within 1 s (p99), over a few hundred slots.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import _pg_admin, _pg_url, median, percentile, save_results  # noqa: E402
from engine import eventloop  # noqa: E402
from engine.models import TERMINAL_STATUSES, Connection, Execution, Node, User, Workflow  # noqa: E402
from engine.triggers.activation import activate, deactivate  # noqa: E402
from nodes import registry  # noqa: E402
from tests.durability.harness import Deployment, Rows, WorkerProcess  # noqa: E402

PROFILES = ("embedded", "postgres")


async def make_workflows(rows: Rows, count: int) -> list[int]:
    async with rows.sessions.begin() as session:
        owner = User(email="bench@example.com", password_hash="x")
        session.add(owner)
        await session.flush()
        ids = []
        for i in range(count):
            workflow = Workflow(owner_id=owner.id, name=f"every 10 s #{i}")
            session.add(workflow)
            await session.flush()
            trigger = Node(id=f"t{workflow.id:031d}", workflow_id=workflow.id, type_name="schedule_trigger",
                           name="Every 10 s", config={"mode": "interval", "every": 10, "unit": "seconds"})
            done = Node(id=f"s{workflow.id:031d}", workflow_id=workflow.id, type_name="set", name="Set",
                        config={"fields": [{"name": "ok", "value": "yes"}], "keep_existing": True})
            session.add_all([trigger, done])
            await session.flush()
            session.add(Connection(workflow_id=workflow.id, source_node_id=trigger.id, source_port="main",
                                   target_node_id=done.id, target_port="main"))
            await session.flush()
            await activate(session, workflow, registry, author_id=owner.id, now=datetime.now(UTC))
            ids.append(workflow.id)
    return ids


async def stop_schedules(rows: Rows, ids: list[int]) -> None:
    async with rows.sessions.begin() as session:
        for workflow_id in ids:
            await deactivate(session, await session.get_one(Workflow, workflow_id), now=datetime.now(UTC))


async def drained(rows: Rows, ids: list[int], timeout: float = 120) -> list[Execution]:
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while True:
        async with rows.sessions() as session:
            found = list(await session.scalars(select(Execution).where(Execution.workflow_id.in_(ids))))
        if all(e.status in TERMINAL_STATUSES for e in found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def run_profile(profile: str, args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix=f"pw_sched_{profile}_"))
    database = None
    try:
        if profile == "embedded":
            url = f"sqlite:///{directory / 'data' / 'patchwire.db'}"
            queue = f"sqlite:///{directory / 'data' / 'queue.db'}"
        else:
            database = f"pw_bench_sched_{os.getpid()}"
            _pg_admin(f"CREATE DATABASE {database}")
            url = queue = _pg_url(database).replace("postgresql+asyncpg://", "postgresql://")
        deployment = Deployment(profile, directory, url, queue)
        deployment.cli("migrate")
        worker = WorkerProcess(deployment, 0)
        await worker.wait_ready()
        rows = Rows(url)
        try:
            ids = await make_workflows(rows, args.triggers)
            load_before = os.getloadavg()
            await asyncio.sleep(args.seconds)
            await stop_schedules(rows, ids)
            executions = await drained(rows, ids)
            load_after = os.getloadavg()
        finally:
            worker.stop()
            await rows.close()
        return summarise(executions, load_before, load_after)
    finally:
        if database is not None:
            _pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(directory, ignore_errors=True)


def summarise(executions: list[Execution], load_before: tuple[float, ...], load_after: tuple[float, ...]) -> dict[str, Any]:
    created, started = [], []
    for e in executions:
        slot = datetime.fromisoformat(e.input["timestamp"].replace("Z", "+00:00"))
        created.append((e.created_at - slot).total_seconds())
        if e.started_at is not None:
            started.append((e.started_at - slot).total_seconds())
    per_slot = Counter((e.workflow_id, e.input["timestamp"]) for e in executions)
    return {
        "slots": len(executions), "duplicates": sum(1 for n in per_slot.values() if n > 1),
        "statuses": dict(Counter(e.status for e in executions)),
        "created_p50_ms": median(created) * 1000, "created_p99_ms": percentile(created, 0.99) * 1000,
        "created_max_ms": max(created) * 1000 if created else None,
        "started_p50_ms": median(started) * 1000, "started_p99_ms": percentile(started, 0.99) * 1000,
        "started_max_ms": max(started) * 1000 if started else None,
        "loadavg_1m_before": load_before[0], "loadavg_1m_after": load_after[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded,postgres")
    parser.add_argument("--triggers", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    results = {}
    for profile in [p.strip() for p in args.profile.split(",") if p.strip()]:
        if profile not in PROFILES:
            parser.error(f"unknown profile {profile!r}: use {', '.join(PROFILES)}")
        results[profile] = eventloop.run(run_profile(profile, args))
        r = results[profile]
        print(f"{profile}: {r['slots']} slots, {r['duplicates']} duplicated, {r['statuses']}; slot → created "
              f"p50 {r['created_p50_ms']:.0f} ms, p99 {r['created_p99_ms']:.0f} ms; slot → started p50 "
              f"{r['started_p50_ms']:.0f} ms, p99 {r['started_p99_ms']:.0f} ms (max {r['started_max_ms']:.0f} ms); "
              f"load {r['loadavg_1m_before']:.2f} → {r['loadavg_1m_after']:.2f}", flush=True)
    if not args.no_save:
        print("saved", save_results("schedule_latency", results, {"triggers": args.triggers, "seconds": args.seconds}))


if __name__ == "__main__":
    main()
