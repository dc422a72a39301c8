"""Publish, version history and restore: production triggers run the published version, manual runs
the draft; the history shows every version with its author and what changed; restoring loses nothing."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from engine.executions import graph_to_json, load_graph
from engine.models import Execution, WorkflowVersion
from tests.webapp.conftest import Browser
from tests.webapp.test_sub_workflows import caller, simple


def versions(db_call: Any, workflow_id: int) -> list[WorkflowVersion]:
    return list(db_call(lambda db: db.scalars(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
                                              .order_by(WorkflowVersion.number))))


def node_ids(browser: Browser, workflow_id: int) -> list[str]:
    return re.findall(r'data-node-id="([0-9a-f]+)"', browser.get(f"/workflows/{workflow_id}").text)


def execution(db_call: Any, execution_id: int) -> Execution:
    return db_call(lambda db: db.get(Execution, execution_id))


def run(browser: Browser, workflow_id: int) -> int:
    response = browser.post(f"/workflows/{workflow_id}/run")
    assert response.status_code == 200, response.text
    execution_id = int(re.search(r"/executions/(\d+)", response.text).group(1))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    return execution_id


def test_an_invalid_draft_is_not_published(browser: Browser, db_call: Any) -> None:
    browser.register("pub-invalid@example.com")
    wid = browser.create_workflow()
    browser.add_node(wid, "http_request")  # no trigger, no URL
    refused = browser.post(f"/workflows/{wid}/publish")
    assert refused.status_code == 422 and refused.headers["hx-retarget"] == "#flash"
    assert "url" in refused.text and "trigger" in refused.text.lower()
    assert versions(db_call, wid) == []
    assert "Not published" in browser.get(f"/workflows/{wid}").text


def test_callers_run_the_published_version_and_manual_runs_the_draft(browser: Browser, db_call: Any) -> None:
    browser.register("pub@example.com")
    inner = simple(browser, "Inner", "inner")
    published = browser.post(f"/workflows/{inner}/publish")
    assert published.status_code == 200 and "Published as version 1." in published.text
    assert "Published: version 1" in browser.get(f"/workflows/{inner}").text

    # the draft moves on after publishing
    set_node = node_ids(browser, inner)[1]
    browser.configure(inner, set_node, {"name": "Inner set", "fields.name": ["inner"], "fields.value": ["draft"],
                                        "keep_existing": "on"})
    manual = execution(db_call, run(browser, inner))
    assert manual.output == {"Inner set": [{"inner": "draft"}]}  # a person's run: the draft

    outer, _ = caller(browser, "Outer", inner)
    outer_run = execution(db_call, run(browser, outer))
    assert outer_run.output == {"Call": [{"caller": "Outer", "inner": "Inner"}]}  # the published version
    (sub,) = list(db_call(lambda db: db.scalars(select(Execution).where(Execution.trigger == "sub_workflow"))))
    assert sub.version_id == versions(db_call, inner)[0].id

    browser.post(f"/workflows/{inner}/publish")  # publishing again makes the draft's version the published one
    outer_again = execution(db_call, run(browser, outer))
    assert outer_again.output == {"Call": [{"caller": "Outer", "inner": "draft"}]}


def test_history_lists_versions_with_author_and_changes(browser: Browser, db_call: Any) -> None:
    browser.register("history@example.com")
    wid = simple(browser, "Flow", "field")
    browser.post(f"/workflows/{wid}/publish")
    trigger, set_node = node_ids(browser, wid)
    browser.configure(wid, set_node, {"name": "Renamed set", "fields.name": ["field"], "fields.value": ["2"],
                                      "keep_existing": "on"})
    delay = browser.add_node(wid, "delay")
    browser.connect(wid, set_node, delay)
    browser.post(f"/workflows/{wid}/nodes/{trigger}/position", {"x": 400, "y": 400})
    run(browser, wid)

    page = browser.get(f"/workflows/{wid}/versions").text
    assert [int(n) for n in re.findall(r'data-version-number="(\d+)"', page)] == [2, 1]
    newest = page.split('data-version-number="1"')[0]
    assert "Added: Delay" in newest and "Changed: Renamed set" in newest and "Moved: Manual Trigger" in newest
    assert "Connections: +1 / −0" in newest and "history@example.com" in newest
    oldest = page.split('data-version-number="1"')[1]
    assert "published" in oldest and "First version: 2 nodes." in oldest


def test_restore_makes_a_version_the_draft_and_keeps_the_replaced_draft(browser: Browser, db_call: Any) -> None:
    browser.register("restore@example.com")
    wid = simple(browser, "Flow", "field")
    browser.post(f"/workflows/{wid}/publish")
    first = versions(db_call, wid)[0].graph
    browser.add_node(wid, "delay")  # a draft change nobody ran or published

    restored = browser.post(f"/workflows/{wid}/versions/1/restore")
    assert restored.status_code == 200 and restored.headers["hx-redirect"] == f"/workflows/{wid}?restored=1&kept=2"
    draft = db_call(lambda db: load_graph(db, wid))
    assert graph_to_json(draft)["nodes"] == first["nodes"]
    assert graph_to_json(draft)["connections"] == first["connections"]
    kept = versions(db_call, wid)[1]
    assert kept.number == 2 and [n["name"] for n in kept.graph["nodes"]][-1] == "Delay"
    page = browser.get(f"/workflows/{wid}?restored=1&kept=2").text
    assert "Version 1 restored as the draft." in page and "kept as version 2" in page
    assert run(browser, wid)  # the restored draft runs

    assert browser.post(f"/workflows/{wid}/versions/9/restore").status_code == 404


def test_other_users_cannot_see_publish_or_restore(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("mine@example.com")
    wid = simple(browser, "Mine", "field")
    browser.post(f"/workflows/{wid}/publish")
    second_browser.register("theirs@example.com")
    assert second_browser.get(f"/workflows/{wid}/versions").status_code == 404
    assert second_browser.post(f"/workflows/{wid}/publish").status_code == 404
    assert second_browser.post(f"/workflows/{wid}/versions/1/restore").status_code == 404
    assert len(versions(db_call, wid)) == 1
