"""The home dashboard: the owner's counts and recent failures (isolated between users), the global
worker and queue facts, the live partials, and what became of the old redirect."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.queue import queue_from_url
from tests.webapp.conftest import Browser
from tests.webapp.dashboard_rows import Row, add_rows, user_id
from webapp.dashboard.home import queue_facts

BOOM = ("Call API", "HTTPStatusError", "503 Service Unavailable")
LOST = ("Workflow", "Crashed", "worker lost")


def count(html: str, name: str) -> int:
    return int(re.search(rf'id="count-{name}">(\d+)<', html).group(1))


def test_counts_and_recent_failures_are_the_owners_own(browser: Browser, second_browser: Browser,
                                                        db_call: Any) -> None:
    now = datetime.now(UTC)
    browser.register("ada@example.com")
    ada = user_id(db_call, "ada@example.com")
    first, second = browser.create_workflow("Ada's sync"), browser.create_workflow("Ada's report")
    ada_ids = add_rows(db_call, first, ada, [
        Row(now - timedelta(hours=25), "failed", 10, BOOM),   # failed, but more than 24 h ago
        Row(now - timedelta(hours=3), "succeeded", 10), Row(now - timedelta(hours=2), "succeeded", 10),
        Row(now - timedelta(hours=2), "failed", 10, BOOM),
        Row(now - timedelta(minutes=30), "running"), Row(now - timedelta(minutes=20), "running"),
        Row(now - timedelta(minutes=10), "queued"),
    ])
    ada_ids += add_rows(db_call, second, ada, [
        Row(now - timedelta(hours=1), "crashed", 10, LOST),
        Row(now - timedelta(days=3), "waiting"),              # waiting since long ago still counts as waiting
        Row(now - timedelta(days=8), "failed", 10, BOOM),     # too old for the recent failures
    ])
    second_browser.register("bob@example.com")
    bob = user_id(db_call, "bob@example.com")
    bob_flow = second_browser.create_workflow("Bob's secret flow")
    bob_ids = add_rows(db_call, bob_flow, bob, [Row(now - timedelta(minutes=5), "running"),
                                                Row(now - timedelta(minutes=4), "failed", 10, ("Leak", "Boom", "bob only"))])

    data = browser.get("/", headers={"accept": "application/json"}).json()
    assert data["counts"] == {"running": 2, "queued": 1, "waiting": 1, "failed_24h": 2}
    assert [f["execution_id"] for f in data["failures"]] == [ada_ids[7], ada_ids[3], ada_ids[0]]  # newest first
    assert data["failures"][0]["workflow_name"] == "Ada's report" and data["failures"][0]["node"] == "Workflow"
    assert data["failures"][1]["message"] == "503 Service Unavailable" and data["failures"][1]["node"] == "Call API"

    page = browser.get("/")
    assert page.status_code == 200 and "<h1>Home</h1>" in page.text and 'href="/workflows"' in page.text
    assert (count(page.text, "running"), count(page.text, "queued"), count(page.text, "waiting"),
            count(page.text, "failed-24h")) == (2, 1, 1, 2)
    for execution_id in (ada_ids[7], ada_ids[3], ada_ids[0]):
        assert f'href="/executions/{execution_id}"' in page.text
    assert f'href="/executions/{ada_ids[9]}"' not in page.text
    assert "Bob" not in page.text and "bob only" not in page.text and f"/executions/{bob_ids[1]}" not in page.text

    bobs = second_browser.get("/", headers={"accept": "application/json"}).json()
    assert bobs["counts"] == {"running": 1, "queued": 0, "waiting": 0, "failed_24h": 1}
    assert [f["execution_id"] for f in bobs["failures"]] == [bob_ids[1]]
    assert "Ada" not in second_browser.get("/").text


def test_the_partials_are_fragments_for_htmx_and_the_page_for_a_browser(browser: Browser, db_call: Any) -> None:
    browser.register("parts@example.com")
    owner = user_id(db_call, "parts@example.com")
    wid = browser.create_workflow("Parts")
    for part, element in (("counts", "home-counts"), ("finished", "home-finished"), ("workers", "home-workers"),
                          ("failures", "home-failures")):
        fragment = browser.get(f"/home/{part}", headers={"hx-request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert f'<section id="{element}"' in fragment.text
        assert f'hx-get="/home/{part}"' in fragment.text and 'pw:executions-changed from:body"' in fragment.text
        full = browser.get(f"/home/{part}")
        assert full.status_code == 200 and "<html" in full.text and 'id="home-counts"' in full.text
        api = browser.get(f"/home/{part}", headers={"accept": "application/json"})
        assert api.status_code == 200 and list(api.json()) == [{"counts": "counts", "finished": "finished",
                                                                "workers": "queue", "failures": "failures"}[part]]
    before = browser.get("/home/counts", headers={"hx-request": "true"}).text
    assert count(before, "failed-24h") == 0
    ids = add_rows(db_call, wid, owner, [Row(datetime.now(UTC) - timedelta(minutes=1), "failed", 5, BOOM)])
    after = browser.get("/home/counts", headers={"hx-request": "true"}).text
    assert count(after, "failed-24h") == 1
    assert f'href="/executions/{ids[0]}"' in browser.get("/home/failures", headers={"hx-request": "true"}).text


def test_a_run_that_just_succeeded_is_listed_with_its_status(browser: Browser, db_call: Any) -> None:
    browser.register("finished@example.com")
    assert "No execution has finished yet." in browser.get("/").text
    wid = browser.create_workflow("Just ran")
    trigger, step = browser.add_node(wid, "manual_trigger"), browser.add_node(wid, "set")
    assert browser.configure(wid, step, {"name": "Mark", "fields.name": ["done"], "fields.value": ["yes"]}).status_code == 200
    assert browser.connect(wid, trigger, step).status_code == 201
    response = browser.post(f"/workflows/{wid}/run")
    assert response.status_code == 200, response.text
    execution_id = int(re.search(r"/executions/(\d+)", response.text).group(1))
    assert browser.wait_for_execution(execution_id) == "succeeded"

    row = re.search(rf'<tr id="finished-{execution_id}">(.*?)</tr>', browser.get("/").text, re.S)
    assert row, "the run that just succeeded is not on Home"
    assert 'data-status="succeeded">succeeded<' in row.group(1) and "Just ran" in row.group(1)
    fragment = browser.get("/home/finished", headers={"hx-request": "true"}).text
    assert f'id="finished-{execution_id}"' in fragment and "No execution has finished yet." not in fragment
    data = browser.get("/", headers={"accept": "application/json"}).json()
    assert [(f["execution_id"], f["status"]) for f in data["finished"]] == [(execution_id, "succeeded")]

    owner = user_id(db_call, "finished@example.com")  # newest end first, five at most, running ones left out
    now = datetime.now(UTC) + timedelta(minutes=1)
    ids = add_rows(db_call, wid, owner, [Row(now + timedelta(seconds=n), "failed", 5, BOOM) for n in range(5)]
                   + [Row(now + timedelta(seconds=9), "running")])
    listed = [f["execution_id"] for f in browser.get("/", headers={"accept": "application/json"}).json()["finished"]]
    assert listed == ids[4::-1]


@pytest.mark.parametrize("part", ["nope", "counts.json", "..%2Fcounts", "Counts"])
def test_unknown_partials_are_404(browser: Browser, part: str) -> None:
    browser.register("lost-part@example.com")
    response = browser.get(f"/home/{part}", headers={"hx-request": "true"})
    assert response.status_code == 404 and response.headers.get("hx-retarget") == "#flash"
    api = browser.get(f"/home/{part}", headers={"accept": "application/json"})
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


def test_the_dashboard_needs_a_login(client: Any) -> None:
    anonymous = Browser(client)
    page = anonymous.get("/", follow_redirects=False)
    assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")
    assert anonymous.get("/home/counts", headers={"hx-request": "true"}).status_code == 401
    assert anonymous.get("/", headers={"accept": "application/json"}).status_code == 401


def test_register_leads_to_the_workflows_and_login_to_the_dashboard(browser: Browser) -> None:
    response = browser.register("newcomer@example.com")
    assert response.headers["location"] == "/workflows"
    browser.post("/logout", htmx=False)
    login = browser.post("/login", {"email": "newcomer@example.com", "password": "correct horse battery"},
                         htmx=False, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert "<h1>Home</h1>" in browser.get("/").text


def test_the_in_process_worker_shows_with_its_load(browser: Browser) -> None:
    """The embedded profile's worker reports host, pid and concurrency (PatchwireWorker); a global fact."""
    browser.register("workers@example.com")
    deadline = time.monotonic() + 15
    while True:
        workers = browser.get("/", headers={"accept": "application/json"}).json()["queue"]["workers"]
        if workers or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(workers) == 1, workers
    assert workers[0]["concurrency"] == 10 and workers[0]["active"] == 0 and isinstance(workers[0]["pid"], int)
    page = browser.get("/home/workers", headers={"hx-request": "true"}).text
    assert re.search(r'id="workers-online">1<', page) and "0 / 10 busy" in page and "all users" in page


def test_queue_depth_counts_every_job_waiting_in_the_queue(tmp_path: Path, client: Any) -> None:
    async def scenario() -> Any:
        queue = queue_from_url(f"sqlite:///{tmp_path / 'depth.db'}")
        await queue.connect()
        try:
            for n in range(3):
                await queue.enqueue("run_execution", key=f"depth-{n}", execution_id=n)
            return await queue_facts(queue)
        finally:
            await queue.disconnect()

    facts = client.blocking_portal.call(scenario)
    assert (facts.queued, facts.active, facts.workers, facts.error) == (3, 0, [], None)


def test_a_queue_that_does_not_answer_is_reported_not_raised(client: Any) -> None:
    async def scenario() -> Any:
        queue = queue_from_url("redis://127.0.0.1:9/0")  # discard port: nothing listens
        return await queue_facts(queue)

    facts = client.blocking_portal.call(scenario)
    assert facts.error and "Error" in facts.error and facts.workers == []
