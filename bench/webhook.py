"""Issue 16: the webhook path against n8n and Node-RED — Webhook → Set → respond with the last node's output,
every execution stored, 20 concurrent connections (n8n's own benchmark workload).

Per profile, from scratch: a fresh data dir / database (``common.profile_env``), a real ``patchwire serve``
on loopback (embedded: its in-process worker on SQLite; redis: PostgreSQL + Redis queue and channels, plus one
``patchwire worker`` process, as docker-compose.yml), a user registered through the web app, the workflow
imported and activated through the web API (Webhook with ``response_mode=last_node`` → Set adding a field),
one request checked (the Set's output comes back, an execution row is stored), then the same wrk line as
``/work/shared/peers/run-peers.sh``; afterwards every stored execution is counted (all must have succeeded).
In both profiles the web process that holds a request runs its execution (docs/triggers.md, "Where the run goes
on"); ``--inline-runs 0`` measures the other way, every execution through the queue and its worker.

``--peers`` runs ``/work/shared/peers/run-peers.sh <seconds>`` first, in the same session, right before
Patchwire, records its figures, then stops the peers (``stop-peers.sh``) so that they do not share the cores
with Patchwire's run. ``--cprofile DIR`` runs the server (and worker) under cProfile (figures not comparable).

    .venv/bin/python bench/webhook.py --peers --profile embedded,redis --seconds 15
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from common import (  # noqa: E402
    PATCHWIRE,
    base_parser,
    cpu_seconds,
    profile_env,
    selected_profiles,
    show_and_save,
    table,
)
from sqlalchemy import func, select  # noqa: E402

from engine.database import make_engine, make_sessionmaker  # noqa: E402
from engine.graph import ConnectionSpec, NodeSpec, Position, WorkflowDocument  # noqa: E402
from engine.models import Execution  # noqa: E402

PEERS_DIR = Path(os.environ.get("PW_PEERS_SCRIPTS", "/work/shared/peers"))
PEERS_HOME = Path(os.environ.get("PEERS", str(Path.home() / ".cache" / "patchwire-peers")))
PASSWORD = "correct horse battery staple"
HOOK_PATH = "bench-hook"
BODY = {"customer": "acme", "priority": "high", "value": 42}  # what post.lua sends
SETTLE = 1.5


def wrk_argv(url: str, seconds: int, connections: int = 20) -> list[str]:
    """The peers' wrk line (run-peers.sh)."""
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(PEERS_DIR / "post.lua"), "--latency", url]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """req/s, p50/p75/p90/p99 in ms, requests, non-2xx, socket errors from wrk's ``--latency`` output."""
    result: dict[str, Any] = {"non_2xx": 0, "socket_errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M):
            result[f"p{pct}_ms"] = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non_2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(g) for g in m.groups())
    return result


# -- the peers ---------------------------------------------------------------------------------

def _n8n_executions() -> int | None:
    db = PEERS_HOME / "n8ndata" / ".n8n" / "database.sqlite"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute("SELECT count(*) FROM execution_entity").fetchone()[0])
    except sqlite3.Error:
        return None


def run_peers(seconds: int) -> dict[str, Any]:
    """run-peers.sh (starts both, loads each with wrk), its figures, then stop-peers.sh."""
    before = _n8n_executions()
    load = os.getloadavg()
    out = subprocess.run(["bash", str(PEERS_DIR / "run-peers.sh"), str(seconds)], capture_output=True, text=True,
                         timeout=seconds * 2 + 400).stdout
    time.sleep(2)  # n8n stores the last executions after it answered
    after = _n8n_executions()
    subprocess.run(["bash", str(PEERS_DIR / "stop-peers.sh")], capture_output=True, timeout=60)
    peers: dict[str, Any] = {}
    for name, chunk in zip(("node-red", "n8n"), re.split(r"^== .*$", out, flags=re.M)[1:], strict=False):
        figures = parse_wrk(chunk)
        figures["loadavg_before"] = load
        peers[name] = figures
    if "n8n" in peers and before is not None and after is not None:
        peers["n8n"]["executions_stored"] = after - before
    peers["raw"] = out
    return peers


# -- Patchwire ---------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _argv(command: list[str], cprofile: str | None, name: str) -> list[str]:
    if not cprofile:
        return [PATCHWIRE, *command]
    return [sys.executable, str(Path(__file__).with_name("cpu_profiled.py")), f"{cprofile}/{name}.prof", *command]


