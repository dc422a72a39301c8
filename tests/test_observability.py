"""Operations through the real command: JSON log lines that carry execution and node ids, `patchwire prune`,
and — with separate processes on the PostgreSQL profile — what `patchwire serve` and `patchwire worker`
each expose on /metrics."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "hello.json"
PATCHWIRE = Path(sys.executable).with_name("patchwire")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL"} and not k.startswith("PATCHWIRE_")}
    env.update(PATCHWIRE_DATA_DIR=str(tmp_path / "data"), PATCHWIRE_HTTP_ALLOW_NETWORKS="127.0.0.0/8")
    return env


def cli(env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "webapp", *args], cwd=env["PATCHWIRE_DATA_DIR"].rsplit("/", 1)[0],
                            env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def owner(env: dict[str, str], email: str = "ops@example.com") -> str:
    cli(env, "createuser", email, "--password-stdin", stdin="a long password\n")
    return email


def flow_file(tmp_path: Path, url: str) -> Path:
    """Start → Fetch (HTTP Request to ``url``) → Compute (a Set whose expression divides by zero)."""
    document = {
        "format": "patchwire.workflow", "format_version": 1, "name": "Logged",
        "nodes": [
            {"id": "start", "type": "manual_trigger", "version": 1, "name": "Start", "config": {}},
            {"id": "fetch", "type": "http_request", "version": 1, "name": "Fetch", "config": {"url": url}},
            {"id": "compute", "type": "set", "version": 1, "name": "Compute",
             "config": {"fields": [{"name": "x", "value": "{{ 1 / 0 }}"}]}},
        ],
        "connections": [
            {"source": "start", "target": "fetch", "source_port": "main", "target_port": "main"},
            {"source": "fetch", "target": "compute", "source_port": "main", "target_port": "main"},
        ],
    }
    path = tmp_path / "logged.json"
    path.write_text(json.dumps(document))
    return path


def node_ids_by_name(env: dict[str, str], execution_id: int) -> dict[str, str]:
    shown = json.loads(cli(env, "executions", "show", str(execution_id), "--json").stdout)
    return {run["node_name"]: run["node_id"] for run in shown["node_runs"]}


def test_log_lines_are_json_with_the_execution_and_node_ids(env: dict[str, str], tmp_path: Path,
                                                            sink_server: Any) -> None:
    email = owner(env)
    result = cli(env, "run", str(flow_file(tmp_path, f"{sink_server.url}/ok")), "--owner", email, "--wait", ok=False)
    assert result.returncode == 1, result.stderr  # Compute fails: the run's status is "failed"
    execution_id = json.loads(result.stdout)["execution_id"]
    node_ids = node_ids_by_name(env, execution_id)  # an import issues new node ids
    records = [json.loads(line) for line in result.stderr.splitlines()]  # stderr is a pipe: every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)

    of_run = [r for r in records if r.get("execution_id") == execution_id]
    fetched = [r for r in of_run if r["logger"] == "httpx" and sink_server.url in r["message"]]
    assert fetched and all(r["node_id"] == node_ids["Fetch"] for r in fetched)  # a library's record, inside the node
    failed = [r for r in of_run if r["logger"] == "patchwire.runner"]
    assert [(r["level"], r["node_id"]) for r in failed] == [("WARNING", node_ids["Compute"])]
    assert "division by zero" in failed[0]["message"]
    ended = [r for r in of_run if r["logger"] == "patchwire.worker"]
    assert ended and "node_id" not in ended[0] and "failed" in ended[0]["message"]
    assert not [r for r in records if r.get("node_id") and r.get("execution_id") != execution_id]


def test_text_logs_when_forced(env: dict[str, str], tmp_path: Path, sink_server: Any) -> None:
    email = owner(env)
    result = cli({**env, "PATCHWIRE_LOG_FORMAT": "text"}, "run", str(flow_file(tmp_path, f"{sink_server.url}/ok")),
                 "--owner", email, "--wait", ok=False)
    execution_id = json.loads(result.stdout)["execution_id"]
    compute = node_ids_by_name(env, execution_id)["Compute"]
    assert f"[execution {execution_id} node {compute}]" in result.stderr
    assert not result.stderr.lstrip().startswith("{")
    bad = cli({**env, "PATCHWIRE_LOG_FORMAT": "xml"}, "migrate", ok=False)
    assert bad.returncode == 2 and "PATCHWIRE_LOG_FORMAT must be one of auto, json, text" in bad.stderr


def test_prune_command(env: dict[str, str]) -> None:
    email = owner(env)
    workflow_id = json.loads(cli(env, "import", str(EXAMPLE), "--owner", email).stdout)["workflow_id"]
    ids = [json.loads(cli(env, "run", str(workflow_id), "--input", '{"name": "Ada", "n": 21}', "--wait").stdout)
           ["execution_id"] for _ in range(3)]

    report = json.loads(cli(env, "prune", "--per-workflow", "1").stdout)
    assert report == {"executions": 2, "node_runs": 10, "events": report["events"], "vacuumed_pages": report[
        "vacuumed_pages"], "binary": 0, "days": 30.0, "per_workflow": 1}
    assert report["events"] >= 2 * 7 and report["vacuumed_pages"] >= 0
    missing = cli(env, "executions", "show", str(ids[0]), "--json", ok=False)
    assert missing.returncode == 2 and f"no execution {ids[0]}" in missing.stderr
    assert json.loads(cli(env, "executions", "show", str(ids[-1]), "--json").stdout)["status"] == "succeeded"

    assert json.loads(cli(env, "prune").stdout)["executions"] == 0  # defaults: 30 days, no count limit
    for args, message in ((["--days", "-1"], "must be 0 or more"), (["--per-workflow", "x"], "invalid int value")):
        refused = cli(env, "prune", *args, ok=False)
        assert refused.returncode == 2 and message in refused.stderr


# -- separate processes: what each one serves -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait_until(condition: Any, what: str, procs: list[subprocess.Popen[bytes]], timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"a process exited with {proc.returncode} while waiting for {what}"
        try:
            found = condition()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


@pytest.fixture
def processes(env: dict[str, str], postgres_url: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], str, str]]:
    """`patchwire serve` and one `patchwire worker` on the PostgreSQL profile (database and queue)."""
    env = {**env, "DATABASE_URL": postgres_url, "QUEUE_URL": postgres_url, "PATCHWIRE_SECRET_KEY": "k" * 40}
    web_port, metrics_port = free_port(), free_port()
    logs = [tmp_path / "web.log", tmp_path / "worker.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with logs[0].open("wb") as out:
            procs.append(subprocess.Popen([str(PATCHWIRE), "serve", "--port", str(web_port)], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=tmp_path))
        web = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: fetch(f"{web}/healthz")[0] == 200, "web server", procs)
        worker_env = {**env, "PATCHWIRE_METRICS_PORT": str(metrics_port), "PATCHWIRE_METRICS_TOKEN": "worker-token"}
        with logs[1].open("wb") as out:
            procs.append(subprocess.Popen([str(PATCHWIRE), "worker"], env=worker_env, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=tmp_path))
        yield env, web, f"http://127.0.0.1:{metrics_port}/metrics", logs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for log in logs:
            if log.exists():
                print(log.read_text(errors="replace")[-5000:], file=sys.stderr)


@pytest.mark.postgres
def test_separate_worker_serves_its_counters_and_the_web_process_the_gauges(processes: Any) -> None:
    env, web, worker_metrics, logs = processes
    email = owner(env)
    workflow_id = json.loads(cli(env, "import", str(EXAMPLE), "--owner", email).stdout)["workflow_id"]
    for n in (1, 2):
        cli(env, "run", str(workflow_id), "--input", json.dumps({"name": "Ada", "n": n}))

    def finished() -> dict[Any, float] | None:
        status, text = fetch(worker_metrics, "worker-token")
        found = samples(text) if status == 200 else {}
        return found if found.get(("patchwire_executions_finished_total", (("status", "succeeded"),))) == 2 else None

    worker = wait_until(finished, "two succeeded executions in the worker's metrics", [])
    assert worker[("patchwire_executions_started_total", ())] == 2
    assert worker[("patchwire_node_duration_seconds_count", (("node_type", "set"), ("status", "succeeded")))] == 4
    assert fetch(worker_metrics)[0] == 401  # the worker was given a token
    assert fetch(worker_metrics, "wrong")[0] == 401

    status, text = fetch(f"{web}/metrics")  # no token on the web process: loopback is answered
    assert status == 200, text
    web_samples = samples(text)
    assert web_samples[("patchwire_workers", ())] == 1
    assert web_samples[("patchwire_queue_jobs", (("state", "queued"),))] == 0
    assert web_samples[("patchwire_executions", (("status", "running"),))] == 0
    assert not any(name.startswith(("patchwire_executions_started", "patchwire_node_duration")) for name, _ in web_samples)

    web_records, worker_records = (json_lines(log) for log in logs)
    assert any(r["logger"] == "uvicorn.access" and "/metrics" in r["message"] for r in web_records)
    assert any(r["logger"] == "saq" for r in worker_records)
    for records in (web_records, worker_records):  # each process froze what its startup made (engine/gctune.py)
        assert any(r["logger"] == "patchwire.gc" and r["message"].startswith("froze ") for r in records), records[:20]


def json_lines(log: Path) -> list[dict[str, Any]]:
    """A process's output (stdout and stderr go to one file): JSON lines, besides the line each process prints."""
    lines = [line for line in log.read_text().splitlines() if not line.startswith("Patchwire ")]
    assert lines and all(line.startswith("{") for line in lines), lines
    records = [json.loads(line) for line in lines]
    assert all("color_message" not in r for r in records)  # uvicorn's ANSI copy of each message is dropped
    return records
