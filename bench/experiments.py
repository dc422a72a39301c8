"""Measure the fixes proposed in docs/benchmarks.md: the two benchmarks, today vs. patched.

    .venv/bin/python bench/experiments.py [--profile embedded|postgres|redis|all]
                                          [--variants none,pool,config]

Each variant applies bench/patches.py monkeypatches to the worker only (a separate
``bench/patched_worker.py`` process for postgres/redis, this process for embedded), then runs
``throughput`` (300 executions, 4 producers, concurrency 10) and ``overhead`` (3 reps).
Not a test: nothing is asserted. Results go to bench/results/experiments.json.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import overhead  # noqa: E402
import patches  # noqa: E402
import throughput  # noqa: E402

from engine import eventloop  # noqa: E402

NAME = "experiments"


async def run_variant(penv: common.ProfileEnv, mode: str, names: tuple[str, ...], args: Any) -> dict[str, Any]:
    inproc = mode == "inproc"
    worker_patches = () if inproc else names  # in-process: applied to this process instead
    with patches.applied(names) if inproc else contextlib.nullcontext():
        tp = await throughput.measure(penv, mode, args.concurrency, args.executions, args.producers, args.worker_cprofile,
                                      worker_patches)
        oh = await overhead.end_to_end(penv, mode, args.reps, args.concurrency, args.worker_cprofile, worker_patches)
    return {"patches": list(names), "throughput": tp, "overhead": oh}


async def engine_only() -> dict[str, Any]:
    """The pure engine (no database, no queue), today and with ``config``: the only patch it sees."""
    out = {}
    for names in ((), ("config",)):
        with patches.applied(names):
            tp = await throughput.engine_only(1000, 10)
            oh = await overhead.engine_only(5)
        out["+".join(names) or "none"] = {
            "executions_per_s": tp["executions_per_s"], "cpu_ms_per_execution": tp["cpu_ms_per_execution"],
            "chain_total_s_median": oh["total_s_median"],
            "per_step_ms_above_sleep_floor": oh["per_step_ms_above_sleep_floor"]}
    return out


async def main_async(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {"engine only": await engine_only()}
    variants = [tuple(n for n in v.split("+") if n and n != "none") for v in args.variants.split(",")]
    for profile in common.selected_profiles(args.profile):
        mode = common.worker_mode(profile, args.worker)
        key = f"{profile} c={args.concurrency}"
        results[key] = {}
        with common.profile_env(profile, NAME) as penv:
            common.configure_logging(args.log_level, penv.data_dir / "bench.log")
            for names in variants:
                if profile == "embedded" and names == ("pool",):
                    continue  # SQLite: the pool patch changes nothing
                label = "+".join(names) or "none"
                print(f"{profile}: patches {label} ...", flush=True)
                t0 = time.perf_counter()
                results[key][label] = await run_variant(penv, mode, names, args)
                results[key][label]["bench_wall_s"] = time.perf_counter() - t0
            common.configure_logging("WARNING", Path("/dev/null"))
    return results


def report(results: dict[str, Any]) -> str:
    engine = results["engine only"]
    lines = ["engine only (5-node no-op / 40 delays): " + "; ".join(
        f"{label}: {r['executions_per_s']:.0f} exec/s, {r['cpu_ms_per_execution']:.2f} ms CPU/exec, "
        f"{r['per_step_ms_above_sleep_floor']:.3f} ms/step above the sleep floor" for label, r in engine.items()), ""]
    rows = []
    for profile, variants in results.items():
        if profile == "engine only":
            continue
        for label, r in variants.items():
            tp, oh = r["throughput"], r["overhead"]
            cpu = tp.get("worker_cpu_ms_per_execution", tp.get("process_cpu_ms_per_execution"))
            rows.append([profile, label, tp["executions_per_s"], cpu, tp["peak_rss_mib"],
                         oh["started_to_finished_s_median"], oh["per_step_ms_started_to_finished_median"],
                         oh["per_step_ms_submit_to_finished_median"]])
    return "\n".join(lines) + common.table(["profile", "patches", "exec/s", "CPU ms/exec", "peak RSS MiB",
                         "40 delays: run s", "ms/step (run)", "ms/step (submit)"], rows)


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--variants", default="none,pool,config")
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    results = eventloop.run(main_async(args))
    common.show_and_save(NAME, results, report(results), save=not args.no_save)


if __name__ == "__main__":
    main()
