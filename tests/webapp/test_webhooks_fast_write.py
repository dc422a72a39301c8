"""The route's one-call write on SQLite (webapp/webhooks/sqlite_write.py) stores the same rows as the ORM path
on PostgreSQL — read back through the ORM on both profiles — and, on SQLite, waits for a write lock another
connection holds instead of failing, then commits both rows together."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from engine.models import Execution, Webhook, WebhookRequest
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, logged, url_of


def _runs(db_call: Any, workflow_id: int) -> list[Execution]:
    return list(db_call(lambda db: db.scalars(select(Execution).where(Execution.workflow_id == workflow_id)
                                              .order_by(Execution.id))))


def test_the_rows_of_a_request_read_back_as_written(browser: Browser, db_call: Any) -> None:
    browser.register("hook-rows@example.com")
    wid, hook, _ = build(browser, response_mode="immediately")
    activate(browser, db_call, wid)
    before = datetime.now(UTC)
    body = {"name": "Ünïcode ✓", "n": 1.5, "nested": {"list": [1, None, True]}}
    response = browser.client.post(url_of(db_call, hook) + "?q=1", json=body)
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    assert browser.wait_for_execution(execution_id) == "succeeded"
    [run] = _runs(db_call, wid)
    webhook = db_call(lambda db: db.scalar(select(Webhook).where(Webhook.node_id == hook)))
    version = db_call(lambda db: db.scalar(select(Execution.version_id).where(Execution.id == execution_id)))
    assert run.id == execution_id and version is not None
    assert (run.trigger, run.trigger_node, run.owner_id, run.interruptions) == ("webhook", hook, webhook.owner_id, 0)
    assert run.input["body"] == body and run.input["query"] == {"q": "1"} and run.input["method"] == "POST"
    assert run.created_at.tzinfo is not None and before - timedelta(seconds=1) <= run.created_at
    assert run.created_at <= datetime.now(UTC)
    assert run.output == {"Greet": [{"greeting": "Ünïcode ✓"}]}
    entry = logged(db_call, hook)[-1]
    assert (entry.execution_id, entry.status, entry.outcome, entry.method) == (execution_id, 202, "ran", "POST")
    assert entry.response == {"json": {"execution_id": execution_id}} and entry.message is None
    assert entry.input == run.input and abs(entry.received_at - run.created_at) < timedelta(seconds=5)


def test_a_request_waits_for_a_held_write_lock_then_commits_both_rows(browser: Browser, db_call: Any,
                                                                       database_url: str) -> None:
    browser.register("hook-lock@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    if not database_url.startswith("sqlite"):  # PostgreSQL: the ORM path, same answer
        response = browser.client.post(url, json={"name": "Pg"})
        assert response.status_code == 200 and response.json() == {"greeting": "Pg"}
        return
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(browser.client.post(url, json={"name": "Lo"})))
    sender.start()
    try:
        # give the request time to reach its write (not a timed assertion: whatever the timing, it cannot be
        # answered nor its row exist while the lock is held; the point is that it then waits, not fails)
        sender.join(timeout=0.5)
        assert not answers and holder.execute("SELECT count(*) FROM executions").fetchone()[0] == 0
    finally:
        holder.execute("COMMIT")
        holder.close()
    sender.join(timeout=60)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json() == {"greeting": "Lo"}
    [run] = _runs(db_call, wid)
    assert run.status == "succeeded"
    rows = db_call(lambda db: db.scalars(select(WebhookRequest).where(WebhookRequest.execution_id == run.id)))
    assert len(list(rows)) == 1
