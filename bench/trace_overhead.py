"""Where the time of one 40-delay execution goes: wall time per run-store call and per publish.

    .venv/bin/python bench/trace_overhead.py [--profile embedded|postgres|redis|all] [--patch store,...]

Runs the overhead workflow (Manual Trigger → 40 × Delay 0.01 s) a few times on an in-process
worker whose run store and event sink are wrapped with timers. The chain is sequential, so the
wall times add up: store calls + publishes + the Delay nodes' sleeps + the rest (engine,
scheduling). ``--patch`` applies bench/patches.py to this process first (to compare).
Not a test: nothing is asserted. Results go to bench/results/trace_overhead.json.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import overhead  # noqa: E402
import patches  # noqa: E402

import engine.sqlstore  # noqa: E402
from engine import eventloop  # noqa: E402
from nodes import registry  # noqa: E402
from webapp.executions.services import start  # noqa: E402

NAME = "trace_overhead"
STORE_METHODS = ("claim", "resume_state", "commit")
BACKEND_METHODS = ("claim", "read", "write")


class Timings:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, key: str, seconds: float) -> None:
        self.total[key] += seconds
        self.count[key] += 1

    def wrap_sync(self, key: str, func: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - t0)
        return timed

    def wrap(self, key: str, func: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - t0)
        return timed


@contextlib.contextmanager
def instrumented(timings: Timings, sink: Any) -> Any:
    """Wrap the run store's methods (``store.*``: the wait for the group writer included), its
    database backends' (``db.*``: the transaction itself) and the sink's publishes."""
    undo: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, timings.wrap(key, original))

    def wrap_sync(owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)
        undo.append((owner, name, original))
        setattr(owner, name, timings.wrap_sync(key, original))

    wrap_sync(engine.sqlstore._SQLiteBackend, "write_now", "db.write_now")  # inline (SQLite, not locked)
    wrap(engine.sqlstore._SQLiteBackend, "_in_thread", "db.in_thread")  # the thread path (SQLite)
    for name in STORE_METHODS:
        wrap(engine.sqlstore.SQLRunStore, name, f"store.{name}")
    for backend in (engine.sqlstore._SQLiteBackend, engine.sqlstore._PostgresBackend):
        for name in BACKEND_METHODS:
            wrap(backend, name, f"db.{name}")
    name = "publish_many" if hasattr(sink, "publish_many") else "publish"  # SafeSink.publish calls publish_many
    undo.append((sink, name, None))
    setattr(sink, name, timings.wrap(f"sink.{name}", getattr(sink, name)))
    try:
        yield
    finally:
        for owner, name, original in reversed(undo):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


async def trace(penv: common.ProfileEnv, reps: int) -> dict[str, Any]:
    async with common.Stack(penv, "inproc", 10, label="trace") as stack:
        owner = await common.create_owner(stack.sessions)
        workflow = await common.import_workflow(stack.sessions, owner, overhead.document())
        per_rep: list[dict[str, Any]] = []
        async with stack.sessions() as db:
            for i in range(reps + 1):
                timings = Timings()
                with instrumented(timings, stack._sink):
                    execution = await start(db, stack.queue, registry, workflow, input={"rep": i})
                    await common.wait_terminal(stack, [execution.id], timeout=60, poll=0.02)
                (row,) = await common.executions(stack, [execution.id])
                if i:
                    per_rep.append({"run_s": common.ts(row.finished_at) - common.ts(row.started_at),
                                    "total": dict(timings.total), "count": dict(timings.count)})
    keys = sorted({k for r in per_rep for k in r["total"]})
    best = min(per_rep, key=lambda r: r["run_s"])
    median_run = common.median([r["run_s"] for r in per_rep])
    rows = {k: {"calls": best["count"].get(k, 0), "total_ms": best["total"].get(k, 0.0) * 1000,
                "ms_per_call": best["total"].get(k, 0.0) * 1000 / max(best["count"].get(k, 1), 1)} for k in keys}
    accounted = sum(v for k, v in best["total"].items() if not k.startswith("db."))  # db.* is inside store.*
    return {"run_s_median": median_run, "run_s_min": best["run_s"], "calls": rows,
            "sleeps_s": overhead.IDEAL, "rest_ms": (best["run_s"] - accounted - overhead.IDEAL) * 1000}


async def main_async(args: Any) -> dict[str, Any]:
    names = tuple(n for n in args.patch.split(",") if n)
    results: dict[str, Any] = {}
    with patches.applied(names):
        for profile in common.selected_profiles(args.profile):
            print(f"{profile}: tracing {args.reps} runs (patches: {', '.join(names) or 'none'}) ...", flush=True)
            with common.profile_env(profile, NAME) as penv:
                common.configure_logging(args.log_level, penv.data_dir / "bench.log")
                results[f"{profile}{'+' + '+'.join(names) if names else ''}"] = await trace(penv, args.reps)
                common.configure_logging("WARNING", Path("/dev/null"))
    return results


def report(results: dict[str, Any]) -> str:
    out = []
    for label, r in results.items():
        rows = [[k, v["calls"], v["total_ms"], v["ms_per_call"], v["total_ms"] / overhead.STEPS]
                for k, v in sorted(r["calls"].items(), key=lambda kv: -kv[1]["total_ms"])]
        rows.append(["Delay sleeps (ideal)", overhead.STEPS, overhead.IDEAL * 1000, overhead.DELAY * 1000,
                     overhead.DELAY * 1000])
        rows.append(["rest: engine, scheduling, sleep overshoot", "", r["rest_ms"], "", r["rest_ms"] / overhead.STEPS])
        out += [f"{label}: fastest run {r['run_s_min']:.3f} s (median {r['run_s_median']:.3f} s), started→finished",
                common.table(["what", "calls", "total ms", "ms/call", "ms per step"], rows), ""]
    return "\n".join(out)


def main() -> None:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--patch", default="", help=f"comma-separated bench/patches.py names: {', '.join(patches.NAMES)}")
    args = parser.parse_args()
    if args.worker not in ("default", "inproc"):
        parser.error("the trace needs the worker in-process")
    results = eventloop.run(main_async(args))
    common.show_and_save(NAME, results, report(results), save=not args.no_save)


if __name__ == "__main__":
    main()
