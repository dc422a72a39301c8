"""The queue's own ceiling: SAQ jobs per second with a no-op job function, per profile's queue.

    .venv/bin/python bench/queue_only.py [--profile embedded|postgres|redis|all] [--jobs 1000]

Same shape as bench/throughput.py — 4 producers enqueue ``--jobs`` jobs (with the options
``engine.executions.enqueue_execution`` uses: key, timeout, heartbeat, retries) while one in-process
SAQ ``Worker`` (concurrency 10, the timers ``engine.worker.build_worker`` sets) runs a job that
does nothing — but no database rows, no run loop, no events. What is left is the cost of
``SQLiteQueue`` / SAQ's ``PostgresQueue`` / ``RedisQueue`` per job.
Not a test: nothing is asserted. Results go to bench/results/queue_only.json.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from saq import Worker  # noqa: E402

from engine import eventloop  # noqa: E402
from engine.queue import queue_from_url  # noqa: E402

NAME = "queue_only"


async def measure(penv: common.ProfileEnv, jobs: int, producers: int, concurrency: int) -> dict[str, Any]:
    queue = queue_from_url(penv.settings.queue_url)
    await queue.connect()
    done = asyncio.Event()
    finished = [0]
    target = [0]

    async def noop(ctx: dict[str, Any], *, n: int) -> int:
        finished[0] += 1
        if finished[0] >= target[0]:
            done.set()
        return n

    worker = Worker(queue, functions=[("noop", noop)], concurrency=concurrency, dequeue_timeout=1.0,
                    timers={"sweep": 5, "abort": 1, "schedule": 1, "worker_info": 10})
    worker.SIGNALS = []
    task = asyncio.create_task(worker.start())
    while not worker.tasks:
        await asyncio.sleep(0.001)

    async def submit(start: int, count: int) -> None:
        for i in range(start, start + count):
            await queue.enqueue("noop", key=f"job-{i}", n=i, timeout=3660, heartbeat=10, retries=3,
                                retry_delay=1.0, retry_backoff=True)

    async def run(offset: int, total: int) -> float:
        finished[0], target[0] = 0, total
        done.clear()
        share = total // producers
        t0 = time.perf_counter()
        await asyncio.gather(*(submit(offset + p * share, share) for p in range(producers)))
        await asyncio.wait_for(done.wait(), timeout=120)
        return time.perf_counter() - t0

    try:
        await run(0, 40)  # warm up
        cpu0 = common.cpu_seconds()
        wall = await run(1_000_000, jobs - jobs % producers)
        cpu = common.cpu_seconds() - cpu0
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)
        await queue.disconnect()
    total = jobs - jobs % producers
    return {"jobs": total, "concurrency": concurrency, "wall_s": wall, "jobs_per_s": total / wall,
            "cpu_ms_per_job": cpu / total * 1000, "cpu_note": "this process: producers and worker"}


async def main_async(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for profile in common.selected_profiles(args.profile):
        print(f"{profile}: {args.jobs} no-op jobs ...", flush=True)
        with common.profile_env(profile, NAME) as penv:
            common.configure_logging(args.log_level, penv.data_dir / "bench.log")
            results[profile] = await measure(penv, args.jobs, args.producers, args.concurrency)
            common.configure_logging("WARNING", Path("/dev/null"))
    return results


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    results = eventloop.run(main_async(args))
    text = common.table(["queue", "jobs", "jobs/s", "CPU ms/job (producers + worker)"],
                        [[p, r["jobs"], r["jobs_per_s"], r["cpu_ms_per_job"]] for p, r in results.items()])
    common.show_and_save(NAME, results, text, save=not args.no_save)


if __name__ == "__main__":
    main()
