"""Respond to Webhook (respond_node mode), listening to an inactive workflow (captured, runs the draft), the
circuit breaker (503) and the rate limit (429)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine.models import Execution, Webhook, Workflow
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, logged, url_of

RESPOND = {"name": "Respond", "respond_with": "json", "status": "201",
           "body": '{"ok": true, "id": "{{ item.body.id }}"}',
           "headers.name": ["X-Order"], "headers.value": ["{{ item.body.id }}"]}


def respond_flow(browser: Browser, **respond: Any) -> tuple[int, str, str]:
    wid, hook, step = build(browser, set_value="after", response_mode="respond_node")
    node = browser.add_node(wid, "respond_to_webhook", x=100, y=100)
    browser.connect(wid, hook, node)
    assert browser.configure(wid, node, {**RESPOND, **respond}).status_code == 200
    return wid, hook, node


def test_the_respond_node_answers_before_the_run_ends(browser: Browser, db_call: Any) -> None:
    browser.register("modes-respond@example.com")
    wid, hook, node = respond_flow(browser)
    wait = browser.add_node(wid, "wait", x=300, y=100)
    browser.connect(wid, node, wait)
    assert browser.configure(wid, wait, {"name": "Later", "mode": "duration", "seconds": "3600"}).status_code == 200
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={"id": "A-17"})
    assert response.status_code == 201, response.text
    assert response.json() == {"ok": True, "id": "A-17"} and response.headers["x-order"] == "A-17"
    run = db_call(lambda db: db.scalar(select(Execution).where(Execution.workflow_id == wid)))
    assert run.status in ("queued", "running", "waiting")  # it goes on (an hour's wait) after answering
    assert run.output is None or "$response" not in str(run.output)


def test_text_and_no_data_and_a_run_without_a_respond_node(browser: Browser, db_call: Any) -> None:
    browser.register("modes-text@example.com")
    wid, hook, node = respond_flow(browser, respond_with="text", status="200", body="hello {{ item.body.id }}",
                                   **{"headers.name": ["Content-Type"], "headers.value": ["text/csv"]})
    activate(browser, db_call, wid)
    text = browser.client.post(url_of(db_call, hook), json={"id": 5})
    assert (text.status_code, text.text) == (200, "hello 5") and text.headers["content-type"].startswith("text/csv")
    assert browser.configure(wid, node, {**RESPOND, "respond_with": "no_data", "status": "204"}).status_code == 200
    activate(browser, db_call, wid)
    empty = browser.client.post(url_of(db_call, hook), json={"id": 6})
    assert (empty.status_code, empty.content) == (204, b"")

    other, other_hook, _ = build(browser, set_value="x", response_mode="respond_node")  # no Respond node at all
    activate(browser, db_call, other)
    nothing = browser.client.post(url_of(db_call, other_hook), json={})
    assert nothing.status_code == 204 and int(nothing.headers["x-patchwire-execution"]) > 0


def test_a_respond_node_that_fails_answers_500(browser: Browser, db_call: Any) -> None:
    browser.register("modes-respond-fail@example.com")
    wid, hook, _ = respond_flow(browser, body='{"broken": ')
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={"id": 1})
    assert response.status_code == 500 and "did not succeed" in response.json()["detail"]


def test_listening_captures_requests_of_an_inactive_workflow_and_runs_the_draft(browser: Browser,
                                                                               db_call: Any) -> None:
    browser.register("modes-listen@example.com")
    wid, hook, _ = build(browser)

    async def listen(db: Any) -> None:
        await db.execute(update(Webhook).where(Webhook.node_id == hook).values(listening_until=time.time() + 60))
        await db.commit()

    db_call(listen)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Li"})
    assert response.status_code == 200 and "not active" in response.json()["message"]
    execution_id = response.json()["execution_id"]
    assert browser.wait_for_execution(execution_id) == "succeeded"
    run = db_call(lambda db: db.get(Execution, execution_id))
    assert (run.trigger, run.trigger_node, run.output) == ("listen", hook, {"Greet": [{"greeting": "Li"}]})
    assert logged(db_call, hook)[-1].outcome == "captured"


def test_a_paused_workflow_answers_503_with_retry_after(browser: Browser, db_call: Any) -> None:
    browser.register("modes-paused@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)

    async def pause(db: Any) -> None:
        await db.execute(update(Workflow).where(Workflow.id == wid)
                         .values(paused_until=datetime.now(UTC) + timedelta(minutes=10)))
        await db.commit()

    db_call(pause)
    response = browser.client.post(url_of(db_call, hook), json={"name": "P"})
    assert response.status_code == 503 and 590 <= int(response.headers["retry-after"]) <= 601
    assert "circuit breaker" in response.json()["detail"]
    assert db_call(lambda db: db.scalar(select(Execution.id).where(Execution.workflow_id == wid))) is None


def test_the_rate_limit_answers_429_with_retry_after(browser: Browser, db_call: Any) -> None:
    browser.register("modes-rate@example.com")
    wid, hook, _ = build(browser, response_mode="immediately", rate_limit="3")
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    statuses = [browser.client.post(url, json={"name": str(i)}).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    limited = browser.client.post(url, json={})
    assert 1 <= int(limited.headers["retry-after"]) <= 60 and "3 requests a minute" in limited.json()["detail"]
    assert [e.status for e in logged(db_call, hook)][-3:] == [429, 429, 429]


def test_the_rate_limit_window_moves_on_with_the_clock() -> None:
    from webapp.webhooks.limits import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.hit(1, 2) for _ in range(2)] == [None, None]
    assert limiter.hit(1, 2) == 60.0 and limiter.hit(2, 2) is None  # per webhook
    now[0] += 59.5
    assert limiter.hit(1, 2) == 0.5
    now[0] += 0.5
    assert limiter.hit(1, 2) is None
    assert limiter.hit(1, 0) is None  # 0: no limit
