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


N8N_EXPORT = {
    "name": "Greet new signups",
    "nodes": [
        {"parameters": {}, "id": "0e1f6c1a-4b7e-4c1f-9a43-3c6f5d0c2a11", "name": "When clicking \u2018Test workflow\u2019",
         "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "position": [220, 300]},
        {"parameters": {"assignments": {"assignments": [
            {"id": "7a1d2f0e-1c55-4a5b-8f0a-0d3c7b9e1f21", "name": "greeting", "value": "=Hello {{ $json.name }}!",
             "type": "string"}]}, "includeOtherFields": True, "options": {}},
         "id": "0e1f6c1a-4b7e-4c1f-9a43-3c6f5d0c2a12", "name": "Edit Fields", "type": "n8n-nodes-base.set",
         "typeVersion": 3.4, "position": [440, 300]},
        {"parameters": {"channel": "#signups", "text": "={{ $json.greeting }}", "otherOptions": {}},
         "id": "0e1f6c1a-4b7e-4c1f-9a43-3c6f5d0c2a13", "name": "Slack", "type": "n8n-nodes-base.slack",
         "typeVersion": 1, "position": [660, 300], "credentials": {"slackApi": {"id": "3", "name": "Slack account"}}},
    ],
    "connections": {
        "When clicking \u2018Test workflow\u2019": {"main": [[{"node": "Edit Fields", "type": "main", "index": 0}]]},
        "Edit Fields": {"main": [[{"node": "Slack", "type": "main", "index": 0},
                                  {"node": "Send Email", "type": "main", "index": 0}]]},
    },
    "pinData": {}, "settings": {"executionOrder": "v1"}, "versionId": "5c1d0b6e-9a0f-4f0e-8d51-2b1f0f5b7c30",
}


def test_import_recognises_an_n8n_export_and_prints_its_report(cli: Any, tmp_path: Path) -> None:
    cli("createuser", "n8n@example.com", "--password-stdin", stdin="a long password\n")
    path = tmp_path / "n8n.json"
    path.write_text(json.dumps(N8N_EXPORT))
    result = cli("import", str(path), "--owner", "n8n@example.com")
    imported = json.loads(result.stdout)
    assert imported["format"] == "n8n" and imported["missing_credentials"] == []
    assert imported["report"]["skipped"] == [
        {"node": "Slack", "message": "n8n-nodes-base.slack has no Patchwire equivalent", "parameter": None}]
    assert "not imported: Slack: n8n-nodes-base.slack has no Patchwire equivalent" in result.stderr
    assert ("connection not imported: Edit Fields: Edit Fields (output 0) → 'Send Email': dropped, there is no node "
            "named 'Send Email' in the file") in result.stderr

    run = json.loads(cli("run", str(imported["workflow_id"]), "--input", '{"name": "Ada"}', "--wait").stdout)
    assert run["status"] == "succeeded"
    assert run["output"] == {"Edit Fields": [{"name": "Ada", "greeting": "Hello Ada!"}]}
    exported = json.loads(cli("export", str(imported["workflow_id"])).stdout)
    assert [n["name"] for n in exported["nodes"]] == ["When clicking \u2018Test workflow\u2019", "Edit Fields"]


def test_import_of_a_patchwire_file_has_no_report(cli: Any) -> None:
    cli("createuser", "plain@example.com", "--password-stdin", stdin="a long password\n")
    result = cli("import", str(EXAMPLE), "--owner", "plain@example.com")
    assert json.loads(result.stdout)["format"] == "patchwire" and json.loads(result.stdout)["report"] is None
    assert "n8n import" not in result.stderr
    again = json.loads(cli("import", str(EXAMPLE), "--owner", "plain@example.com").stdout)["workflow_id"]
    assert json.loads(cli("export", str(again)).stdout)["name"] == "Hello, Patchwire (imported)"
