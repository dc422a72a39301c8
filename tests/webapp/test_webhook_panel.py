"""The Webhook node's panel in the editor (templates/webhooks/) and the run panel that watches an execution the editor
did not start itself (Listen, Replay) — through the web app, its in-process worker and a real database."""

from __future__ import annotations

import re
from typing import Any

from tests.webapp.conftest import Browser


def manual_flow(browser: Browser, email: str = "owner@example.com") -> tuple[int, dict[str, str]]:
    browser.register(email)
    wid = browser.create_workflow("Watched")
    ids = {"t": browser.add_node(wid, "manual_trigger"), "s": browser.add_node(wid, "set")}
    assert browser.configure(wid, ids["s"], {"name": "S", "fields.name": ["x"], "fields.value": ["1"]}).status_code == 200
    assert browser.connect(wid, ids["t"], ids["s"]).status_code == 201
    return wid, ids


def started(response: Any) -> int:
    assert response.status_code == 200, response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1))


def test_watch_answers_the_run_panel_of_an_execution_of_the_workflow(browser: Browser) -> None:
    wid, ids = manual_flow(browser)
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.wait_for_execution(execution_id) == "succeeded"

    response = browser.get(f"/workflows/{wid}/executions/{execution_id}/watch", headers={"hx-request": "true"})
    assert response.status_code == 200, response.text
    assert f'hx-ws:connect="/ws/executions/{execution_id}"' in response.text  # the canvas follows it live
    assert f'href="/executions/{execution_id}"' in response.text
    for node_id in ids.values():
        assert f'id="status-{node_id}"' in response.text


def test_watch_is_the_owners_only_and_of_that_workflow_only(browser: Browser, second_browser: Browser) -> None:
    wid, _ = manual_flow(browser)
    other_wid = browser.create_workflow("Another")
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.get(f"/workflows/{other_wid}/executions/{execution_id}/watch").status_code == 404
    assert browser.get(f"/workflows/{wid}/executions/{execution_id + 1000}/watch").status_code == 404

    second_browser.register("intruder@example.com")
    assert second_browser.get(f"/workflows/{wid}/executions/{execution_id}/watch").status_code == 404
    browser.wait_for_execution(execution_id)
