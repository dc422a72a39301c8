"""SIGTERM on a separate worker (a deploy): the execution in flight finishes, nothing fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres

WORKFLOW = {
    "name": "Deploy-safe",
    "nodes": [
        {"id": "t", "type": "manual_trigger", "name": "Start"},
        {"id": "d", "type": "delay", "name": "Work", "config": {"seconds": 4}},
        {"id": "s", "type": "set", "name": "Done", "config": {"fields": [{"name": "done", "value": "yes"}]}},
    ],
    "connections": [{"source": "t", "target": "d"}, {"source": "d", "target": "s"}],
}


def test_sigterm_lets_the_running_execution_finish(postgres_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATCHWIRE_DATA_DIR": str(tmp_path), "DATABASE_URL": postgres_url, "QUEUE_URL": postgres_url}
    env.pop("CHANNELS_URL", None)
    env.pop("REDIS_URL", None)

    def cli(*args: str, stdin: str | None = None) -> Any:
        done = subprocess.run([sys.executable, "-m", "webapp", *args], env=env, cwd=tmp_path, input=stdin,
                              capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)

    cli("createuser", "deploy@example.com", "--password-stdin", stdin="a long password\n")
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW))
    workflow_id = cli("import", str(tmp_path / "wf.json"), "--owner", "deploy@example.com")["workflow_id"]
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "webapp", "worker"], env=env, cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        execution_id = cli("run", str(workflow_id))["execution_id"]
        _wait_until(lambda: _node_status(postgres_url, execution_id, "Work") == "running", 30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    shown = cli("executions", "show", str(execution_id), "--json")
    assert shown["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-3000:]
    assert [r["node_name"] for r in shown["node_runs"] if r["status"] == "succeeded"] == ["Start", "Work", "Done"]


def _node_status(database_url: str, execution_id: int, name: str) -> str | None:
    """Read the row directly: a CLI call takes ~2 s to start on a loaded machine, as long as the node runs."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM node_runs WHERE execution_id = %s AND node_name = %s "
                           "ORDER BY attempt DESC LIMIT 1", (execution_id, name)).fetchone()
    return row[0] if row else None


def _wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
