"""Activation in the web app (SQLite and PostgreSQL): the list's Active toggle and Next run column, the editor's
switch, activation problems shown like Publish's, publishing while active, the failing-trigger marker and banner,
owner scoping and CSRF. The automatic trigger node types are the tests' own (tests/engine/trigger_types.py),
registered on the app's registry for each test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.models import Trigger, Workflow, WorkflowVersion
from engine.triggers import NO_TRIGGER_MESSAGE
from tests.engine.trigger_types import TEST_TRIGGER_TYPES
from tests.webapp.conftest import Browser
from webapp.workflows.activation import DEACTIVATED_NOTICE


@pytest.fixture(autouse=True)
def trigger_types() -> Iterator[None]:
    from nodes import registry

    for node_type in TEST_TRIGGER_TYPES:
        registry.register(node_type)
    try:
        yield
    finally:
        for node_type in TEST_TRIGGER_TYPES:
            registry.unregister(node_type)


def scheduled(browser: Browser, name: str = "Nightly", minutes: int = 15) -> tuple[int, str]:
    """A workflow: test schedule (every ``minutes``) → Set; its id and the schedule node's id."""
    wid = browser.create_workflow(name)
    every = browser.add_node(wid, "test_every")
    assert browser.configure(wid, every, {"name": "Every", "minutes": str(minutes)}).status_code == 200
    target = browser.add_node(wid, "set", x=200)
    assert browser.connect(wid, every, target).status_code == 201
    return wid, every


def triggers(db_call: Any, wid: int) -> list[Trigger]:
    return list(db_call(lambda db: db.scalars(select(Trigger).where(Trigger.workflow_id == wid))))


def workflow(db_call: Any, wid: int) -> Workflow:
    return db_call(lambda db: db.get(Workflow, wid))


def published_numbers(db_call: Any, wid: int) -> list[int]:
    return list(db_call(lambda db: db.scalars(select(WorkflowVersion.number).where(
        WorkflowVersion.workflow_id == wid, WorkflowVersion.published_at.is_not(None)))))


def row_of(html: str, wid: int) -> str:
    found = re.search(rf'<tr id="workflow-{wid}">.*?</tr>', html, re.S)
    assert found, html
    return found.group(0)


def test_the_list_toggle_activates_and_shows_the_next_run_then_deactivates(browser: Browser, db_call: Any) -> None:
    browser.register("act-list@example.com")
    wid, every = scheduled(browser)
    before = row_of(browser.get("/workflows").text, wid)
    assert 'aria-checked="false"' in before and ">Inactive<" in before
    assert f'hx-post="/workflows/{wid}/activate?where=list"' in before
    assert re.search(rf'id="workflow-{wid}-next-run">—<', before)

    row = browser.post(f"/workflows/{wid}/activate?where=list")
    assert row.status_code == 200, row.text
    assert workflow(db_call, wid).active and published_numbers(db_call, wid) == [1]
    [trigger] = triggers(db_call, wid)
    assert (trigger.node_id, trigger.kind, trigger.config) == (every, "schedule", {"minutes": 15, "missed": "skip"})
    shown = trigger.next_run_at.strftime("%Y-%m-%d %H:%M") + " UTC"
    assert trigger.next_run_at > datetime.now(UTC) - timedelta(seconds=5) and trigger.next_run_at.minute % 15 == 0
    for html in (row.text, row_of(browser.get("/workflows").text, wid)):
        assert 'aria-checked="true"' in html and ">Active<" in html
        assert f'hx-post="/workflows/{wid}/deactivate?where=list"' in html
        assert f'<time datetime="{trigger.next_run_at.isoformat()}">{shown}</time>' in html

    off = browser.post(f"/workflows/{wid}/deactivate?where=list")
    assert off.status_code == 200 and 'aria-checked="false"' in off.text
    assert re.search(rf'id="workflow-{wid}-next-run">—<', off.text)
    assert not workflow(db_call, wid).active and triggers(db_call, wid) == []


def test_activation_problems_are_shown_like_publish_s_and_nothing_changes(browser: Browser, db_call: Any) -> None:
    browser.register("act-problems@example.com")
    wid = browser.create_workflow()
    start = browser.add_node(wid, "manual_trigger")
    browser.connect(wid, start, browser.add_node(wid, "set", x=200))
    refused = browser.post(f"/workflows/{wid}/activate")
    assert refused.status_code == 422 and refused.headers["hx-retarget"] == "#flash"
    assert "Cannot activate" in refused.text and "Add a Webhook, Schedule or polling trigger" in refused.text
    api = browser.post(f"/workflows/{wid}/activate", htmx=False, headers={"accept": "application/json"})
    assert api.status_code == 422 and api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["problems"] == [{"message": NO_TRIGGER_MESSAGE, "node_id": None}]

    browser.add_node(wid, "test_every", x=0, y=200)  # a trigger now, but an HTTP Request without its URL
    browser.add_node(wid, "http_request", x=200, y=200)
    refused = browser.post(f"/workflows/{wid}/activate")
    assert refused.status_code == 422 and "url" in refused.text
    assert "Add a Webhook, Schedule or polling trigger" not in refused.text
    assert not workflow(db_call, wid).active and published_numbers(db_call, wid) == [] and triggers(db_call, wid) == []


