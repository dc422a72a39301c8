"""Hostile expressions: does the server keep answering while they run, and do node time limits hold?

A real ``patchwire serve`` (embedded profile: web and worker in one process) on loopback. One owner
imports one workflow per hostile expression (Manual Trigger → Set whose value is the expression, node
time limit ``--node-timeout``), then, while a thread polls ``/healthz`` every 20 ms, starts each
workflow ``--runs`` times and asks the editor's preview for each expression ``--runs`` times, all at
once. It waits (bounded) until every execution has ended, then reads the node runs from the database.

Reported: the worst and p99 ``/healthz`` latency before (idle) and while the hostile work runs (goal:
under 100 ms), each expression's outcome, and for nodes that failed on their time limit the time from
the limit to the failure (goal: under 1 s). Bounded: a fixed number of requests, a 120 s cap on waiting.

    .venv/bin/python bench/hostile_expressions.py
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from common import base_parser, percentile, profile_env, show_and_save, table  # noqa: E402
from status_latency import PASSWORD, _start_server  # noqa: E402

from engine.graph import ConnectionSpec, NodeSpec, Position, WorkflowDocument  # noqa: E402
from engine.policy import NodeSettings  # noqa: E402

HOSTILE = {
    "power of powers": "{{ (9**999)**999 }}",
    "padding width": "{{ '%100000000d' % 1 }}",
    "format width": "{{ '{:>100000000}'.format(1) }}",
    "center filter": "{{ 'x' | center(10**8) }}",
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ 1 }}",
    "doubling concatenation": ("{% set ns = namespace(s='x' * 100000) %}{% for i in range(12) %}"
                               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"),
    "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(17) }}",
}


BENIGN = "{{ (trigger | length) * 2 }}"
"""The control (``--control``): the same requests with an expression that costs nothing, to tell the latency of
the requests themselves (imports, starts, previews at once) from that of the hostile work."""


def _owner(url: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=120)
    client.get("/login")
    csrf = {"x-csrftoken": client.cookies["csrftoken"]}
    client.post("/register", data={"email": "hostile@example.com", "password": PASSWORD}, headers=csrf)
    return client, csrf


def _import(client: httpx.Client, csrf: dict[str, str], name: str, source: str, node_timeout: float) -> int:
    document = WorkflowDocument(name=name, nodes=[
        NodeSpec(id="trigger", type="manual_trigger", name="Trigger", position=Position(0, 0)),
        NodeSpec(id="hostile", type="set", name="Hostile", position=Position(200, 0),
                 config={"fields": [{"name": "value", "value": source}]}, settings=NodeSettings(timeout=node_timeout)),
    ], connections=[ConnectionSpec(source="trigger", target="hostile")])
    imported = client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                           data={"document": msgspec.json.encode(document).decode()})
    assert imported.status_code == 201, imported.text
    return imported.json()["workflow_id"]


def _hostile_node(database: Path, workflow_id: int) -> str:
    """The Set node's id (an import gives nodes new ids)."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT id FROM nodes WHERE workflow_id = ? AND name = 'Hostile'", (workflow_id,)).fetchone()[0]


