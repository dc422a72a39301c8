"""Status latency: a node's result committed → the update at a WebSocket client, with 100 clients
connected while 150 executions/s run.

A real ``patchwire serve`` on loopback (embedded: its in-process worker; redis: plus a ``patchwire
worker`` process), 10 owners with 10 browsers each on the live executions table (``/ws/executions``,
real WebSockets through the ``websockets`` package, logged in with a session cookie, same Origin).
A producer process starts 5-node no-op executions (Manual Trigger → 4 × Set) at ``--rate`` per second
spread over the owners, through ``webapp.executions.services.start`` (what the Run button and the CLI
call; it announces the new row). Each client notes, per (execution, seq) in a row it is sent, when it
first arrived (``time.time()``). Afterwards the stored events say when each commit happened: the
``execution_events.created_at`` of the commit that carried that seq (taken just before the commit on
SQLite, the transaction's start on PostgreSQL — the same machine clock). Only commits that carry a
node's result (``node.completed``) count. The hub coalesces the changes of an execution a client has
not been sent yet, so a commit's state may reach a client only as part of a later one: the latency of a
commit is the time until the client was sent that execution's state *at or after* it (the share that
arrived as exactly that state is reported as ``delivered``).

    .venv/bin/python bench/status_latency.py --profile embedded,redis --seconds 20
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import (  # noqa: E402
    PATCHWIRE,
    base_parser,
    chain_document,
    percentile,
    profile_env,
    selected_profiles,
    show_and_save,
    table,
)

from engine import eventloop  # noqa: E402

PASSWORD = "correct horse battery staple"
ROW = re.compile(r'<tr id="exec-(\d+)" class="exec-row" data-status="\w+" data-seq="(-?\d+)"')


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(env: dict[str, str], workdir: Path, profile: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    port = _free_port()
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([PATCHWIRE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=full, cwd=workdir,
                              stdout=(workdir / "serve.log").open("wb"), stderr=subprocess.STDOUT)]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        raise RuntimeError("patchwire serve did not start:\n" + (workdir / "serve.log").read_text()[-3000:])
    if profile != "embedded":
        procs.append(subprocess.Popen([PATCHWIRE, "worker"], env=full, cwd=workdir,
                                      stdout=(workdir / "worker.log").open("wb"), stderr=subprocess.STDOUT))
    return procs, url


def _owner(url: str, n: int) -> tuple[str, int]:
    """Register owner ``n``; import the 5-node workflow; (session cookie header, workflow id)."""
    client = httpx.Client(base_url=url, follow_redirects=False)
    client.get("/login")
    csrf = {"x-csrftoken": client.cookies["csrftoken"]}
    client.post("/register", data={"email": f"owner{n}@example.com", "password": PASSWORD}, headers=csrf)
    document = chain_document(f"No-op {n}", [("set", f"Set {k}", {"fields": [{"name": f"f{k}", "value": "1"}]})
                                            for k in range(1, 5)])
    import msgspec

    imported = client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                           data={"document": msgspec.json.encode(document).decode()})
    assert imported.status_code == 201, imported.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return cookie, imported.json()["workflow_id"]


def _produce(env: dict[str, str], workflow_ids: list[int], rate: float, seconds: float, started: Any) -> None:
    """The producer process: ``rate`` starts per second, round robin over the workflows."""
    eventloop.run(_producer(env, workflow_ids, rate, seconds, started))


async def _producer(env: dict[str, str], workflow_ids: list[int], rate: float, seconds: float, started: Any) -> None:
    from engine.database import make_engine, make_sessionmaker
    from engine.events import publish_all
    from engine.models import Workflow
    from engine.publisher import sink_from_url
    from engine.queue import queue_from_url
    from engine.settings import load_settings
    from nodes import registry
    from webapp.executions.services import start

    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    queue = queue_from_url(settings.queue_url)
    await queue.connect()
    sink = None if settings.channels_url.startswith("memory") else sink_from_url(settings.channels_url)
    announce = (lambda changes: publish_all(sink, changes)) if sink else None
    t0 = time.monotonic()
    count = 0

    async def one(i: int) -> None:
        async with sessions() as db:
            workflow = await db.get_one(Workflow, workflow_ids[i % len(workflow_ids)])
            await start(db, queue, registry, workflow, input={"n": i}, trigger="cli", announce=announce)

    tasks: set[asyncio.Task[None]] = set()
    while time.monotonic() - t0 < seconds:
        due = int((time.monotonic() - t0) * rate)
        while count < due and len(tasks) < 16:
            task = asyncio.create_task(one(count))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            count += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    started.value = count
    await queue.disconnect()
    if sink is not None:
        await sink.close()
    await engine.dispose()


async def _client(url: str, cookie: str, seen: dict[tuple[int, int], float], stop: asyncio.Event,
                  counts: list[int]) -> None:
    """One browser: note when each (execution, seq) first arrives. The receive loop is as cheap as it can
    be (no task or timer per message: 100 of these share one process and the machine's two cores with the
    server); ``stop`` closes the socket, which ends the loop."""
    import websockets

    ws_url = url.replace("http://", "ws://") + "/ws/executions"
    async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url},
                                  max_size=2**24) as socket:
        closer = asyncio.create_task(_close_on(stop, socket))
        findall = ROW.findall
        try:
            async for message in socket:
                now = time.time()
                counts[0] += 1
                for execution_id, seq in findall(message):
                    key = (int(execution_id), int(seq))
                    if key[1] > 0 and key not in seen:
                        seen[key] = now
        except websockets.ConnectionClosed:
            pass
        finally:
            closer.cancel()


async def _close_on(stop: asyncio.Event, socket: Any) -> None:
    await stop.wait()
    await socket.close()


async def _measure_clients(url: str, owners: list[tuple[str, int]], per_owner: int, env: dict[str, str],
                           rate: float, seconds: float) -> dict[str, Any]:
    stop = asyncio.Event()
    seen: list[dict[tuple[int, int], float]] = []
    counts: list[list[int]] = []
    tasks = []
    for cookie, _ in owners:
        for _ in range(per_owner):
            seen.append({})
            counts.append([0])
            tasks.append(asyncio.create_task(_client(url, cookie, seen[-1], stop, counts[-1])))
    await asyncio.sleep(2)  # connected and sent their snapshot
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Value("i", 0)
    producer = ctx.Process(target=_produce, args=(env, [w for _, w in owners], rate, seconds, started))
    t0 = time.time()
    producer.start()
    await asyncio.to_thread(producer.join)
    await asyncio.sleep(5)  # the last executions finish and reach the clients
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"seen": seen, "messages": [c[0] for c in counts], "started": started.value, "t0": t0}


async def _commits(database_url: str, since: float) -> tuple[dict[tuple[int, int], float], int, float]:
    """(execution, seq) → commit time, for commits that carried a node's result; executions finished; span."""
    from sqlalchemy import select

    from engine.database import make_engine, make_sessionmaker
    from engine.models import Execution, ExecutionEvent

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as db:
        rows = (await db.execute(select(ExecutionEvent.execution_id, ExecutionEvent.seq, ExecutionEvent.data,
                                        ExecutionEvent.created_at))).all()
        finished = (await db.execute(select(Execution.finished_at).where(Execution.status == "succeeded"))).all()
    await engine.dispose()
    groups: dict[tuple[int, float], list[tuple[int, str]]] = {}
    for execution_id, seq, data, created in rows:
        groups.setdefault((execution_id, created.timestamp()), []).append((seq, data["type"]))
    commits: dict[tuple[int, int], float] = {}
    for (execution_id, at), events in groups.items():
        if any(kind == "node.completed" for _, kind in events):
            commits[(execution_id, max(seq for seq, _ in events))] = at
    times = sorted(f[0].timestamp() for f in finished if f[0] is not None and f[0].timestamp() >= since)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return commits, len(times), span


