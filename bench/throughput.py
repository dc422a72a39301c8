"""Throughput: executions per second of a 5-node no-op workflow with concurrent producers.

    .venv/bin/python bench/throughput.py [--profile embedded|postgres|redis|all]
                                         [--executions 300] [--producers 4] [--concurrency 10,20,50]

Workflow: Manual Trigger → 4 × Set (one literal field each). ``--producers`` tasks submit
``--executions`` executions in total as fast as they can, each with
``webapp.executions.services.start`` (insert + commit, then enqueue); one SAQ worker
(``engine.worker.build_worker``) with the given concurrency runs them.

executions/s = completed / (last ``finished_at`` − first submit). Peak RSS is the worker's:
VmHWM of the ``patchwire worker`` process, or of this process when the worker is in-process
(then it includes the producers); it is reset before each measured run. Goal: ≥ 150
executions/s on the embedded and redis profiles. Not a test: nothing is asserted.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import httpx  # noqa: E402

from engine import eventloop  # noqa: E402
from engine.events import MemorySink  # noqa: E402
from engine.runner import Run, execute  # noqa: E402
from engine.store import MemoryRunStore  # noqa: E402
from nodes import registry  # noqa: E402
from webapp.executions.services import start  # noqa: E402

NAME = "throughput"
GOAL_EPS = 150
WARMUP = 10


def document() -> Any:
    steps = [("set", f"Set {i}", {"fields": [{"name": f"f{i}", "value": f"v{i}"}], "keep_existing": True})
             for i in range(1, 5)]
    return common.chain_document("Throughput: 4 sets", steps)


# -- the pure engine ---------------------------------------------------------------------------

async def engine_only(executions: int, concurrency: int) -> dict[str, Any]:
    """The same workflow on ``MemoryRunStore`` / ``MemorySink``: the engine's own CPU cost."""
    graph = document().graph
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, http: httpx.AsyncClient) -> None:
        async with gate:
            run = Run(execution_id=i, workflow_id=1, graph=graph, registry=registry, store=MemoryRunStore(),
                      sink=MemorySink(), http=http, trigger_input={"i": i})
            outcome = await execute(run)
            assert outcome.status == "succeeded", outcome

    async with httpx.AsyncClient() as http:
        await asyncio.gather(*(one(i, http) for i in range(WARMUP)))
        cpu0, t0 = common.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(one(i, http) for i in range(executions)))
        wall, cpu = time.perf_counter() - t0, common.cpu_seconds() - cpu0
    return {"executions": executions, "concurrency": concurrency, "wall_s": wall,
            "executions_per_s": executions / wall, "cpu_ms_per_execution": cpu / executions * 1000}


# -- end to end --------------------------------------------------------------------------------

