"""A webhook that answers with its output runs on the web process's loop (webapp/webhooks/inline.py): inserted
claimed, never queued; with no room, through the queue; handed to the queue when the process stops mid-run;
a row left claimed by a process that died is resumed by the reconciler. And the route's way in before
Litestar's router (webapp/webhooks/front.py) keeps the security headers, HEAD and the HTTP metrics."""

from __future__ import annotations

import time
from typing import Any

from litestar.testing import TestClient

from engine.executions import job_key
from engine.models import Execution
from engine.worker import reconcile
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, slow_build, url_of, webhook_of


def _execution(db_call: Any, execution_id: int) -> Execution:
    return db_call(lambda db: db.get(Execution, execution_id))


def _job(client: TestClient[Any], execution_id: int) -> Any:
    runtime = client.app.state.runtime
    return client.blocking_portal.call(runtime.queue.job, job_key(execution_id))


def _only_execution(db_call: Any) -> Execution:
    from sqlalchemy import select

    rows = db_call(lambda db: db.scalars(select(Execution)))
    rows = list(rows)
    assert len(rows) == 1, rows
    return rows[0]


def test_the_run_goes_on_in_the_web_process_inserted_claimed(browser: Browser, db_call: Any) -> None:
    browser.register("inline@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Ada"})
    assert response.status_code == 200, response.text
    assert response.json()["greeting"] == "Ada"
    execution = _only_execution(db_call)
    assert execution.status == "succeeded" and execution.trigger == "webhook"
    assert execution.started_at == execution.created_at, "inserted claimed: started when it was created"
    assert execution.interruptions == 0
    assert _job(browser.client, execution.id) is None, "never queued"


def test_with_no_room_the_queue_runs_it(app_factory: Any, db_call: Any) -> None:
    with TestClient(app=app_factory(webhook_inline_runs=0)) as client:
        browser = Browser(client)
        browser.register("no-room@example.com")
        wid, hook, _ = build(browser)
        activate(browser, lambda fn: _call(client, fn), wid)
        response = client.post(url_of(lambda fn: _call(client, fn), hook), json={"name": "Bo"})
        assert response.status_code == 200, response.text
        assert response.json()["greeting"] == "Bo"
        execution = _only_execution(lambda fn: _call(client, fn))
        job = _job(client, execution.id)
        assert job is not None and job.status == "complete", "the queue's worker ran it"


def _call(client: TestClient[Any], fn: Any) -> Any:
    async def run() -> Any:
        async with client.app.state.runtime.sessions() as db:
            return await fn(db)

    return client.blocking_portal.call(run)


def test_a_run_cut_off_by_shutdown_is_handed_to_the_queue(browser: Browser, db_call: Any) -> None:
    browser.register("inline-stop@example.com")
    _, hook = slow_build(browser, db_call)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Cy"})
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    runtime = browser.client.app.state.runtime
    browser.client.blocking_portal.call(runtime.inline.close)  # as the web process does when it stops
    stopped = _execution(db_call, execution_id)
    assert stopped.status == "running" and stopped.lease_token is None, "handed back: the lease is released"

    async def restore() -> list[int]:
        return await reconcile(runtime.queue, runtime.sessions, job_timeout=60, older_than=0)

    assert browser.client.blocking_portal.call(restore) == [execution_id]
    assert browser.wait_for_execution(execution_id) == "succeeded"  # by the embedded worker
    assert response.json()["execution_id"] == execution_id


def test_a_row_left_claimed_by_a_dead_process_is_resumed(browser: Browser, db_call: Any) -> None:
    """What a web process killed mid-run leaves behind: the execution running, its lease run out."""
    browser.register("inline-dead@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    runtime = browser.client.app.state.runtime
    target = browser.client.blocking_portal.call(runtime.lane.find_target, webhook_of(db_call, hook).token)
    assert target is not None and target.live
    from webapp.webhooks.receive import _claim  # the claim the route builds for a run it starts at once

    item = {"method": "POST", "path": "/webhook/x", "headers": {}, "query": {}, "body": {"name": "Di"}}

    async def insert_claimed() -> int:
        if runtime.engine.dialect.name == "sqlite":
            from engine.models import utcnow
            from webapp.webhooks.sqlite_write import started_write

            write = started_write(workflow_id=target.workflow_id, owner_id=target.owner_id,
                                  version_id=target.version_id, node_id=target.node_id, webhook_id=target.webhook_id,
                                  method="POST", item=item, trigger="webhook", created_at=utcnow(),
                                  answer=lambda _id: (0, None), lease=("dead-process", time.time() - 1))
            return (await runtime.lane.write(write))[0]
        from engine.models import utcnow

        ids = await runtime.lane.insert_claimed(
            workflow_id=target.workflow_id, owner_id=target.owner_id, version_id=target.version_id,
            node_id=target.node_id, webhook_id=target.webhook_id, method="POST", item=item, created_at=utcnow(),
            lease=("dead-process", time.time() - 1))
        return ids[0]

    execution_id = browser.client.blocking_portal.call(insert_claimed)
    assert _claim(target, item, _execution(db_call, execution_id).created_at, None).trigger_node == target.node_id
    left = _execution(db_call, execution_id)
    assert left.status == "running" and left.lease_token == "dead-process"

    async def restore() -> list[int]:
        return await reconcile(runtime.queue, runtime.sessions, job_timeout=60, older_than=0)

    assert browser.client.blocking_portal.call(restore) == [execution_id]
    assert browser.wait_for_execution(execution_id) == "succeeded"
    resumed = _execution(db_call, execution_id)
    assert resumed.interruptions == 1, "the claim saw a lease nobody released: an interruption"
    assert resumed.output["Greet"][0]["greeting"] == "Di"


def test_the_fast_way_in_keeps_security_headers_head_and_metrics(app_factory: Any) -> None:
    with TestClient(app=app_factory(metrics_token="scrape-token")) as client:
        browser = Browser(client)
        browser.register("inline-front@example.com")
        db_call = lambda fn: _call(client, fn)  # noqa: E731
        wid, hook, _ = build(browser, set_value="hi", methods="POST,HEAD", response_mode="immediately")
        activate(browser, db_call, wid)
        url = url_of(db_call, hook)
        response = client.post(url, json={"name": "Ed"})
        assert response.status_code == 202, response.text
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in response.headers
        assert response.headers["content-type"] == "application/json"
        head = client.head(url)
        assert head.status_code == 202 and head.content == b""
        assert int(head.headers["content-length"]) > 0
        assert client.request("TRACE", url).status_code == 405, "a method no webhook takes: the router's 405"
        metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).text
        line = next((line for line in metrics.splitlines() if line.startswith("patchwire_http_requests_total{")
                     and 'path="/webhook/{key:path}"' in line and 'status_code="202"' in line), None)
        assert line is not None and float(line.rsplit(" ", 1)[1]) >= 2, metrics[-2000:]
