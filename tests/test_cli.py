"""The `patchwire` command as operators script it: stable JSON on stdout, clear errors on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "hello.json"


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    env = {**os.environ, "PATCHWIRE_DATA_DIR": str(tmp_path / "data")}
    for key in ("DATABASE_URL", "QUEUE_URL", "CHANNELS_URL", "REDIS_URL"):
        env.pop(key, None)

    def run(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "webapp", *args], cwd=tmp_path, env=env, input=stdin,
                                capture_output=True, text=True, timeout=120)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run.env = env  # type: ignore[attr-defined]
    return run


def test_import_run_wait_show_export(cli: Any) -> None:
    user = json.loads(cli("createuser", "ops@example.com", "--password-stdin", stdin="a long password\n").stdout)
    assert user["email"] == "ops@example.com"
    workflow_id = json.loads(cli("import", str(EXAMPLE), "--owner", "ops@example.com").stdout)["workflow_id"]

    result = json.loads(cli("run", str(workflow_id), "--input", '{"name": "Ada", "n": 21}', "--wait").stdout)
    assert result["status"] == "succeeded"
    assert result["output"] == {"Big": [{"name": "Ada", "n": 21, "greeting": "Hello, Ada!", "double": 42, "size": "big"}]}

    shown = json.loads(cli("executions", "show", str(result["execution_id"]), "--json").stdout)
    assert shown["status"] == "succeeded" and shown["trigger"] == "cli"
    statuses = {r["node_name"]: r["status"] for r in shown["node_runs"]}
    assert statuses == {"Start": "succeeded", "Greet": "succeeded", "Big?": "succeeded", "Big": "succeeded",
                        "Small": "skipped"}

    exported = json.loads(cli("export", str(workflow_id)).stdout)
    assert exported["name"] == "Hello, Patchwire" and len(exported["nodes"]) == 5


def test_run_a_file_directly_without_waiting(cli: Any) -> None:
    cli("createuser", "file@example.com", "--password-stdin", stdin="a long password\n")
    queued = json.loads(cli("run", str(EXAMPLE), "--owner", "file@example.com").stdout)
    assert queued["status"] == "queued" and isinstance(queued["execution_id"], int)


@pytest.mark.parametrize("args, message", [
    (["run", "1", "--input", "{oops"], "--input is not valid JSON"),
    (["run", "1", "--input", "[1]"], "--input must be a JSON object"),
    (["run", "1", "--input", "[" * 100 + "]" * 100], "--input is nested more than 64 levels deep"),
    (["run", "424242"], "no workflow 424242"),
    (["import", "/nonexistent.json", "--owner", "x@example.com"], "cannot read /nonexistent.json"),
    (["import", str(EXAMPLE), "--owner", "nobody@example.com"], "no user"),
    (["executions", "show", "99", "--json"], "no execution 99"),
    (["worker"], "embedded SQLite queue"),
])
def test_errors_are_one_clear_line(cli: Any, args: list[str], message: str) -> None:
    result = cli(*args, ok=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_invalid_workflow_file_is_rejected(cli: Any, tmp_path: Path) -> None:
    cli("createuser", "bad@example.com", "--password-stdin", stdin="a long password\n")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "nodes": [{"id": "a", "type": "nope", "name": "A"}]}))
    result = cli("import", str(bad), "--owner", "bad@example.com", ok=False)
    assert result.returncode == 2 and "unknown node type 'nope'" in result.stderr


def test_every_command_has_help(cli: Any) -> None:
    for command in (["serve"], ["worker"], ["migrate"], ["health"], ["createuser"], ["import"], ["export"], ["run"],
                    ["executions", "show"]):
        assert "usage: patchwire" in cli(*command, "--help").stdout


def test_health_reports_database_and_workers(cli: Any) -> None:
    report = json.loads(cli("health").stdout)
    assert report == {"healthy": True, "database": "ok", "queue": "patchwire", "workers": 0}
    no_workers = cli("health", "--workers", ok=False)
    assert no_workers.returncode == 1 and json.loads(no_workers.stdout)["healthy"] is False