def test_the_editor_switch_activates_and_updates_the_publish_state(browser: Browser, db_call: Any) -> None:
    browser.register("act-editor@example.com")
    wid, _ = scheduled(browser)
    page = browser.get(f"/workflows/{wid}").text
    assert 'id="active-toggle"' in page and f'hx-post="/workflows/{wid}/activate"' in page and "Not published" in page
    switched = browser.post(f"/workflows/{wid}/activate")
    assert switched.status_code == 200, switched.text
    assert 'id="active-switch"' in switched.text and 'aria-checked="true"' in switched.text
    assert 'id="publish-state"' in switched.text and 'hx-swap-oob="true"' in switched.text
    assert "Published: version 1" in switched.text
    page = browser.get(f"/workflows/{wid}").text
    assert f'hx-post="/workflows/{wid}/deactivate"' in page and "Published: version 1" in page
    off = browser.post(f"/workflows/{wid}/deactivate")
    assert off.status_code == 200 and 'aria-checked="false"' in off.text
    assert not workflow(db_call, wid).active


def test_publishing_while_active_moves_the_triggers_and_without_a_trigger_deactivates(browser: Browser,
                                                                                      db_call: Any) -> None:
    browser.register("act-publish@example.com")
    wid, every = scheduled(browser)
    browser.post(f"/workflows/{wid}/activate")
    browser.configure(wid, every, {"name": "Every", "minutes": "5"})
    published = browser.post(f"/workflows/{wid}/publish")
    assert published.status_code == 200 and "Published as version 2." in published.text
    [trigger] = triggers(db_call, wid)
    assert trigger.config["minutes"] == 5 and trigger.next_run_at.minute % 5 == 0
    assert trigger.version_id == db_call(lambda db: db.scalar(select(WorkflowVersion.id).where(
        WorkflowVersion.workflow_id == wid, WorkflowVersion.number == 2)))

    start = browser.add_node(wid, "manual_trigger", y=200)  # the schedule goes, a manual trigger takes its place
    target = re.findall(r'data-node-id="([0-9a-f]+)"', browser.get(f"/workflows/{wid}").text)
    assert browser.delete(f"/workflows/{wid}/nodes/{every}").status_code == 204
    browser.connect(wid, start, next(n for n in target if n not in (every, start)))
    published = browser.post(f"/workflows/{wid}/publish")
    assert published.status_code == 200, published.text
    assert DEACTIVATED_NOTICE in published.text and 'aria-checked="false"' in published.text
    assert not workflow(db_call, wid).active and triggers(db_call, wid) == []


def test_a_failing_trigger_shows_its_error_in_the_list_and_the_editor(browser: Browser, db_call: Any) -> None:
    browser.register("act-failing@example.com")
    wid, every = scheduled(browser, "Feed watcher")
    browser.post(f"/workflows/{wid}/activate")
    assert "trigger-failing" not in row_of(browser.get("/workflows").text, wid)
    failed_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

    async def fail(db: Any) -> None:
        await db.execute(update(Trigger).where(Trigger.workflow_id == wid).values(
            failures=3, last_error="the feed answered 500 Internal Server Error", last_error_at=failed_at))
        await db.execute(update(Workflow).where(Workflow.id == wid).values(
            paused_until=datetime.now(UTC) + timedelta(minutes=30)))
        await db.commit()

    db_call(fail)
    row = row_of(browser.get("/workflows").text, wid)
    assert f'id="workflow-{wid}-failing-{every}"' in row
    assert "trigger “Every” failing: the feed answered 500 Internal Server Error" in row
    assert f'id="workflow-{wid}-paused"' in row and "paused until" in row  # the breaker's marker stays
    page = browser.get(f"/workflows/{wid}").text
    assert f'id="trigger-failing-{every}"' in page
    assert "the feed answered 500 Internal Server Error" in page and "3 times in a row" in page
    assert "2026-12-01 09:30 UTC" in page


def test_another_user_gets_404_and_changes_nothing(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("act-owner@example.com")
    wid, _ = scheduled(browser)
    second_browser.register("act-stranger@example.com")
    for path in (f"/workflows/{wid}/activate", f"/workflows/{wid}/activate?where=list", f"/workflows/{wid}/deactivate"):
        assert second_browser.post(path).status_code == 404, path
    assert not workflow(db_call, wid).active and triggers(db_call, wid) == []
    assert f"workflow-{wid}" not in second_browser.get("/workflows").text
    browser.post(f"/workflows/{wid}/activate")
    assert second_browser.post(f"/workflows/{wid}/deactivate").status_code == 404
    assert workflow(db_call, wid).active and len(triggers(db_call, wid)) == 1


def test_activation_needs_the_csrf_token(browser: Browser, db_call: Any) -> None:
    browser.register("act-csrf@example.com")
    wid, _ = scheduled(browser)
    forged = browser.post(f"/workflows/{wid}/activate", headers={"x-csrftoken": "forged"})
    assert forged.status_code == 403
    assert not workflow(db_call, wid).active and triggers(db_call, wid) == []
