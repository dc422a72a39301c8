"""Orchestration overhead: Manual Trigger → 40 × Delay(0.01 s), one execution at a time.

    .venv/bin/python bench/overhead.py [--profile embedded|postgres|redis|all] [--reps 5]

(a) the pure engine: ``engine.runner.execute`` with ``MemoryRunStore`` and ``MemorySink``;
(b) per profile, end to end: rows created with ``WorkflowService.import_document``, each execution
    started with ``webapp.executions.services.start`` (insert + commit, then enqueue), run by a real
    SAQ worker from ``engine.worker.build_worker``; we wait for the row to be terminal and read the
    timestamps the engine wrote.

overhead per step = (total − 40 × 0.01 s) / 40. Goal: < 1.25 ms per step. For comparison,
Windmill ≈ 2.1 s and Hatchet ≈ 1.2 s total for the same 40-step chain. Not a test: nothing is asserted.
"""

from __future__ import annotations

import asyncio
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

NAME = "overhead"
STEPS = 40
DELAY = 0.01
IDEAL = STEPS * DELAY
GOAL_MS = 1.25


def document() -> Any:
    steps = [("delay", f"Delay {i}", {"seconds": DELAY}) for i in range(1, STEPS + 1)]
    return common.chain_document("Overhead: 40 delays", steps)


def per_step_ms(total: float) -> float:
    return (total - IDEAL) / STEPS * 1000


# -- (a) the pure engine -----------------------------------------------------------------------

async def sleep_floor() -> float:
    """40 sequential ``asyncio.sleep(0.01)``: what the timers alone cost on this machine."""
    t0 = time.perf_counter()
    for _ in range(STEPS):
        await asyncio.sleep(DELAY)
    return time.perf_counter() - t0


async def engine_only(reps: int) -> dict[str, Any]:
    doc = document()
    totals: list[float] = []
    floors: list[float] = []
    async with httpx.AsyncClient() as http:
        for i in range(reps + 1):  # the first one warms up
            run = Run(execution_id=i + 1, workflow_id=1, graph=doc.graph, registry=registry,
                      store=MemoryRunStore(), sink=MemorySink(), http=http, trigger_input={"n": i})
            t0 = time.perf_counter()
            outcome = await execute(run)
            elapsed = time.perf_counter() - t0
            assert outcome.status == "succeeded", outcome
            floors.append(await sleep_floor())
            if i:
                totals.append(elapsed)
    floor = common.median(floors[1:])
    return {
        "reps": [{"total_s": t, "per_step_ms": per_step_ms(t)} for t in totals],
        "total_s_median": common.median(totals), "total_s_min": min(totals),
        "per_step_ms_median": per_step_ms(common.median(totals)), "per_step_ms_min": per_step_ms(min(totals)),
        "sleep_floor_s_median": floor,
        "per_step_ms_above_sleep_floor": (common.median(totals) - floor) / STEPS * 1000,
    }


# -- (b) end to end per profile ----------------------------------------------------------------

def breakdown(execution: Any, runs: list[Any]) -> dict[str, float]:
    """Where the run's time went, from the timestamps in the rows (all in ms)."""
    started, finished = common.ts(execution.started_at), common.ts(execution.finished_at)
    nodes = [(common.ts(r.started_at), common.ts(r.finished_at), r.node_type) for r in runs]
    in_node_excess = sum(f - s - (DELAY if kind == "delay" else 0) for s, f, kind in nodes)
    gaps = sum(b[0] - a[1] for a, b in zip(nodes, nodes[1:], strict=False))
    return {
        "head_ms": (nodes[0][0] - started) * 1000,  # job start → first node row stamped
        "in_node_excess_ms_per_step": in_node_excess / STEPS * 1000,  # node_started write + run wrapper
        "gap_ms_per_step": gaps / STEPS * 1000,  # node_finished write + events + scheduling of the next
        "tail_ms": (finished - nodes[-1][1]) * 1000,  # last node's row → execution finished_at
    }


