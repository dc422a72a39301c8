"""The executions page: filters, search, keyset pages, bad input and owner isolation (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from engine.models import Execution
from tests.webapp.conftest import Browser

STATUSES = ("succeeded", "failed", "running", "queued")
TRIGGERS = ("manual", "cli", "retry")
BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="exec-(\d+)"', html)]


def older_cursor(html: str) -> str | None:
    found = re.search(r'href="/executions\?([^"]*before=\d+[^"]*)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def newer_cursor(html: str) -> str | None:
    found = re.search(r'href="/executions\?([^"]*after=\d+[^"]*)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def one_run(browser: Browser, name: str = "Orders") -> tuple[int, int]:
    """A workflow with one finished run (so a version exists): (workflow id, execution id)."""
    wid = browser.create_workflow(name)
    browser.add_node(wid, "manual_trigger")
    execution_id = int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{wid}/run").text).group(1))
    browser.wait_for_execution(execution_id)
    return wid, execution_id


def add_executions(db_call: Callable[..., Any], template_id: int, count: int, **fixed: Any) -> list[int]:
    """``count`` executions like ``template_id`` (same workflow, owner, version), i-th: status, trigger and input
    cycle, created one minute apart after ``BASE``."""

    async def run(db: Any) -> list[int]:
        template = await db.get_one(Execution, template_id)
        rows = [{"workflow_id": template.workflow_id, "owner_id": template.owner_id, "version_id": template.version_id,
                 "status": STATUSES[i % 4], "trigger": TRIGGERS[i % 3], "input": {"customer": f"cust{i}", "n": i},
                 "created_at": BASE + timedelta(minutes=i),
                 "error": {"node_name": "Charge", "message": "card declined"} if i % 4 == 1 else None, **fixed}
                for i in range(count)]
        ids = (await db.execute(insert(Execution).returning(Execution.id), rows)).scalars().all()
        await db.commit()
        return sorted(ids)

    return db_call(run)


def test_first_page_older_and_newer_pages(browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("pages@example.com")
    _, first = one_run(browser)
    ids = add_executions(db_call, first, 120)
    everything = sorted([first, *ids], reverse=True)

    page1 = browser.get("/executions").text
    assert shown_ids(page1) == everything[:50]
    assert newer_cursor(page1) is None, "the first page has no newer page"
    page2 = browser.get(f"/executions?{older_cursor(page1)}").text
    assert shown_ids(page2) == everything[50:100]
    page3 = browser.get(f"/executions?{older_cursor(page2)}").text
    assert shown_ids(page3) == everything[100:]
    assert older_cursor(page3) is None, "the last page has no older page"
    back = browser.get(f"/executions?{newer_cursor(page3)}").text
    assert shown_ids(back) == everything[50:100]
    assert 'hx-ws:connect="/ws/executions' in page1 and "hx-ws:connect" not in page2, "only the first page is live"


def test_filters_by_status_workflow_trigger_and_time(browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("filters@example.com")
    wid, first = one_run(browser)
    other_wid, other_first = one_run(browser, "Invoices")
    ids = add_executions(db_call, first, 40)
    other = add_executions(db_call, other_first, 8)

    failed = shown_ids(browser.get("/executions?status=failed").text)
    assert failed and failed == sorted(_with(db_call, status="failed"), reverse=True)
    both = set(shown_ids(browser.get("/executions?status=failed&status=queued").text))
    assert both == set(_with(db_call, status="failed")) | set(_with(db_call, status="queued"))

    by_workflow = shown_ids(browser.get(f"/executions?workflow={other_wid}").text)
    assert set(by_workflow) == {other_first, *other}
    cli = shown_ids(browser.get(f"/executions?trigger=cli&workflow={wid}").text)
    assert cli == sorted(ids[1::3], reverse=True)

    window = browser.get("/executions?from=2026-11-01T12:10&to=2026-11-01T12:20").text
    assert shown_ids(window) == sorted(ids[10:20], reverse=True), "from is inclusive, to exclusive"
    day = shown_ids(browser.get("/executions?from=2026-11-01&to=2026-11-01").text)
    assert set(day) == set(ids + other), "a date alone is the whole day"
    assert "No executions match these filters." in browser.get("/executions?to=2020-01-01").text


def test_filters_by_the_automatic_triggers_and_the_editor_s_webhook_runs(browser: Browser,
                                                                       db_call: Callable[..., Any]) -> None:
    browser.register("trigger-filters@example.com")
    _, first = one_run(browser)
    kinds = ("webhook", "schedule", "poll", "replay", "listen")
    made = {kind: add_executions(db_call, first, 2, trigger=kind) for kind in kinds}
    page = browser.get("/executions").text
    for kind in kinds:
        assert f'<option value="{kind}"' in page, kind
        assert shown_ids(browser.get(f"/executions?trigger={kind}").text) == sorted(made[kind], reverse=True), kind


def _with(db_call: Callable[..., Any], **where: Any) -> list[int]:
    async def run(db: Any) -> list[int]:
        query = select(Execution.id).filter_by(**where)
        return list((await db.scalars(query)).all())
    return db_call(run)


def test_search_matches_values_in_the_trigger_input(browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("search@example.com")
    _, first = one_run(browser)
    ids = add_executions(db_call, first, 30)
    found = shown_ids(browser.get("/executions?q=cust2").text)
    assert found == sorted([ids[2], *ids[20:30]], reverse=True)
    assert shown_ids(browser.get("/executions?q=CUST7").text) == sorted([ids[7]], reverse=True), "case-insensitive"
    assert shown_ids(browser.get("/executions?q=customer").text) == [], "keys are not values"
    assert shown_ids(browser.get("/executions?q=%25").text) == [], "LIKE wildcards are taken literally"
    assert shown_ids(browser.get("/executions?q=29").text) == [ids[29]], "numbers are values too"
    combined = shown_ids(browser.get("/executions?q=cust2&status=queued").text)
    assert combined == sorted([i for n, i in enumerate(ids) if n in (23, 27)], reverse=True)


def test_search_is_bounded_and_pages_through_every_match(browser: Browser, db_call: Callable[..., Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from webapp.executions import listing

    monkeypatch.setattr(listing, "SEARCH_WINDOW", 10)  # a window of 10 executions per page
    browser.register("window@example.com")
    _, first = one_run(browser)
    ids = add_executions(db_call, first, 35)
    seen: list[int] = []
    query: str | None = "q=cust1"
    for _ in range(10):
        html = browser.get(f"/executions?{query}").text
        seen += shown_ids(html)
        query = older_cursor(html)
        if query is None:
            break
        assert "q=cust1" in query, "the cursor keeps the search"
    assert seen == sorted([ids[1], *ids[10:20]], reverse=True)


def test_htmx_gets_the_table_alone(browser: Browser) -> None:
    browser.register("htmx@example.com")
    one_run(browser)
    partial = browser.get("/executions?status=succeeded", headers={"hx-request": "true"})
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<div id="exec-table">') and "<html" not in partial.text
    assert 'hx-ws:connect="/ws/executions?status=succeeded"' in partial.text
    full = browser.get("/executions?status=succeeded").text
    assert "<html" in full and 'name="status" value="succeeded" checked' in full


BAD_FILTERS = [
    "status=bogus", "status=<script>", "trigger=webhookx", "from=2026-13-01", "from=yesterday", "to=2026-02-30",
    "from=2026-11-02&to=2026-11-01", "before=-1", "before=0", "before=99999999999", "after=1e3", "before=abc",
    "before=5&after=3", "workflow=0", "workflow=-4", "workflow=x", "q=" + "a" * 201, "sort=id", "limit=1000",
    "from=2026-11-01T25:00", "to=9999-12-31",
]


@pytest.mark.parametrize("query", BAD_FILTERS)
def test_bad_filters_are_a_clear_400(browser: Browser, query: str) -> None:
    browser.register("bad@example.com")
    page = browser.get(f"/executions?{query}")
    assert page.status_code == 400, (query, page.status_code)
    assert "<html" in page.text and "Bad request" in page.text and "<script>" not in page.text
    api = browser.get(f"/executions?{query}", headers={"accept": "application/json"})
    assert api.status_code == 400 and api.headers["content-type"].startswith("application/problem+json")
    assert api.json()["status"] == 400 and api.json()["detail"]
    htmx = browser.get(f"/executions?{query}", headers={"hx-request": "true"})
    assert htmx.status_code == 400 and htmx.headers.get("hx-retarget") == "#flash" and "<html" not in htmx.text


def test_someone_elses_or_a_missing_workflow_or_execution_is_404(browser: Browser, second_browser: Browser) -> None:
    browser.register("owner@example.com")
    wid, execution_id = one_run(browser, "Secret payroll")
    second_browser.register("other@example.com")
    for url in (f"/executions?workflow={wid}", "/executions?workflow=2147483647", f"/executions/{execution_id}",
                "/executions/2147483647"):
        response = second_browser.get(url)
        assert response.status_code == 404, url
        assert "Secret payroll" not in response.text
        api = second_browser.get(url, headers={"accept": "application/json"})
        assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")


def test_nobody_sees_another_owners_rows(browser: Browser, second_browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("mine@example.com")
    _, first = one_run(browser, "Mine only")
    add_executions(db_call, first, 5)
    second_browser.register("yours@example.com")
    for query in ("", "q=cust1", "status=failed", "trigger=cli", f"before={first + 100}", "after=1"):
        html = second_browser.get(f"/executions?{query}").text
        assert shown_ids(html) == [] and "Mine only" not in html, query


def test_search_finds_text_that_json_escapes(browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("escapes@example.com")
    _, first = one_run(browser)
    special = add_executions(db_call, first, 3, input={"name": 'Zoë "the quote" \\ back'})
    plain = add_executions(db_call, first, 2, input={"name": "Zoe"})
    assert set(shown_ids(browser.get("/executions?q=Zoë").text)) == set(special)
    assert set(shown_ids(browser.get('/executions?q="the quote"').text)) == set(special)
    assert set(shown_ids(browser.get("/executions?q=\\ back").text)) == set(special)
    assert set(shown_ids(browser.get("/executions?q=zoe").text)) == set(plain)