async def submit_all(stack: common.Stack, workflow: Any, total: int, producers: int) -> list[int]:
    ids: list[int] = []
    share = [total // producers + (1 if i < total % producers else 0) for i in range(producers)]

    async def producer(count: int) -> None:
        async with stack.sessions() as db:
            for _ in range(count):
                execution = await start(db, stack.queue, registry, workflow, input={},
                                        timeout=stack.settings.execution_timeout)
                ids.append(execution.id)

    await asyncio.gather(*(producer(n) for n in share))
    return ids


async def measure(penv: common.ProfileEnv, mode: str, concurrency: int, total: int, producers: int,
                  worker_cprofile: str | None, patches: tuple[str, ...] = ()) -> dict[str, Any]:
    async with common.Stack(penv, mode, concurrency, worker_cprofile=worker_cprofile,
                            label=f"c{concurrency}{'-' + '+'.join(patches) if patches else ''}",
                            patches=patches) as stack:
        owner = await common.create_owner(stack.sessions)
        workflow = await common.import_workflow(stack.sessions, owner, document())
        warm = await submit_all(stack, workflow, WARMUP, producers)
        await common.wait_terminal(stack, warm, timeout=120, poll=0.05)
        pid = stack.worker_pid
        common.reset_peak_rss(pid)
        rss_before = common.peak_rss_mib(pid)
        worker_cpu0, self_cpu0, machine0 = common.cpu_seconds(pid), common.cpu_seconds(), common.machine_cpu()
        t0 = time.time()
        ids = await submit_all(stack, workflow, total, producers)
        t_submitted = time.time()
        await common.wait_terminal(stack, ids, timeout=300, poll=0.1)
        t_seen = time.time()
        worker_cpu, self_cpu = common.cpu_seconds(pid) - worker_cpu0, common.cpu_seconds() - self_cpu0
        machine_busy = common.machine_busy_cores(machine0, common.machine_cpu())
        peak = common.peak_rss_mib(pid)
        rows = await common.executions(stack, ids)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    last = max(common.ts(r.finished_at) for r in rows if r.finished_at)
    wall = last - t0
    latency = [common.ts(r.finished_at) - common.ts(r.created_at) for r in rows if r.finished_at]
    waiting = [common.ts(r.started_at) - common.ts(r.created_at) for r in rows if r.started_at]
    running = [common.ts(r.finished_at) - common.ts(r.started_at) for r in rows if r.finished_at]
    out = {
        "worker": mode, "concurrency": concurrency, "producers": producers, "executions": total,
        "statuses": statuses, "wall_s": wall, "executions_per_s": statuses.get("succeeded", 0) / wall,
        "submit_s": t_submitted - t0, "submits_per_s": total / (t_submitted - t0),
        "detect_lag_s": t_seen - last,
        "latency_p50_s": common.percentile(latency, 0.5), "latency_p95_s": common.percentile(latency, 0.95),
        "queue_wait_p50_s": common.percentile(waiting, 0.5), "run_p50_s": common.percentile(running, 0.5),
        "peak_rss_mib": peak, "rss_at_start_mib": rss_before, "machine_busy_cores": machine_busy,
        "rss_of": "worker process" if pid else "benchmark process (worker in-process, with the producers)",
    }
    measured = t_seen - t0
    if pid:
        out["worker_cpu_ms_per_execution"] = worker_cpu / total * 1000
        out["worker_cpu_utilisation"] = worker_cpu / measured  # 1.0 = one core busy all the time
        out["producer_cpu_ms_per_execution"] = self_cpu / total * 1000
    else:
        out["process_cpu_ms_per_execution"] = self_cpu / total * 1000
        out["process_cpu_utilisation"] = self_cpu / measured
    return out


async def main_async(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    print(f"engine only (MemoryRunStore + MemorySink), {args.executions} executions ...", flush=True)
    results["engine"] = await engine_only(args.executions, concurrencies[0])
    for profile in common.selected_profiles(args.profile):
        mode = common.worker_mode(profile, args.worker)
        runs = []
        with common.profile_env(profile, NAME) as penv:
            common.configure_logging(args.log_level, penv.data_dir / "bench.log")
            for concurrency in concurrencies:
                print(f"{profile}: worker {mode}, concurrency {concurrency}, {args.producers} producers, "
                      f"{args.executions} executions ...", flush=True)
                runs.append(await measure(penv, mode, concurrency, args.executions, args.producers,
                                          args.worker_cprofile))
            common.configure_logging("WARNING", Path("/dev/null"))
        results[profile] = {"runs": runs}
    return results


def report(results: dict[str, Any]) -> str:
    e = results["engine"]
    rows = []
    for profile, data in results.items():
        if profile == "engine":
            continue
        for r in data["runs"]:
            cpu = r.get("worker_cpu_ms_per_execution", r.get("process_cpu_ms_per_execution"))
            busy = r.get("worker_cpu_utilisation", r.get("process_cpu_utilisation"))
            rows.append([profile, r["worker"], r["concurrency"], r["executions_per_s"], r["wall_s"],
                         r["submits_per_s"], r["latency_p50_s"], r["latency_p95_s"], cpu, busy, r["machine_busy_cores"], r["peak_rss_mib"],
                         " ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items()))])
    return "\n".join([
        f"Manual Trigger → 4 × Set; goal ≥ {GOAL_EPS} executions/s (embedded, redis)",
        f"engine only (no database, no queue): {e['executions_per_s']:.0f} executions/s, "
        f"{e['cpu_ms_per_execution']:.2f} ms CPU per execution",
        "",
        common.table(["profile", "worker", "conc.", "exec/s", "wall s", "submits/s", "latency p50 s",
                      "latency p95 s", "worker CPU ms/exec", "worker cores busy", "machine cores busy", "peak RSS MiB", "statuses"], rows),
        "",
        "worker CPU ms/exec and cores busy: the worker process's CPU time per execution and over the run "
        "(1.0 = one core saturated);\nwith an in-process worker, the whole benchmark process (producers included). "
        f"machine cores busy: all processes on the machine (of {os.cpu_count()}), databases included.",
    ])


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--concurrency", default="10,20,50", help="comma-separated worker concurrencies")
    args = parser.parse_args()
    results = eventloop.run(main_async(args))
    common.show_and_save(NAME, results, report(results), save=not args.no_save, extra={"goal_executions_per_s": GOAL_EPS})


if __name__ == "__main__":
    main()