async def end_to_end(penv: common.ProfileEnv, mode: str, reps: int, concurrency: int,
                     worker_cprofile: str | None, patches: tuple[str, ...] = (), poll: float = 0.25) -> dict[str, Any]:
    label = "overhead" + ("-" + "+".join(patches) if patches else "")
    async with common.Stack(penv, mode, concurrency, worker_cprofile=worker_cprofile, label=label,
                            patches=patches) as stack:
        owner = await common.create_owner(stack.sessions)
        workflow = await common.import_workflow(stack.sessions, owner, document())
        rows: list[dict[str, Any]] = []
        async with stack.sessions() as db:
            for i in range(reps + 1):  # the first one warms up (worker start, connections, caches)
                t_submit = time.time()
                execution = await start(db, stack.queue, registry, workflow, input={"rep": i},
                                        timeout=penv.settings.execution_timeout)
                t_enqueued = time.time()
                await common.wait_terminal(stack, [execution.id], timeout=60 if i else 120, poll=poll)
                (row,) = await common.executions(stack, [execution.id])
                assert row.status == "succeeded", (row.status, row.error)
                if not i:
                    continue
                runs = await common.node_runs(stack, execution.id)
                assert len(runs) == STEPS + 1, len(runs)
                finished, started = common.ts(row.finished_at), common.ts(row.started_at)
                rows.append({
                    "submit_to_finished_s": finished - t_submit,
                    "enqueue_to_finished_s": finished - t_enqueued,
                    "started_to_finished_s": finished - started,
                    "submit_s": t_enqueued - t_submit,
                    "pickup_s": started - t_enqueued,
                    **breakdown(row, runs),
                })
    def stat(key: str) -> tuple[float, float]:
        values = [r[key] for r in rows]
        return common.median(values), min(values)

    out: dict[str, Any] = {"worker": mode, "concurrency": concurrency, "poll_s": poll, "reps": rows}
    for key in ("submit_to_finished_s", "enqueue_to_finished_s", "started_to_finished_s", "submit_s", "pickup_s",
                "head_ms", "in_node_excess_ms_per_step", "gap_ms_per_step", "tail_ms"):
        out[f"{key}_median"], out[f"{key}_min"] = stat(key)
    for key in ("submit_to_finished_s", "started_to_finished_s"):
        out[f"per_step_ms_{key.removesuffix('_s')}_median"] = per_step_ms(out[f"{key}_median"])
        out[f"per_step_ms_{key.removesuffix('_s')}_min"] = per_step_ms(out[f"{key}_min"])
    return out


async def main_async(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print(f"engine only (MemoryRunStore + MemorySink), {args.reps} reps ...", flush=True)
    results["engine"] = await engine_only(args.reps)
    for profile in common.selected_profiles(args.profile):
        mode = common.worker_mode(profile, args.worker)
        print(f"{profile}: worker {mode}, concurrency {args.concurrency}, {args.reps} reps ...", flush=True)
        with common.profile_env(profile, NAME, args.concurrency) as penv:
            common.configure_logging(args.log_level, penv.data_dir / "bench.log")
            t0 = time.perf_counter()
            results[profile] = await end_to_end(penv, mode, args.reps, args.concurrency, args.worker_cprofile,
                                                poll=args.poll)
            results[profile]["bench_wall_s"] = time.perf_counter() - t0
            common.configure_logging("WARNING", Path("/dev/null"))
    return results


def report(results: dict[str, Any]) -> str:
    e = results["engine"]
    lines = [
        f"Manual Trigger → {STEPS} × Delay({DELAY} s); ideal {IDEAL:.2f} s; goal < {GOAL_MS} ms overhead per step",
        "",
        common.table(
            ["run", "total median s", "total min s", "overhead/step median ms", "overhead/step min ms"],
            [["engine only", e["total_s_median"], e["total_s_min"], e["per_step_ms_median"], e["per_step_ms_min"]]]
            + [[f"{p}: submit→finished", r["submit_to_finished_s_median"], r["submit_to_finished_s_min"],
                r["per_step_ms_submit_to_finished_median"], r["per_step_ms_submit_to_finished_min"]]
               for p, r in results.items() if p != "engine"]
            + [[f"{p}: started→finished", r["started_to_finished_s_median"], r["started_to_finished_s_min"],
                r["per_step_ms_started_to_finished_median"], r["per_step_ms_started_to_finished_min"]]
               for p, r in results.items() if p != "engine"],
        ),
        "",
        f"engine only: 40 bare asyncio.sleep({DELAY}) take {e['sleep_floor_s_median']:.3f} s here; "
        f"engine overhead above that floor: {e['per_step_ms_above_sleep_floor']:.3f} ms/step",
    ]
    profiles = [p for p in results if p != "engine"]
    if profiles:
        lines += ["", "breakdown (medians, from the rows' timestamps):", common.table(
            ["profile", "worker", "start() s", "pickup s", "head ms", "in-node excess ms/step",
             "between nodes ms/step", "tail ms"],
            [[p, results[p]["worker"], results[p]["submit_s_median"], results[p]["pickup_s_median"],
              results[p]["head_ms_median"], results[p]["in_node_excess_ms_per_step_median"],
              results[p]["gap_ms_per_step_median"], results[p]["tail_ms_median"]] for p in profiles])]
    return "\n".join(lines)


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=10, help="worker concurrency (settings default: 10)")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="seconds between the benchmark's reads of the execution row (default 0.25). The times "
                             "reported come from the timestamps the engine wrote, not from when the poll noticed; "
                             "a faster poll only adds the harness's own load (on the embedded profile each read "
                             "runs on the worker's event loop and delays it; 0.02 was the default before)")
    args = parser.parse_args()
    results = eventloop.run(main_async(args))
    common.show_and_save(NAME, results, report(results), save=not args.no_save, extra={"steps": STEPS, "delay_s": DELAY, "goal_ms_per_step": GOAL_MS})


if __name__ == "__main__":
    main()