class HealthPoller(threading.Thread):
    """GET /healthz every 20 ms on its own connection; records each latency with the phase it fell in."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.phase, self.stop = url, "idle", threading.Event()
        self.latencies: dict[str, list[float]] = {"idle": [], "hostile": []}

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                phase, started = self.phase, time.perf_counter()
                client.get("/healthz")
                self.latencies[phase].append((time.perf_counter() - started) * 1000)
                self.stop.wait(0.02)


def _node_runs(database: Path, since_id: int) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT r.*, e.workflow_id, e.status AS execution_status FROM node_runs r JOIN executions e "
                          "ON e.id = r.execution_id WHERE r.node_name = 'Hostile' AND r.id > ?", (since_id,)).fetchall()
    return [dict(row) for row in rows]


def _terminal(database: Path, ids: list[int]) -> bool:
    with sqlite3.connect(database) as db:
        marks = ",".join("?" * len(ids))
        done = db.execute(f"SELECT count(*) FROM executions WHERE id IN ({marks}) AND status IN "
                          "('succeeded', 'failed', 'cancelled')", ids).fetchone()[0]
    return done == len(ids)


def _started_id(response: httpx.Response) -> int:
    import re

    found = re.findall(r"/executions/(\d+)", response.text)
    assert response.status_code == 200 and found, response.text[:500]
    return int(found[-1])


def measure(runs: int, node_timeout: float, names: list[str], control: bool) -> dict[str, Any]:
    with profile_env("embedded", "hostile_expressions") as deployment:
        procs, url = _start_server(deployment.env, deployment.data_dir, "embedded")
        database = deployment.data_dir / "patchwire.db"
        try:
            client, csrf = _owner(url)
            workflows = {name: _import(client, csrf, name, BENIGN if control else source, node_timeout)
                         for name, source in HOSTILE.items() if name in names}
            poller = HealthPoller(url)
            poller.start()
            time.sleep(2.0)  # the idle phase: /healthz alone, for the comparison
            poller.phase = "hostile"
            started = time.monotonic()
            nodes = {wid: _hostile_node(database, wid) for wid in workflows.values()}
            sources = {name: BENIGN if control else HOSTILE[name] for name in workflows}
            previews, execution_ids = _fire(url, client, csrf, workflows, nodes, runs, sources)
            deadline = time.monotonic() + 120
            while not _terminal(database, execution_ids) and time.monotonic() < deadline:
                time.sleep(0.1)
            hostile_seconds = time.monotonic() - started
            poller.stop.set()
            poller.join()
            return _report(poller, previews, _node_runs(database, 0), workflows, node_timeout, hostile_seconds)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)


def _fire(url: str, client: httpx.Client, csrf: dict[str, str], workflows: dict[str, int], nodes: dict[int, str],
          runs: int, sources: dict[str, str]) -> tuple[dict[str, list[tuple[float, str]]], list[int]]:
    """Start every run and every preview at once (threads, one client each); previews' answer time and text."""
    cookies = dict(client.cookies)
    previews: dict[str, list[tuple[float, str]]] = {name: [] for name in workflows}

    def preview(name: str) -> None:
        with httpx.Client(base_url=url, cookies=cookies, timeout=120) as own:
            began = time.perf_counter()
            response = own.get(f"/workflows/{workflows[name]}/nodes/{nodes[workflows[name]]}/preview",
                               params={"_field": "fields.value", "fields.value": sources[name]})
            previews[name].append(((time.perf_counter() - began) * 1000, f"{response.status_code} {_alert(response.text)}"))

    def start(name: str) -> int:
        with httpx.Client(base_url=url, cookies=cookies, timeout=120) as own:
            return _started_id(own.post(f"/workflows/{workflows[name]}/run", headers={**csrf, "HX-Request": "true"}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = [pool.submit(start, name) for name in workflows for _ in range(runs)]
        asked = [pool.submit(preview, name) for name in workflows for _ in range(runs)]
        ids = [future.result() for future in started]
        for future in asked:
            future.result()
    return previews, ids


def _alert(html: str) -> str:
    import re

    found = re.search(r'role="alert">(.*?)</span>', html, re.DOTALL)
    return (found.group(1) if found else re.sub(r"<[^>]+>", " ", html)).strip()[:300]


def _seconds(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else float("nan")


def _report(poller: HealthPoller, previews: dict[str, list[tuple[float, str]]], node_runs: list[dict[str, Any]],
            workflows: dict[str, int], node_timeout: float, hostile_seconds: float) -> dict[str, Any]:
    by_workflow = {wid: name for name, wid in workflows.items()}
    outcomes: dict[str, Any] = {}
    overshoots = []
    for run in node_runs:
        name = by_workflow[run["workflow_id"]]
        error = json.loads(run["error"]) if run["error"] else {}
        duration = _seconds(run["finished_at"]) - _seconds(run["started_at"])
        if error.get("type") == "NodeTimeout":
            overshoots.append(max(0.0, duration - node_timeout))
        entry = outcomes.setdefault(name, {"statuses": [], "errors": set(), "durations_s": []})
        entry["statuses"].append(f"{run['status']}/{run['execution_status']}")
        entry["errors"].add(f"{error.get('type')}: {str(error.get('message', ''))[:160]}" if error else "none")
        entry["durations_s"].append(round(duration, 3))
    for name, entry in outcomes.items():
        entry["errors"] = sorted(entry["errors"])
        entry["previews"] = [{"ms": round(ms, 1), "answer": text} for ms, text in previews[name]]
    idle, hostile = poller.latencies["idle"], poller.latencies["hostile"]
    return {
        "healthz_idle": {"requests": len(idle), "p50_ms": statistics.median(idle), "max_ms": max(idle)},
        "healthz_hostile": {"requests": len(hostile), "p50_ms": statistics.median(hostile),
                            "p99_ms": percentile(hostile, 0.99), "max_ms": max(hostile)},
        "hostile_seconds": round(hostile_seconds, 2),
        "node_timeout_s": node_timeout,
        "limit_to_failure_s": {"count": len(overshoots), "max": max(overshoots) if overshoots else None},
        "expressions": outcomes,
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs and previews per expression")
    parser.add_argument("--node-timeout", type=float, default=0.5)
    parser.add_argument("--label", default="after", help="key the result is saved under (e.g. before / after)")
    parser.add_argument("--only", default=",".join(HOSTILE), help="comma-separated names of the expressions to run "
                        "(against code without the budget, leave out the ones that never end or take gigabytes)")
    parser.add_argument("--control", action="store_true", help=f"the same requests with {BENIGN!r} instead")
    args = parser.parse_args()
    result = measure(args.runs, args.node_timeout, args.only.split(","), args.control)
    rows = [[args.label, result["healthz_idle"]["max_ms"], result["healthz_hostile"]["p50_ms"],
             result["healthz_hostile"]["p99_ms"], result["healthz_hostile"]["max_ms"],
             result["limit_to_failure_s"]["max"], result["hostile_seconds"]]]
    text = table(["code", "idle max ms", "hostile p50 ms", "hostile p99 ms", "hostile max ms",
                  "limit→failure max s", "hostile phase s"], rows)
    show_and_save("hostile_expressions", {args.label: result}, text, save=not args.no_save)
    print(json.dumps(result["expressions"], indent=1, default=str))


if __name__ == "__main__":
    main()