def start_processes(env: dict[str, str], workdir: Path, profile: str,
                    cprofile: str | None) -> tuple[list[subprocess.Popen[bytes]], str]:
    port = _free_port()
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    for key in ("CHANNELS_URL",):
        full.pop(key, None)
    if "REDIS_URL" not in env:
        full.pop("REDIS_URL", None)
    procs = [subprocess.Popen(_argv(["serve", "--host", "127.0.0.1", "--port", str(port)], cprofile,
                                    f"serve-{profile}"),
                              env=full, cwd=workdir, stdout=(workdir / "serve.log").open("wb"),
                              stderr=subprocess.STDOUT)]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if procs[0].poll() is not None:
            break
        time.sleep(0.2)
    else:
        stop_processes(procs)
        raise RuntimeError("patchwire serve did not start:\n" + (workdir / "serve.log").read_text()[-3000:])
    if procs[0].poll() is not None:
        raise RuntimeError("patchwire serve exited:\n" + (workdir / "serve.log").read_text()[-3000:])
    if profile != "embedded":
        procs.append(subprocess.Popen(_argv(["worker"], cprofile, f"worker-{profile}"), env=full, cwd=workdir,
                                      stdout=(workdir / "worker.log").open("wb"), stderr=subprocess.STDOUT))
    return procs, url


def _signal(procs: list[subprocess.Popen[bytes]], signum: signal.Signals | None) -> None:
    for proc in procs if signum is not None else ():
        proc.send_signal(signum)
    if signum == signal.SIGUSR2:
        time.sleep(1)  # the stats are written


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def document() -> WorkflowDocument:
    """Webhook (POST, custom path, respond with the last node's output) → Set (adds ``ok``, keeps the rest):
    the flow of n8n-webhook-set.json."""
    hook = NodeSpec(id="hook", type="webhook_trigger", name="Webhook", position=Position(0, 0),
                    config={"methods": "POST", "path": HOOK_PATH, "response_mode": "last_node"})
    set_ = NodeSpec(id="set", type="set", name="Set", position=Position(200, 0),
                    config={"fields": [{"name": "ok", "value": "true"}], "keep_existing": True})
    return WorkflowDocument(name="bench webhook set respond", nodes=[hook, set_],
                            connections=[ConnectionSpec(source="hook", target="set")])


def set_up_workflow(url: str) -> int:
    """Register, import the workflow, activate it (through the web app); the workflow id."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        client.get("/login")
        csrf = {"x-csrftoken": client.cookies["csrftoken"]}
        client.post("/register", data={"email": "bench@example.com", "password": PASSWORD}, headers=csrf)
        imported = client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                               data={"document": msgspec.json.encode(document()).decode()})
        assert imported.status_code == 201, imported.text
        workflow_id = int(imported.json()["workflow_id"])
        activated = client.post(f"/workflows/{workflow_id}/activate", headers={**csrf, "accept": "application/json"})
        assert activated.status_code in (200, 201) and activated.json()["active"], activated.text
        return workflow_id


async def count_executions(database_url: str, workflow_id: int, expected_at_least: int,
                           timeout: float = 120.0) -> dict[str, Any]:
    """Wait until no execution of the workflow is unfinished (at least ``expected_at_least`` stored) and the count
    has not moved for ``SETTLE`` s (requests wrk had in flight when it stopped still reach the database), then
    count them by status."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    try:
        while True:
            async with sessions() as db:
                rows = (await db.execute(select(Execution.status, func.count()).where(
                    Execution.workflow_id == workflow_id).group_by(Execution.status))).all()
            by_status = {status: int(n) for status, n in rows}
            total = sum(by_status.values())
            unfinished = sum(n for s, n in by_status.items() if s in ("queued", "running"))
            if total != last:
                last, since = total, time.monotonic()
            settled = time.monotonic() - since >= SETTLE
            if (unfinished == 0 and total >= expected_at_least and settled) or time.monotonic() > deadline:
                return {"total": total, "by_status": by_status}
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()


def run_profile(profile: str, seconds: int, connections: int, concurrency: int, cprofile: str | None,
                inline_runs: int | None = None) -> dict[str, Any]:
    with profile_env(profile, "webhook", concurrency=concurrency) as penv:
        env = dict(penv.env)
        if inline_runs is not None:
            env["PATCHWIRE_WEBHOOK_INLINE_RUNS"] = str(inline_runs)
        procs, url = start_processes(env, penv.data_dir, profile, cprofile)
        try:
            workflow_id = set_up_workflow(url)
            hook_url = f"{url}/webhook/{HOOK_PATH}"
            probe = httpx.post(hook_url, json=BODY, timeout=60)
            assert probe.status_code == 200, (probe.status_code, probe.text)
            answer = probe.json()
            assert answer.get("ok") == "true" and answer.get("body") == BODY, answer
            stored = asyncio.run(count_executions(penv.settings.database_url, workflow_id, 1))
            assert stored["by_status"] == {"succeeded": 1}, stored
            # warm-up (not measured): JIT-less Python still fills its caches, pools and the SQLite page cache
            subprocess.run(wrk_argv(hook_url, 3, connections), capture_output=True, text=True, check=True)
            warm = asyncio.run(count_executions(penv.settings.database_url, workflow_id, 1))["total"]
            load = os.getloadavg()
            _signal(procs, signal.SIGUSR1 if cprofile else None)
            cpu = [cpu_seconds(p.pid) for p in procs]
            out = subprocess.run(wrk_argv(hook_url, seconds, connections), capture_output=True, text=True,
                                 check=True).stdout
            cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu, strict=True)]
            _signal(procs, signal.SIGUSR2 if cprofile else None)
            load_after = os.getloadavg()
            figures = parse_wrk(out)
            stored = asyncio.run(count_executions(penv.settings.database_url, workflow_id,
                                                  warm + figures.get("requests", 0)))
            measured = stored["total"] - warm
            figures.update({
                "loadavg_before": load, "loadavg_after": load_after, "answer": answer, "raw": out,
                "executions_stored": measured, "executions_by_status": stored["by_status"],
                "executions_total_incl_warmup": stored["total"],
                # CPU time of each Patchwire process per answered request during the run (serve[, worker]):
                # steadier than req/s on a machine whose load varies
                "cpu_ms_per_request": [round(c * 1000 / max(1, figures.get("requests", 0)), 2) for c in cpu],
                # wrk counts answered requests; the ones it gave up on (its 2 s timeout: socket errors) and up
                # to `connections` in flight when it stopped were started and stored too
                "all_stored_and_succeeded": (figures.get("requests", 0) <= measured
                                             <= figures.get("requests", 0) + figures["socket_errors"] + connections
                                             and set(stored["by_status"]) == {"succeeded"}),
            })
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Patchwire process exited with {proc.returncode} during the run")
            return figures
        finally:
            stop_processes(procs)


