"""Crash recovery time: a worker running executions is SIGKILLed; how long until they run again?

Per profile and round: a worker process (``patchwire worker``; ``patchwire serve`` on the embedded
profile) starts ``--executions`` executions of Manual Trigger → Delay(15 s) → HTTP Request (a loopback
server) → Delay(0.05 s) → Set. Once every one is ``running``, a standby worker is started (postgres /
redis; on the embedded profile the killed process is restarted at once instead — there is no second
process there), the first worker is killed with SIGKILL, and each execution's recovery time is the
time from the kill to its next ``workflow.started`` event (the resumed job). The standby is the next
round's victim. Every execution must then succeed with no node run twice. The redis profile runs a
private ``redis-server`` on a free port (the PostgreSQL side uses a ``pw_bench_recovery_*`` database).

    .venv/bin/python bench/recovery.py [--profile all] [--rounds 3] [--executions 10]

Goal (the engine issue): another worker picks a killed worker's execution up within 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    _pg_admin,
    _pg_url,
    median,
    percentile,
    save_results,
    selected_profiles,
)
from engine import eventloop  # noqa: E402
from engine.queue import queue_from_url  # noqa: E402
from tests.durability.harness import (  # noqa: E402
    Deployment,
    PrivateRedis,
    Rows,
    WorkerProcess,
    free_port,
    start_executions,
)

FIRST_DELAY = 15.0
"""Long enough that every execution is still in its first Delay when its worker is killed."""


def sink() -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = b'{"ok": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


async def wait_all(rows: Rows, ids: list[int], status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = await rows.statuses(ids)
        if all(statuses.get(i) == status for i in ids):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"executions not all {status} after {timeout} s: {Counter(statuses.values())}")
        await asyncio.sleep(0.05)


def deployment_for(profile: str, directory: Path, redis_url: str | None) -> Deployment:
    if profile == "embedded":
        data = directory / "data"
        return Deployment(profile, directory, f"sqlite:///{data / 'patchwire.db'}", f"sqlite:///{data / 'queue.db'}")
    database = _pg_url(f"pw_bench_recovery_{profile}")
    if profile == "postgres":
        return Deployment(profile, directory, database, database)
    assert redis_url is not None
    return Deployment(profile, directory, database, redis_url, channels_url=database)


async def kill_and_recover(deployment: Deployment, rows: Rows, queue: Any, workflow_id: int, worker: WorkerProcess,
                           life: int, count: int, workers: list[WorkerProcess]) -> tuple[WorkerProcess, list[float], list[int]]:
    """One round: executions running on ``worker``, a standby ready, ``worker`` killed; the survivor and the samples."""
    ids = await start_executions(rows, queue, workflow_id, list(range(count)))
    await wait_all(rows, ids, "running", timeout=30)
    standby = None if deployment.embedded else WorkerProcess(deployment, life)
    if standby is not None:
        workers.append(standby)
        await standby.wait_ready()
    interrupted = [i for i, status in (await rows.statuses(ids)).items() if status == "running"]
    killed_at = worker.kill()
    if standby is None:  # embedded: the same deployment restarted
        standby = WorkerProcess(deployment, life)
        workers.append(standby)
        await standby.wait_ready()
    statuses, _ = await rows.wait_terminal(ids, timeout=90)
    if Counter(statuses.values()) != Counter({"succeeded": len(ids)}):
        raise SystemExit(f"[{deployment.profile}] not all succeeded: {Counter(statuses.values())}")
    starts = await rows.starts(ids)
    samples = []
    for i in interrupted:
        resumed = [t for t in starts.get(i, []) if t > killed_at]
        if not resumed:
            raise SystemExit(f"[{deployment.profile}] execution {i} never started again after the kill")
        samples.append(resumed[0] - killed_at)
    return standby, samples, ids


async def run_profile(deployment: Deployment, sink_url: str, rounds: int, count: int) -> dict[str, Any]:
    workflow_id = deployment.prepare(sink_url, first_delay=FIRST_DELAY)
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    await queue.connect()
    worker = WorkerProcess(deployment, 0)
    workers = [worker]
    samples: list[float] = []
    all_ids: list[int] = []
    try:
        await worker.wait_ready()
        for life in range(1, rounds + 1):
            worker, found, ids = await kill_and_recover(deployment, rows, queue, workflow_id, worker, life, count, workers)
            samples += found
            all_ids += ids
        runs = await rows.node_runs(all_ids)
        twice = [k for k, n in Counter((r.execution_id, r.node_id) for r in runs if r.status == "succeeded").items()
                 if n > 1]
        if twice:
            raise SystemExit(f"[{deployment.profile}] a node succeeded twice: {twice}")
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.stop()
        await queue.disconnect()
        await rows.close()
    return {"samples": [round(s, 2) for s in samples], "n": len(samples), "p50_s": round(median(samples), 2),
            "p99_s": round(percentile(samples, 0.99), 2), "max_s": round(max(samples), 2),
            "min_s": round(min(samples), 2), "rounds": rounds, "executions_per_round": count}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--executions", type=int, default=10)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    server, sink_url = sink()
    results: dict[str, Any] = {}
    try:
        for profile in selected_profiles(args.profile):
            directory = Path(tempfile.mkdtemp(prefix=f"pw_bench_recovery_{profile}_"))
            dbname = f"pw_bench_recovery_{profile}"
            redis = PrivateRedis(shutil.which("redis-server") or "redis-server", free_port(), directory) \
                if profile == "redis" else None
            try:
                if profile != "embedded":
                    _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                    _pg_admin(f'CREATE DATABASE "{dbname}"')
                if redis is not None:
                    redis.start()
                deployment = deployment_for(profile, directory, redis.url if redis else None)
                results[profile] = await run_profile(deployment, sink_url, args.rounds, args.executions)
            finally:
                if redis is not None:
                    redis.kill()
                if profile != "embedded":
                    _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                shutil.rmtree(directory, ignore_errors=True)
            r = results[profile]
            print(f"{profile:9} kill → resumed: n={r['n']} p50={r['p50_s']:.1f} s p99={r['p99_s']:.1f} s "
                  f"max={r['max_s']:.1f} s min={r['min_s']:.1f} s", flush=True)
    finally:
        server.shutdown()
    if not args.no_save:
        print("saved", save_results("recovery", results))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    eventloop.run(main())