def _latencies(seen: list[dict[tuple[int, int], float]], commits: dict[tuple[int, int], float]) -> tuple[list[float], int]:
    """For each client and each node-result commit of an execution it was shown: the time until the client
    was first sent that execution's state at or after that commit (coalescing may skip to a later one).
    Also how many of them arrived as that very commit's state."""
    by_execution: dict[int, list[tuple[int, float]]] = {}
    for (execution_id, seq), at in commits.items():
        by_execution.setdefault(execution_id, []).append((seq, at))
    latencies, exact = [], 0
    for client in seen:
        received: dict[int, list[tuple[int, float]]] = {}
        for (execution_id, seq), at in client.items():
            received.setdefault(execution_id, []).append((seq, at))
        for execution_id, updates in received.items():
            for seq, committed in by_execution.get(execution_id, []):
                later = [at for got, at in updates if got >= seq]
                if later:
                    latencies.append((min(later) - committed) * 1000)
                    exact += any(got == seq for got, _ in updates)
    return latencies, exact


def measure(profile: str, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    with profile_env(profile, "latency", concurrency=20) as deployment:
        procs, url = _start_server(deployment.env, deployment.data_dir, profile)
        try:
            owners = [_owner(url, n) for n in range(clients // 10)]
            load_before = os.getloadavg()
            run = eventloop.run(_measure_clients(url, owners, 10, deployment.env, rate, seconds))
            load_after = os.getloadavg()
            commits, finished, span = eventloop.run(_commits(deployment.settings.database_url, run["t0"]))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    latencies, exact = _latencies(run["seen"], commits)
    delivered = exact / max(1, len(latencies))
    return {"clients": clients, "target_rate": rate, "seconds": seconds, "started": run["started"],
            "finished": finished, "finish_rate": round(finished / span, 1) if span else None,
            "updates_measured": len(latencies), "share_of_commits_delivered": round(delivered, 3),
            "messages_per_client": round(sum(run["messages"]) / max(1, clients), 1),
            "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies) if latencies else None,
            "loadavg_before": load_before, "loadavg_after": load_after}


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    rows = []
    for profile in selected_profiles(args.profile):
        result = measure(profile, args.clients, args.rate, args.seconds)
        results[profile] = result
        rows.append([profile, result["started"], result["finish_rate"], result["updates_measured"],
                     result["share_of_commits_delivered"], result["p50_ms"], result["p95_ms"], result["p99_ms"],
                     result["max_ms"], " / ".join(f"{v:.1f}" for v in result["loadavg_after"])])
    text = table(["profile", "started", "finished/s", "updates", "delivered", "p50 ms", "p95 ms", "p99 ms", "max ms",
                  "load after"], rows)
    show_and_save("status_latency", results, f"{args.clients} WebSocket clients, {args.rate:g} executions/s target, "
                  f"{args.seconds:g} s\n{text}", save=not args.no_save)
    print(json.dumps({k: {x: v for x, v in r.items() if x not in ()} for k, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
