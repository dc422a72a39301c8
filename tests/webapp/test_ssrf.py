"""The HTTP Request node behind the SSRF guard, through the real app and worker, with nothing allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.models import NodeRun
from engine.settings import load_settings
from tests.webapp.conftest import Browser
from tests.webapp.test_runs import _all_runs, run
from webapp.app import create_app


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path) -> Callable[[], Any]:
    """The default: no PATCHWIRE_HTTP_ALLOW_NETWORKS."""
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789"}
    return lambda: create_app(load_settings(env))


@pytest.mark.parametrize("target", ["sink", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/",
                                    "http://[::169.254.169.254]/latest/meta-data/", "sink6to4"])
def test_internal_addresses_are_refused_once_with_a_clear_error(browser: Browser, sink_server: Any, db_call: Any,
                                                                target: str) -> None:
    browser.register("ssrf@example.com")
    wid = browser.create_workflow("Probe")
    trigger = browser.add_node(wid, "manual_trigger")
    http = browser.add_node(wid, "http_request")
    port = sink_server.url.rsplit(":", 1)[1]
    url = {"sink": f"{sink_server.url}/ok", "sink6to4": f"http://[2002:7f00:1::]:{port}/ok"}.get(target, target)
    assert browser.configure(wid, http, {"name": "Probe", "url": url}).status_code == 200
    assert browser.connect(wid, trigger, http).status_code == 201
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "failed"
    runs: list[NodeRun] = [r for r in db_call(lambda db: _all_runs(db, execution_id)) if r.node_id == http]
    assert len(runs) == 1, "a refusal is not retried"
    message = runs[0].error["message"]
    assert "refused" in message and "not a public address" in message and "PATCHWIRE_HTTP_ALLOW_NETWORKS" in message
    assert sink_server.received == [], "nothing reached the loopback server"