def report(peers: dict[str, Any], ours: dict[str, Any]) -> str:
    rows = []
    for name in ("n8n", "node-red"):
        if name in peers:
            p = peers[name]
            rows.append([name, f"{p['loadavg_before'][0]:.2f}", round(p.get("rps", float("nan")), 1), p.get("p50_ms"),
                         p.get("p99_ms"),
                         p.get("executions_stored", "-" if name == "n8n" else "none (stores nothing)"), "-"])
    n8n = peers.get("n8n", {})
    for profile, r in ours.items():
        rows.append([f"patchwire {profile}", f"{r['loadavg_before'][0]:.2f}", round(r.get("rps", float("nan")), 1),
                     r.get("p50_ms"), r.get("p99_ms"),
                     f"{r['executions_stored']} ({'all succeeded' if r['all_stored_and_succeeded'] else 'CHECK'})",
                     " + ".join(f"{c:g}" for c in r["cpu_ms_per_request"])])
        if n8n.get("rps"):
            r["vs_n8n"] = {"rps_ratio": r["rps"] / n8n["rps"], "p99_ratio": r["p99_ms"] / n8n["p99_ms"],
                           "goal_rps_5x": r["rps"] >= 5 * n8n["rps"], "goal_p99_quarter": r["p99_ms"] <= n8n["p99_ms"] / 4}
    text = table(["system", "load 1m", "req/s", "p50 ms", "p99 ms", "executions stored", "CPU ms/request"], rows)
    for profile, r in ours.items():
        if "vs_n8n" in r:
            v = r["vs_n8n"]
            text += (f"\n{profile}: {v['rps_ratio']:.2f}× n8n's req/s (goal 5×: {'met' if v['goal_rps_5x'] else 'NOT met'}), "
                     f"p99 {v['p99_ratio']:.2f} of n8n's (goal ≤ 0.25: {'met' if v['goal_p99_quarter'] else 'NOT met'})")
    return text


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.set_defaults(profile="embedded,redis")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10, help="PATCHWIRE_WORKER_CONCURRENCY (shipped default 10)")
    parser.add_argument("--peers", action="store_true", help="run run-peers.sh first (same session) and compare")
    parser.add_argument("--inline-runs", type=int, help="PATCHWIRE_WEBHOOK_INLINE_RUNS (default: the shipped one; "
                        "0: the workers run every webhook execution)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each profile this many times, in turn "
                        "(the VM's speed moves from one minute to the next)")
    parser.add_argument("--cprofile", metavar="DIR", help="profile serve / worker (CPU time of the event loop's "
                        "thread, the measured run only: bench/cpu_profiled.py) into DIR/<serve|worker>-<profile>.prof")
    args = parser.parse_args()
    if args.cprofile:
        Path(args.cprofile).mkdir(parents=True, exist_ok=True)
    peers = run_peers(args.seconds) if args.peers else {}
    if peers:
        print(peers.pop("raw"))
    ours = {}
    for run in range(args.repeat):
        for profile in selected_profiles(args.profile):
            key = profile if args.repeat == 1 else f"{profile} #{run + 1}"
            ours[key] = run_profile(profile, args.seconds, args.connections, args.concurrency, args.cprofile,
                                    args.inline_runs)
            print(f"{key}: {ours[key]['raw']}")
    results = {p: {k: v for k, v in r.items() if k != "raw"} for p, r in ours.items()}
    extra = {"peers": peers, "command": " ".join(sys.argv), "wrk": " ".join(wrk_argv("<url>", args.seconds,
                                                                                    args.connections)),
             "worker_concurrency": args.concurrency, "webhook_inline_runs": args.inline_runs} if peers else {
                 "command": " ".join(sys.argv)}
    show_and_save("webhook", results, report(peers, results), save=not args.no_save and not args.cprofile,
                  extra=extra)


if __name__ == "__main__":
    main()
