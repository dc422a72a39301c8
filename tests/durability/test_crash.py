"""Crash suite: real worker processes are SIGKILLed at random moments while executions run.

``test_sigkill_the_worker_again_and_again`` — per profile (embedded SQLite, PostgreSQL queue, Redis
queue) a real worker process runs Manual Trigger → Delay(0.05) → HTTP Request (a loopback sink
answering after 0–150 ms) → Delay(0.05) → Set. The test starts executions in batches
(``services.start``: commit, then enqueue) and ``KILLS`` times kills the worker with SIGKILL at a
random moment — mostly 0–0.4 s after that life's batch started running, sometimes 0–0.3 s after
startup (while it sweeps and claims) — and restarts it; then one last worker is left alive and the
database is polled (bounded deadline) until every execution is final. Right after each kill (the
process is dead, so the rows are exactly what it had committed) it records which executions and
node runs were ``running``, and which ``queued`` executions had their job claimed by the dead
worker. Pass criteria:

* every execution reaches a final state within ``DRAIN_TIMEOUT`` of the last restart, ``succeeded``;
* no node has two ``succeeded`` rows for one execution;
* the sink saw every idempotency key ``<execution>:<node>`` of a succeeded run, and each repeat of a
  key is explained by a kill that found that node ``running`` between the two requests;
* the time from a kill to the interrupted run's next ``workflow.started`` is printed (p50/p99) — over this
  kill series, where a worker lives well under a second between kills, it measures the schedule more
  than the engine; ``bench/recovery.py`` measures the recovery from one kill (docs/benchmarks.md).

``test_an_execution_outlives_repeated_crashes`` — one execution, its worker killed each time it has
(re)started, ``MAX_INTERRUPTIONS`` (5) times; it must still finish.

``test_a_starting_worker_runs_the_job_it_claims_once`` — no crash: a fresh worker starts with one job
waiting, several times; the job it is claiming runs once (on Redis SAQ's sweep may still take it —
saq#124 — and the execution lease refuses the second run).

``test_a_sweeper_that_dies_mid_sweep_loses_no_execution`` — the worker that sweeps a dead worker's
job is killed the moment it logs the sweep (between SAQ's abort and retry); a third worker must
still finish the execution.

``test_redis_comes_back_empty_while_executions_are_queued_and_running`` — a private redis-server
(never the shared one) is killed and restarted empty, or FLUSHALLed, with executions queued and
running; the reconciler must bring every one of them to ``succeeded``, none twice.

``test_postgres_restarted_mid_run`` — a private PostgreSQL cluster (initdb + pg_ctl on a free port, never
the shared server) is stopped with ``-m immediate`` and started again, once while a worker runs executions
and once while it is idle; the same worker process must finish every execution, none twice, and run the
executions started after each restart (after the idle one on their first SAQ attempt).

Workers: ``patchwire worker`` for the PostgreSQL and Redis profiles; ``patchwire serve`` for the
embedded profile (there is no separate worker command there — serve runs web + worker in one
process, which is what a crash takes down in that deployment). On the Redis profile the live
events go to PostgreSQL (``CHANNELS_URL``), because Redis pub/sub channels are shared across
database numbers and other tests use the same Redis server.

Knobs (environment): ``PW_CRASH_EXECUTIONS`` (60), ``PW_CRASH_KILLS`` (10), ``PW_CRASH_SEED``,
``PW_CRASH_DRAIN_TIMEOUT`` (60 s: how long the last worker gets after the last kill), ``PW_PG_OUTAGE``
(3 s: how long the private PostgreSQL stays down per restart).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from saq.job import Status

from engine.queue import PostgresQueue, queue_from_url
from engine.worker import MAX_INTERRUPTIONS
from tests.durability.conftest import PrivatePostgres, Sink
from tests.durability.harness import (
    Deployment,
    Kill,
    PrivateRedis,
    Rows,
    WorkerProcess,
    duplicate_problems,
    free_port,
    percentile,
    recovery_times,
    shut_down,
    start_executions,
    tail,
)

EXECUTIONS = int(os.environ.get("PW_CRASH_EXECUTIONS", "60"))
KILLS = int(os.environ.get("PW_CRASH_KILLS", "10"))
FIRST_BATCH = min(EXECUTIONS, 20)
STARTUP_KILLS = 0.2
"""Share of kills that land 0–0.3 s after the worker is ready (its first sweep and claims); the others
land 0–0.4 s after the batch enqueued for that life has started running (an execution takes ~0.4 s)."""
DRAIN_TIMEOUT = float(os.environ.get("PW_CRASH_DRAIN_TIMEOUT", "60"))
"""Seconds the last worker gets to finish everything: a killed job is swept 5 s (heartbeat) after its
last touch, sweeps run every 2 s, the retry waits up to 4 s — 11 s in theory, the rest is margin."""

pytestmark = [pytest.mark.durability, pytest.mark.timeout(240 + DRAIN_TIMEOUT)]

PROFILES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
]


@pytest.fixture(params=PROFILES)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "embedded":
        data = tmp_path / "data"
        return Deployment("embedded", tmp_path, f"sqlite:///{data / 'patchwire.db'}", f"sqlite:///{data / 'queue.db'}")
    database = request.getfixturevalue("crash_postgres_url")
    if request.param == "postgres":
        return Deployment("postgres", tmp_path, database, database)
    return Deployment("redis", tmp_path, database, request.getfixturevalue("crash_redis_url"), channels_url=database)


def batches(total: int, first: int, rounds: int) -> list[list[int]]:
    """Execution numbers: ``first`` before the first worker, the rest spread over the restarts."""
    numbers = list(range(total))
    out = [numbers[:first]]
    rest = numbers[first:]
    per = -(-len(rest) // max(1, rounds)) if rest else 0
    out += [rest[i * per:(i + 1) * per] for i in range(rounds)]
    return out


async def test_sigkill_the_worker_again_and_again(deployment: Deployment, crash_sink: Sink) -> None:
    seed = int(os.environ.get("PW_CRASH_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    began = time.monotonic()
    workflow_id = deployment.prepare(crash_sink.url)
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    await queue.connect()
    workers: list[WorkerProcess] = []
    kills: list[Kill] = []
    ids: list[int] = []
    plan = batches(EXECUTIONS, FIRST_BATCH, KILLS)  # [before life 0, during lives 1…KILLS-1, final worker]
    try:
        node_ids = await rows.node_ids(workflow_id)
        ids += await start_executions(rows, queue, workflow_id, plan[0])
        for life in range(KILLS):
            worker = WorkerProcess(deployment, life)
            workers.append(worker)
            ready = await worker.wait_ready()
            if life:
                fresh = await start_executions(rows, queue, workflow_id, plan[life])
                ids += fresh
            else:
                fresh = list(ids)
            moment = "startup" if rng.random() < STARTUP_KILLS else "run"
            if moment == "startup":
                await asyncio.sleep(rng.uniform(0.0, 0.3))
            else:
                await rows.wait_started(fresh, timeout=15)
                await asyncio.sleep(rng.uniform(0.0, 0.4))
            at = worker.kill()
            running, in_flight = await rows.snapshot()
            running |= await claimed(rows, queue, ids)
            kills.append(Kill(life, at, at - ready, running, in_flight, moment))
        final = WorkerProcess(deployment, KILLS)
        workers.append(final)
        last_start = await final.wait_ready()
        ids += await start_executions(rows, queue, workflow_id, plan[KILLS])
        statuses, waited = await rows.wait_terminal(ids, DRAIN_TIMEOUT)
        report, problems = await analyse(deployment, rows, queue, ids, statuses, kills, node_ids, crash_sink, workers)
        report.insert(0, f"[{deployment.profile}] seed {seed}; {len(ids)} executions, {len(kills)} SIGKILLs; the last "
                         f"worker (ready {last_start - kills[-1].at:.1f} s after the last kill) took {waited:.1f} s to drain; "
                         f"{time.monotonic() - began:.0f} s in all")
        print("\n" + "\n".join(report))
        assert not problems, "\n".join(report + ["PROBLEMS:"] + problems)
    finally:
        await shut_down(workers, queue, rows)


async def claimed(rows: Rows, queue: Any, ids: list[int]) -> set[int]:
    """Executions still ``queued`` in the database whose job a (now dead) worker had claimed."""
    statuses = await rows.statuses(ids)
    found = set()
    for i in (i for i in ids if statuses.get(i) == "queued"):
        job = await queue.job(str(i))
        if job is not None and job.status in (Status.ACTIVE, Status.ABORTING):
            found.add(i)
    return found


async def analyse(deployment: Deployment, rows: Rows, queue: Any, ids: list[int], statuses: dict[int, str],
                  kills: list[Kill], node_ids: dict[str, str], sink: Sink,
                  workers: list[WorkerProcess]) -> tuple[list[str], list[str]]:
    report: list[str] = []
    problems: list[str] = []
    call = node_ids["Call"]

    # 1. every execution final, and succeeded
    counts = Counter(statuses.get(i, "missing") for i in ids)
    report.append(f"  final states: {dict(counts)}")
    jobs = {i: await queue.job(str(i)) for i in ids}
    attempts = Counter(job.attempts for job in jobs.values() if job is not None)
    report.append(f"  SAQ attempts per job (kept finished jobs): {dict(sorted(attempts.items()))}")
    executions = await rows.executions(ids)
    for i in ids:
        if statuses.get(i) != "succeeded":
            job = jobs[i]
            seen = f"job {job.status} attempts={job.attempts}/{job.retries} error={str(job.error)[:80]!r}" if job else "no job"
            interrupted = sum(1 for k in kills if i in k.running)
            problems.append(f"execution {i} is {statuses.get(i)!r} (interrupted by {interrupted} kills; queue: {seen}; "
                            f"error: {executions[i].error})")

    # 2. no node completed twice
    runs = await rows.node_runs(ids)
    succeeded = Counter((r.execution_id, r.node_id) for r in runs if r.status == "succeeded")
    twice = {k: v for k, v in succeeded.items() if v > 1}
    report.append(f"  node_runs: {len(runs)} rows, {len(twice)} (execution, node) with more than one succeeded row; "
                  f"rows per status {dict(Counter(r.status for r in runs))}")
    problems += [f"node {node} of execution {e} has {n} succeeded rows" for (e, node), n in twice.items()]
    for i in ids:
        if statuses.get(i) == "succeeded":
            done = {node for (e, node) in succeeded if e == i}
            if done != set(node_ids.values()):
                problems.append(f"execution {i} succeeded with nodes {sorted(done)} succeeded, not all five")
            output = executions[i].output or {}
            item = (output.get("Done") or [{}])[0]
            if item.get("done") != "yes" or item.get("status") != 200:
                problems.append(f"execution {i} succeeded with unexpected output {output}")

    # 3. the sink: every key of a succeeded run seen, every repeat explained by a kill mid-node
    by_key = sink.by_key()
    expected = {f"{i}:{call}" for i in ids if statuses.get(i) == "succeeded"}
    problems += [f"the sink never saw {key}" for key in sorted(expected - set(by_key))]
    problems += [f"the sink saw unknown key {key}" for key in sorted(set(by_key) - {f"{i}:{call}" for i in ids})]
    dup_problems, histogram = duplicate_problems(by_key, kills)
    problems += dup_problems
    # a kill finds the rows a previous kill left 'running' (not yet swept) again: count what is new
    fresh = [(k.running - p.running, k.in_flight - p.in_flight)
             for k, p in zip(kills, [Kill(-1, 0.0, 0.0, set(), set()), *kills], strict=False)]
    mid_request = sum(1 for _, nodes in fresh if any(node == call for _, node in nodes))
    report.append(f"  sink: {sum(len(v) for v in by_key.values())} requests, {len(by_key)} keys; requests per key "
                  f"{dict(sorted(histogram.items()))}; {mid_request}/{len(kills)} kills interrupted an HTTP Request "
                  f"node; {len(set().union(*(k.running for k in kills)))} executions interrupted at least once")
    per_kill = ", ".join(f"{k.moment[0]}{k.uptime:.2f}s/{len(ex)}/{len(nodes)}"
                         for k, (ex, nodes) in zip(kills, fresh, strict=False))
    report.append(f"  kills (s=startup r=run, worker uptime / executions / node runs newly interrupted): {per_kill}")
    again = Counter(sum(1 for ex, _ in fresh if i in ex) for i in ids)
    report.append(f"  executions by number of separate interruptions: {dict(sorted(again.items()))}")

    # 4. recovery time: kill → the interrupted execution's next workflow.started
    samples = recovery_times(kills, await rows.starts(ids))
    if samples:
        report.append(f"  kill → run resumed, over the kill series: n={len(samples)} p50={percentile(samples, 50):.1f} s "
                      f"p99={percentile(samples, 99):.1f} s max={max(samples):.1f} s min={min(samples):.1f} s")
    else:
        report.append("  recovery: no interrupted execution resumed")
    swept = sum(w.log().count("Sweeping") for w in workers)
    tracebacks = sum(w.log().count("Traceback") for w in workers)
    report.append(f"  worker logs: {swept} 'Sweeping' lines, {tracebacks} tracebacks "
                  f"(logs in {deployment.directory})")
    if problems:
        report.append("  last worker's log:\n" + tail(workers[-1].log(), 30))
    return report, problems


# -- one execution, more crashes than SAQ has retries ---------------------------------------------


CRASHES = MAX_INTERRUPTIONS
"""As many crashes as an execution survives (one more and it ends ``crashed``: a poison pill)."""
OUTLIVE_TIMEOUT = 90.0


async def test_an_execution_outlives_repeated_crashes(deployment: Deployment, crash_sink: Sink) -> None:
    """Kill the worker each time the same execution has (re)started, ``CRASHES`` times; it still finishes,
    and its row counts exactly that many interruptions.

    The first node is a 5 s Delay, so every kill lands in it and the HTTP Request never ran before
    the last worker: the sink must see its key exactly once.
    """
    workflow_id = deployment.prepare(crash_sink.url, first_delay=5.0)
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    await queue.connect()
    workers: list[WorkerProcess] = []
    kills: list[float] = []
    try:
        node_ids = await rows.node_ids(workflow_id)
        execution_id = 0
        for life in range(CRASHES):
            worker = WorkerProcess(deployment, life)
            workers.append(worker)
            await worker.wait_ready()
            if not life:
                await asyncio.sleep(1.0)  # past the startup sweep (see the sweeper test)
                [execution_id] = await start_executions(rows, queue, workflow_id, [0])
            deadline = time.monotonic() + 60
            while len((await rows.starts([execution_id])).get(execution_id, [])) <= life:
                job = await queue.job(str(execution_id))
                assert time.monotonic() < deadline, (
                    f"execution {execution_id} did not start attempt {life + 1} within 60 s after crash {life} "
                    f"(queue: {job and (job.status, job.attempts, job.retries)})")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            kills.append(workers[-1].kill())
        final = WorkerProcess(deployment, CRASHES)
        workers.append(final)
        await final.wait_ready()
        statuses, waited = await rows.wait_terminal([execution_id], OUTLIVE_TIMEOUT)
        job = await queue.job(str(execution_id))
        starts = (await rows.starts([execution_id])).get(execution_id, [])
        report = (f"[{deployment.profile}] {CRASHES} crashes of execution {execution_id}: {statuses[execution_id]!r} "
                  f"{waited:.0f} s after the last restart; {len(starts)} starts, resumed "
                  f"{[round(s - k, 1) for s, k in zip(starts[1:], kills, strict=False)]} s after each crash; "
                  f"SAQ job {job and (job.status.value, job.attempts, job.retries, job.error)}")
        print("\n" + report)
        assert statuses[execution_id] == "succeeded", report + "\nlast worker:\n" + tail(final.log(), 30)
        assert (await rows.executions([execution_id]))[execution_id].interruptions == CRASHES
        runs = await rows.node_runs([execution_id])
        assert Counter(r.node_id for r in runs if r.status == "succeeded") == Counter(node_ids.values()), runs
        sent = {key: len(times) for key, times in crash_sink.by_key().items()}
        assert sent == {f"{execution_id}:{node_ids['Call']}": 1}, f"requests per key: {sent}"
    finally:
        await shut_down(workers, queue, rows)


# -- a worker that starts with work waiting ------------------------------------------------------


STARTS = int(os.environ.get("PW_CRASH_STARTS", "4"))


async def test_a_starting_worker_runs_the_job_it_claims_once(deployment: Deployment, crash_sink: Sink) -> None:
    """No crash at all: ``STARTS`` times one execution (first node: a 6 s Delay) waits when a fresh worker
    starts, whose first sweep runs while it claims that job. Each key is sent once, every node runs once.

    The SQLite and PostgreSQL queues sweep nothing here. On Redis, SAQ's sweep may treat a job in
    ``active`` whose stored status is not yet ``active`` as abandoned (the worker writes ``active`` just
    after its BLMOVE) and retry it while it runs — saq#124 / #277, about one start in three here; the
    execution lease makes the retried job find the execution held and step aside (``busy``), so it
    still runs once. Each worker is SIGKILLed once idle (nothing in flight), to start the next.
    """
    workflow_id = deployment.prepare(crash_sink.url, first_delay=6.0)
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    await queue.connect()
    workers: list[WorkerProcess] = []
    ids: list[int] = []
    try:
        for start in range(STARTS):
            ids += await start_executions(rows, queue, workflow_id, [start])
            worker = WorkerProcess(deployment, start)
            workers.append(worker)
            await worker.wait_ready()
            statuses, _ = await rows.wait_terminal(ids, 60)
            worker.kill()
        logs = [line for w in workers for line in w.log().splitlines()]
        swept = [line for line in logs if "Sweeping" in line]
        refused = [line for line in logs if "leased by another live job" in line]
        sent = Counter(len(times) for times in crash_sink.by_key().values())
        runs = await rows.node_runs(ids)
        twice = [k for k, n in Counter((r.execution_id, r.node_id) for r in runs if r.status == "succeeded").items()
                 if n > 1]
        report = (f"[{deployment.profile}] {STARTS} starts with a job waiting: {dict(Counter(statuses.values()))}; "
                  f"{len(swept)} jobs swept by a starting worker, {len(refused)} second runs refused by the lease; "
                  f"requests per key {dict(sent)}")
        print("\n" + report)
        details = report + "\n" + "\n".join(line[:200] for line in swept + refused)
        assert set(sent) == {1} and not twice and set(statuses.values()) == {"succeeded"}, details
        if deployment.profile != "redis":
            assert not swept, details
    finally:
        await shut_down(workers, queue, rows)


# -- the worker that sweeps a dead worker's job dies too ------------------------------------------


SWEEPER_TIMEOUT = 90.0


async def test_a_sweeper_that_dies_mid_sweep_loses_no_execution(deployment: Deployment, crash_sink: Sink) -> None:
    """Worker A dies running the execution; worker B sweeps A's job and is killed the moment it logs the
    sweep (between SAQ's abort and its retry); worker C must still finish the execution."""
    workflow_id = deployment.prepare(crash_sink.url, first_delay=3.0)
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    await queue.connect()
    workers: list[WorkerProcess] = []
    try:
        first = WorkerProcess(deployment, 0)
        workers.append(first)
        await first.wait_ready()
        await asyncio.sleep(1.0)  # past its startup sweep: on Redis it can sweep a job being claimed (saq#124)
        [execution_id] = await start_executions(rows, queue, workflow_id, [0])
        assert await rows.wait_started([execution_id], timeout=30), first.log()[-2000:]
        await asyncio.sleep(0.5)
        first.kill()
        sweeper = WorkerProcess(deployment, 1)
        workers.append(sweeper)
        await sweeper.wait_ready()
        deadline = time.monotonic() + 60
        while not any("Sweeping" in line and f"key: {execution_id}," in line for line in sweeper.log().splitlines()):
            assert time.monotonic() < deadline, "worker B did not sweep A's job within 60 s:\n" + tail(sweeper.log())
            await asyncio.sleep(0.01)
        swept_at = sweeper.kill()
        job = await queue.job(str(execution_id))
        after_kill = job and (job.status.value, job.attempts)
        last = WorkerProcess(deployment, 2)
        workers.append(last)
        await last.wait_ready()
        statuses, waited = await rows.wait_terminal([execution_id], SWEEPER_TIMEOUT)
        job = await queue.job(str(execution_id))
        report = (f"[{deployment.profile}] sweeper killed mid-sweep: SAQ job {after_kill} right after; execution "
                  f"{statuses[execution_id]!r} {waited:.0f} s after worker C started ({time.time() - swept_at:.0f} s "
                  f"after the sweeper died); job now {job and (job.status.value, job.attempts, job.error)}")
        print("\n" + report)
        assert statuses[execution_id] == "succeeded", report + "\nworker C:\n" + tail(last.log(), 30)
    finally:
        await shut_down(workers, queue, rows)


# -- (2) Redis restarted empty while executions are queued and running -------------------------


WIPE_EXECUTIONS = 30
WIPE_TIMEOUT = 120.0


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize("wipe", ["restart-empty", "flushall"])
async def test_redis_comes_back_empty_while_executions_are_queued_and_running(
        wipe: str, crash_postgres_url: str, crash_sink: Sink, redis_server_binary: str, tmp_path: Path) -> None:
    """Every execution still finishes: the reconciler re-enqueues what the queue lost, and nothing runs twice."""
    redis_server = PrivateRedis(redis_server_binary, free_port(), tmp_path)
    redis_server.start()
    deployment = Deployment(f"redis-{wipe}", tmp_path, crash_postgres_url, redis_server.url,
                            channels_url=crash_postgres_url, concurrency=2)
    worker: WorkerProcess | None = None
    rows = Rows(deployment.database_url)
    queue = queue_from_url(deployment.queue_url)
    try:
        workflow_id = deployment.prepare(crash_sink.url)
        node_ids = await rows.node_ids(workflow_id)
        await queue.connect()
        worker = WorkerProcess(deployment, 0)
        await worker.wait_ready()
        ids = await start_executions(rows, queue, workflow_id, list(range(WIPE_EXECUTIONS)))
        deadline = time.monotonic() + 30
        while Counter((await rows.statuses(ids)).values())["succeeded"] < 4:
            assert time.monotonic() < deadline, "the worker did not start working"
            await asyncio.sleep(0.05)
        before = Counter((await rows.statuses(ids)).values())
        wiped_at = time.time()
        if wipe == "flushall":
            await redis_server.flushall()
        else:
            redis_server.kill()
            redis_server.start()
        statuses, waited = await rows.wait_terminal(ids, WIPE_TIMEOUT)

        problems: list[str] = []
        counts = Counter(statuses.values())
        for i in ids:
            if statuses.get(i) != "succeeded":
                problems.append(f"execution {i} is {statuses.get(i)!r}")
        runs = await rows.node_runs(ids)
        succeeded = Counter((r.execution_id, r.node_id) for r in runs if r.status == "succeeded")
        problems += [f"node {n} of execution {e} has {c} succeeded rows" for (e, n), c in succeeded.items() if c > 1]
        by_key = crash_sink.by_key()
        repeats = {k: len(v) for k, v in by_key.items() if len(v) > 1}
        problems += [f"key {k} sent {c} times although no worker was killed" for k, c in repeats.items()]
        missing = {f"{i}:{node_ids['Call']}" for i in ids if statuses.get(i) == "succeeded"} - set(by_key)
        problems += [f"the sink never saw {k}" for k in sorted(missing)]
        log = worker.log()
        report = [f"[redis {wipe}] {len(ids)} executions; at the wipe: {dict(before)}; after the wipe every execution "
                  f"was final after {waited:.1f} s: {dict(counts)}; reconciler log lines: "
                  f"{log.count('re-enqueued executions the queue had lost')}; sink requests per key "
                  f"{dict(Counter(len(v) for v in by_key.values()))} (wiped at {wiped_at:.1f})"]
        print("\n" + "\n".join(report))
        if problems:
            report.append("worker log:\n" + tail(log, 60))
        assert not problems, "\n".join(report + ["PROBLEMS:"] + problems)
    finally:
        if worker is not None and worker.proc.poll() is None:
            worker.stop()
        redis_server.kill()
        await queue.disconnect()
        await rows.close()


# -- (3) PostgreSQL restarted mid-run ------------------------------------------------------------


RESTART_EXECUTIONS = 20
AFTER_RESTART = 5
OUTAGE = float(os.environ.get("PW_PG_OUTAGE", "3"))
"""Seconds the private server stays down (every connection died with it)."""
RESTART_TIMEOUT = 60.0


@pytest.mark.timeout(180 + 2 * OUTAGE)
@pytest.mark.parametrize("queue_kind", [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
])
async def test_postgres_restarted_mid_run(queue_kind: str, private_postgres: PrivatePostgres, crash_sink: Sink,
                                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A private PostgreSQL (never the shared one) is stopped with ``-m immediate`` and started again after
    ``OUTAGE`` s, twice: while one worker runs executions, then while it is idle. The same worker process
    must finish every execution (none twice) and run the executions started after each restart — after
    the idle restart on their first attempt (no dead pooled connection may fail a job).

    ``postgres``: database, queue and live events on that server. ``redis``: the queue on a private
    redis-server, so the worker keeps dequeuing while the database is down: the jobs fail and SAQ retries
    them with back-off (the reconciler revives any whose attempts run out).
    """
    database = private_postgres.url
    redis_server: PrivateRedis | None = None
    if queue_kind == "postgres":
        deployment = Deployment("pg-restart", tmp_path, database, database)
    else:
        redis_server = PrivateRedis(request.getfixturevalue("redis_server_binary"), free_port(), tmp_path)
        redis_server.start()
        deployment = Deployment("pg-restart-redis", tmp_path, database, redis_server.url, channels_url=database)
    rows = Rows(database, pool_pre_ping=True)  # our own pool outlives the restarts too
    queue = queue_from_url(deployment.queue_url)
    worker: WorkerProcess | None = None
    outages: list[tuple[float, float]] = []

    async def restart() -> None:
        stopped_at = time.time()
        private_postgres.stop("immediate")
        await asyncio.sleep(OUTAGE)  # the outage itself, not a wait for a condition
        assert worker is not None and worker.proc.poll() is None, "the worker exited while PostgreSQL was down"
        private_postgres.start()
        outages.append((stopped_at, time.time()))
        if isinstance(queue, PostgresQueue):
            # our pool's idle connections are dead; psycopg_pool would back off 1+2+4+8 s finding that out
            await queue.pool.check()

    try:
        workflow_id = deployment.prepare(crash_sink.url)
        await queue.connect()
        node_ids = await rows.node_ids(workflow_id)
        worker = WorkerProcess(deployment, 0)
        await worker.wait_ready()
        ids = await start_executions(rows, queue, workflow_id, list(range(RESTART_EXECUTIONS)))
        assert await rows.wait_started(ids, timeout=30), "the worker did not start working:\n" + tail(worker.log())
        deadline = time.monotonic() + 30
        while Counter((await rows.statuses(ids)).values())["succeeded"] < 3:  # mid-run: some done, some running
            assert time.monotonic() < deadline, "no execution finished:\n" + tail(worker.log())
            await asyncio.sleep(0.02)
        at_stop = Counter((await rows.statuses(ids)).values())
        await restart()
        ids += await start_executions(rows, queue, workflow_id, list(range(len(ids), len(ids) + AFTER_RESTART)))
        statuses, mid_run_drain = await rows.wait_terminal(ids, RESTART_TIMEOUT)

        idle_from = len(worker.log())
        if all(statuses.get(i) == "succeeded" for i in ids):  # else report the first restart's failure
            await restart()
            after_idle = await start_executions(rows, queue, workflow_id,
                                                list(range(len(ids), len(ids) + AFTER_RESTART)))
            ids += after_idle
            statuses, idle_drain = await rows.wait_terminal(ids, RESTART_TIMEOUT)
        else:
            after_idle, idle_drain = [], math.nan

        problems = [f"execution {i} is {statuses.get(i)!r}" for i in ids if statuses.get(i) != "succeeded"]
        runs = await rows.node_runs(ids)
        succeeded = Counter((r.execution_id, r.node_id) for r in runs if r.status == "succeeded")
        problems += [f"node {n} of execution {e} has {c} succeeded rows" for (e, n), c in succeeded.items() if c > 1]
        problems += [f"execution {i} succeeded without all five nodes" for i in ids if statuses.get(i) == "succeeded"
                     and {n for (e, n) in succeeded if e == i} != set(node_ids.values())]
        by_key = crash_sink.by_key()
        missing = {f"{i}:{node_ids['Call']}" for i in ids if statuses.get(i) == "succeeded"} - set(by_key)
        problems += [f"the sink never saw {k}" for k in sorted(missing)]
        # only a run an outage interrupted may repeat a request: the earlier one sent before the server
        # came back, the later one after it went down
        problems += [f"key {k} sent again {t2 - t1:.2f} s later, not across an outage" for k, times in by_key.items()
                     for t1, t2 in zip(times, times[1:], strict=False)
                     if not any(t1 < back and t2 > down for down, back in outages)]
        jobs = {i: await queue.job(str(i)) for i in ids}
        problems += [f"execution {i}, started after the idle restart, took SAQ attempt {job.attempts}"
                     for i in after_idle if (job := jobs[i]) is not None and job.attempts != 1]
        log = worker.log()
        problems += [f"a job failed after the idle restart: {line[:200]}" for line in log[idle_from:].splitlines()
                     if "Error processing job" in line]
        if worker.proc.poll() is not None:
            problems.append(f"the worker exited with {worker.proc.returncode}")
        report = [f"[{deployment.profile}] {len(ids)} executions, one worker (pid {worker.proc.pid}); at the mid-run "
                  f"stop: {dict(at_stop)}; down {[round(b - d, 1) for d, b in outages]} s; all final "
                  f"{mid_run_drain:.1f} s after the mid-run restart, {idle_drain:.1f} s after the idle one: "
                  f"{dict(Counter(statuses.values()))}; SAQ attempts "
                  f"{dict(Counter(j.attempts for j in jobs.values() if j is not None))}; sink requests per key "
                  f"{dict(Counter(len(v) for v in by_key.values()))}; worker log: {log.count('crashed')} 'crashed', "
                  f"{log.count('re-enqueued executions')} reconciler re-enqueues"]
        print("\n" + "\n".join(report))
        if problems:
            report += ["worker log:\n" + tail(log, 60), "server log:\n" + private_postgres.log_tail()]
        assert not problems, "\n".join(report + ["PROBLEMS:"] + problems)
    finally:
        if worker is not None and worker.proc.poll() is None:
            worker.stop()
        await queue.disconnect()
        await rows.close()
        if redis_server is not None:
            redis_server.kill()
