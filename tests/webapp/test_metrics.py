"""``GET /metrics``: counters that move with real executions through the in-process worker, scrape-time
gauges, the text format (parsed with prometheus_client's own parser) and the access rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from engine import metrics
from engine.settings import load_settings
from tests.webapp.conftest import LOOPBACK, Browser
from tests.webapp.test_runs import run
from webapp.app import create_app

TOKEN = "scrape-token-0123456789"


def make_client(database_url: str, tmp_path: Path, **env: str) -> TestClient[Any]:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
                              "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789",
                              "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK, **env})
    return TestClient(app=create_app(settings))


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient[Any]]:
    with make_client(database_url, tmp_path, PATCHWIRE_METRICS_TOKEN=TOKEN) as test_client:
        yield test_client


def scrape(client: TestClient[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the scrape, parsed by prometheus_client, by (name, sorted labels)."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def one_node_flow(browser: Browser, name: str, expression: str) -> int:
    wid = browser.create_workflow(name)
    trigger, step = browser.add_node(wid, "manual_trigger"), browser.add_node(wid, "set")
    assert browser.configure(wid, step, {"name": "Compute", "fields.name": ["x"],
                                         "fields.value": [expression]}).status_code == 200
    assert browser.connect(wid, trigger, step).status_code == 201
    return wid


def test_counters_and_histograms_move_with_real_executions(browser: Browser, client: TestClient[Any]) -> None:
    browser.register("metrics@example.com")
    good, bad = one_node_flow(browser, "Good", "{{ 6 * 7 }}"), one_node_flow(browser, "Bad", "{{ 1 / 0 }}")
    before = scrape(client)

    assert browser.wait_for_execution(run(browser, good)) == "succeeded"
    assert browser.wait_for_execution(run(browser, good)) == "succeeded"
    assert browser.wait_for_execution(run(browser, bad)) == "failed"
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("patchwire_executions_started_total") == 3
    assert moved("patchwire_executions_finished_total", status="succeeded") == 2
    assert moved("patchwire_executions_finished_total", status="failed") == 1
    assert moved("patchwire_node_duration_seconds_count", node_type="set", status="succeeded") == 2
    assert moved("patchwire_node_duration_seconds_count", node_type="set", status="failed") == 1
    assert moved("patchwire_node_duration_seconds_count", node_type="manual_trigger", status="succeeded") == 3
    assert moved("patchwire_node_duration_seconds_bucket", node_type="set", status="succeeded", le="+Inf") == 2
    assert moved("patchwire_node_duration_seconds_sum", node_type="set", status="succeeded") > 0
    # the scrape-time gauges: the in-process worker, an idle queue, nothing unfinished
    assert value(after, "patchwire_workers") == 1
    assert value(after, "patchwire_metrics_source_up", source="queue") == 1
    assert value(after, "patchwire_metrics_source_up", source="database") == 1
    assert ("patchwire_queue_jobs", (("state", "queued"),)) in after
    assert value(after, "patchwire_executions", status="running") == 0
    # the plugin's HTTP metrics, by route template (no id in the label)
    paths = {dict(labels).get("path") for name, labels in after if name == "patchwire_http_requests_total"}
    assert "/workflows/{workflow_id}/run" in paths and "/executions/{execution_id}" in paths
    # (an id is a whole segment of digits; a template's own name may hold one, e.g. /schema/oauth2-redirect.html,
    # which another test of the same xdist worker may have requested)
    assert not any(p and any(segment.isdigit() for segment in p.split("/")) for p in paths)


def test_unfinished_executions_are_counted_at_scrape_time(browser: Browser, client: TestClient[Any],
                                                          db_call: Any) -> None:
    from sqlalchemy import update

    from engine.models import Execution

    browser.register("gauges@example.com")
    wid = one_node_flow(browser, "Gauge", "{{ 1 }}")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"

    async def mark_waiting(db: Any) -> None:  # as a suspended execution is stored
        await db.execute(update(Execution).where(Execution.id == execution_id).values(status="waiting"))
        await db.commit()

    db_call(mark_waiting)
    assert value(scrape(client), "patchwire_executions", status="waiting") == 1


def test_a_token_is_required_when_set(client: TestClient[Any]) -> None:
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 403
    refused = client.get("/metrics", headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    assert "Bearer" in refused.json()["detail"]
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_without_a_token_only_loopback_clients_are_answered(database_url: str, tmp_path: Path) -> None:
    # Litestar's test client connects as "testclient", not from a loopback address: refused.
    # (A real loopback client is answered: tests/test_observability.py scrapes `patchwire serve`.)
    with make_client(database_url, tmp_path) as test_client:
        refused = test_client.get("/metrics", headers={"Accept": "application/json"})
        assert refused.status_code == 403 and "PATCHWIRE_METRICS_TOKEN" in refused.json()["detail"]
    assert metrics.authorized("", None, "127.0.0.1") and metrics.authorized("", None, "::1")
    assert not metrics.authorized("", None, "10.0.0.8") and not metrics.authorized("", None, None)


def test_metrics_can_be_switched_off(database_url: str, tmp_path: Path) -> None:
    with make_client(database_url, tmp_path, PATCHWIRE_METRICS="0", PATCHWIRE_METRICS_TOKEN=TOKEN) as test_client:
        assert test_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
