"""The workflow overview: statistics computed in SQL (SQLite and PostgreSQL) from executions with known
times, statuses and errors; the page, its JSON, its charts' data block; bad input and other users."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.webapp.conftest import Browser
from tests.webapp.dashboard_rows import Row, add_rows, user_id
from webapp.dashboard.overview import ERROR_MESSAGE_CHARS, TOP_ERRORS, OverviewService

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
FETCH = ("Fetch", "HTTPStatusError", "500 Server Error")
PARSE = ("Parse", "ExpressionError", "division by zero")
LOST = ("Workflow", "Crashed", "worker lost")


def at(hour: int, minute: int, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


# Oldest first, so execution ids grow with time. The day window is 2026-03-09 13:00 – 2026-03-10 13:00.
DAY_ROWS = [
    Row(at(12, 59, day=9), "succeeded", 5),        # one minute before the window: not counted
    Row(at(13, 0, day=9), "succeeded", 60),        # the window's first instant: counted
    *(Row(at(10, 5 + i), "succeeded", ms) for i, ms in enumerate([100, 200, 300, 400])),
    Row(at(11, 1), "succeeded", 1000), Row(at(11, 2), "failed", 500, FETCH), Row(at(11, 3), "succeeded", 2000),
    Row(at(11, 4), "crashed", 50, LOST), Row(at(11, 5), "failed", 700, FETCH),
    Row(at(12, 1), "running"), Row(at(12, 2), "queued"), Row(at(12, 3), "cancelled", 250),
    Row(at(12, 4), "failed", 900, PARSE),
]


def overview(db_call: Any, owner: int, workflow_id: int, range_name: str = "day", now: datetime = NOW) -> Any:
    return db_call(lambda db: OverviewService(db, owner).overview(workflow_id, range_name, now))


@pytest.fixture
def owner(browser: Browser, db_call: Any) -> int:
    browser.register("stats@example.com")
    return user_id(db_call, "stats@example.com")


def test_rates_percentiles_buckets_and_errors_are_exact(browser: Browser, db_call: Any, owner: int) -> None:
    wid = browser.create_workflow("Measured")
    ids = add_rows(db_call, wid, owner, DAY_ROWS)
    other = browser.create_workflow("Other")  # the same owner's other workflow does not count
    add_rows(db_call, other, owner, [Row(at(11, 30), "failed", 10, FETCH)])

    result = overview(db_call, owner, wid).to_dict()

    assert result["totals"] == {"executions": 14, "succeeded": 7, "failed": 4, "cancelled": 1, "unfinished": 2}
    assert result["ended"] == 12
    assert result["success_rate"] == pytest.approx(7 / 12) and result["failure_rate"] == pytest.approx(4 / 12)
    # Ended durations, sorted (ms): 50 60 100 200 250 300 400 500 700 900 1000 2000.
    # p50 at rank 5.5 → 350; p95 at rank 10.45 → 1000 + 0.45 · 1000 = 1450.
    assert result["duration_seconds"] == {"count": 12, "p50": pytest.approx(0.35), "p95": pytest.approx(1.45)}
    assert result["since"] == "2026-03-09T13:00:00Z" and result["until"] == "2026-03-10T13:00:00Z"

    hourly = {b["hour"]: b for b in result["hourly"]}
    assert len(result["hourly"]) == 24 and list(hourly)[0] == "2026-03-09T13:00:00Z"
    assert list(hourly)[-1] == "2026-03-10T12:00:00Z"
    expected = {  # hour → (succeeded, failed, cancelled, unfinished, p50 s, p95 s)
        "2026-03-09T13:00:00Z": (1, 0, 0, 0, 0.06, 0.06),
        "2026-03-10T10:00:00Z": (4, 0, 0, 0, 0.25, 0.385),    # 100 200 300 400
        "2026-03-10T11:00:00Z": (2, 3, 0, 0, 0.7, 1.8),       # 50 500 700 1000 2000
        "2026-03-10T12:00:00Z": (0, 1, 1, 2, 0.575, 0.8675),  # 250 900
    }
    for hour, bucket in hourly.items():
        succeeded, failed, cancelled, unfinished, p50, p95 = expected.get(hour, (0, 0, 0, 0, None, None))
        assert (bucket["succeeded"], bucket["failed"], bucket["cancelled"], bucket["unfinished"]) == (
            succeeded, failed, cancelled, unfinished), hour
        assert bucket["p50_seconds"] == (None if p50 is None else pytest.approx(p50)), hour
        assert bucket["p95_seconds"] == (None if p95 is None else pytest.approx(p95)), hour

    newest = {error: max(i for i, row in zip(ids, DAY_ROWS, strict=True) if row.error == error)
              for error in (FETCH, PARSE, LOST)}
    assert result["top_errors"] == [  # by count, then the newest first
        {"node": "Fetch", "type": "HTTPStatusError", "message": "500 Server Error", "count": 2,
         "newest_execution_id": newest[FETCH]},
        {"node": "Parse", "type": "ExpressionError", "message": "division by zero", "count": 1,
         "newest_execution_id": newest[PARSE]},
        {"node": "Workflow", "type": "Crashed", "message": "worker lost", "count": 1,
         "newest_execution_id": newest[LOST]},
    ]


def test_the_week_range_has_168_hours_and_reaches_back_seven_days(browser: Browser, db_call: Any,
                                                                  owner: int) -> None:
    wid = browser.create_workflow("Weekly")
    add_rows(db_call, wid, owner, [
        Row(at(13, 0, day=3), "succeeded", 10),   # the week's first hour: 2026-03-03 13:00
        Row(at(12, 59, day=3), "failed", 10, FETCH),   # before it
        Row(at(9, 0, day=6), "failed", 30, FETCH),
        Row(at(12, 0), "succeeded", 20),
    ])
    week = overview(db_call, owner, wid, "week").to_dict()
    assert len(week["hourly"]) == 168 and week["since"] == "2026-03-03T13:00:00Z"
    assert week["totals"] == {"executions": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "unfinished": 0}
    assert week["duration_seconds"] == {"count": 3, "p50": pytest.approx(0.02), "p95": pytest.approx(0.029)}
    assert [e["count"] for e in week["top_errors"]] == [1]
    day = overview(db_call, owner, wid, "day").to_dict()
    assert day["totals"]["executions"] == 1 and day["top_errors"] == []


def test_nothing_ended_gives_no_rates_and_no_percentiles(browser: Browser, db_call: Any, owner: int) -> None:
    wid = browser.create_workflow("Idle")
    empty = overview(db_call, owner, wid).to_dict()
    assert empty["totals"]["executions"] == 0 and empty["success_rate"] is None and empty["failure_rate"] is None
    assert empty["duration_seconds"] == {"count": 0, "p50": None, "p95": None}
    add_rows(db_call, wid, owner, [Row(at(12, 0), "running"), Row(at(12, 1), "succeeded", 1234)])
    one = overview(db_call, owner, wid).to_dict()
    assert one["success_rate"] == 1.0 and one["failure_rate"] == 0.0
    assert one["duration_seconds"] == {"count": 1, "p50": pytest.approx(1.234), "p95": pytest.approx(1.234)}


def test_errors_group_by_a_message_prefix_and_only_the_top_ones_are_kept(browser: Browser, db_call: Any,
                                                                        owner: int) -> None:
    wid = browser.create_workflow("Noisy")
    prefix = "x" * ERROR_MESSAGE_CHARS
    rows = [Row(at(11, 0), "failed", 5, ("Call", "HTTPError", prefix + " request 1")),
            Row(at(11, 1), "failed", 5, ("Call", "HTTPError", prefix + " request 2"))]
    rows += [Row(at(11, 10 + i), "failed", 5, ("Call", "HTTPError", f"distinct {i}")) for i in range(TOP_ERRORS + 3)]
    add_rows(db_call, wid, owner, rows)
    errors = overview(db_call, owner, wid).to_dict()["top_errors"]
    assert len(errors) == TOP_ERRORS
    assert errors[0]["count"] == 2 and errors[0]["message"] == prefix
    # ties: the newest first, so the three oldest single errors fell off
    assert [e["message"] for e in errors[1:]] == [f"distinct {i}" for i in reversed(range(4, TOP_ERRORS + 3))]


def recent_rows() -> list[Row]:
    """Rows inside the current day window whatever the clock says (an hour ago, at most a few minutes)."""
    now = datetime.now(UTC)
    return [Row(now - timedelta(minutes=70), "succeeded", 400), Row(now - timedelta(minutes=65), "succeeded", 600),
            Row(now - timedelta(minutes=62), "failed", 800, FETCH)]


def test_the_page_shows_the_numbers_and_carries_the_chart_data(browser: Browser, db_call: Any, owner: int) -> None:
    wid = browser.create_workflow("Shown <b>bold</b>")
    ids = add_rows(db_call, wid, owner, recent_rows())
    page = browser.get(f"/workflows/{wid}/overview")
    assert page.status_code == 200
    html = page.text
    assert "Shown &lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert re.search(r'id="stat-executions">3<', html)
    assert re.search(r'id="stat-success-rate">66\.7 %<', html) and re.search(r'id="stat-failure-rate">33\.3 %<', html)
    assert re.search(r'id="stat-p50">600 ms<', html)
    assert re.search(r'id="stat-p95">780 ms<', html)   # 600 + 0.9 · 200
    assert f'href="/executions/{ids[2]}"' in html and "500 Server Error" in html
    assert html.count("Most frequent errors") == 1  # the table's heading; the chart has its own caption
    for canvas in ("chart-hourly", "chart-outcomes", "chart-durations", "chart-errors"):
        assert f'<canvas id="{canvas}"' in html
    assert "/vendor/chartjs/chart.umd.min.js" in html and "/js/overview.js" in html
    block = re.search(r'<script type="application/json" id="overview-data">(.*?)</script>', html, re.S).group(1)
    data = json.loads(block)
    assert data["workflow"] == {"id": wid, "name": "Shown <b>bold</b>"} and "<b>" not in block  # escaped in JSON
    assert data["totals"]["executions"] == 3 and data["top_errors"][0]["count"] == 1
    assert sum(b["succeeded"] for b in data["hourly"]) == 2

    api = browser.get(f"/workflows/{wid}/overview?range=week", headers={"accept": "application/json"})
    assert api.status_code == 200 and api.headers["content-type"].startswith("application/json")
    assert api.json()["range"] == "week" and len(api.json()["hourly"]) == 168
    assert api.json()["totals"] == data["totals"]

    fragment = browser.get(f"/workflows/{wid}/overview?range=week", headers={"hx-request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="overview"' in fragment.text and 'data-range="week"' in fragment.text
    restored = browser.get(f"/workflows/{wid}/overview?range=week",  # htmx restoring the URL it pushed (Back)
                           headers={"hx-request": "true", "hx-history-restore-request": "true"})
    assert restored.status_code == 200 and "<html" in restored.text and 'data-range="week"' in restored.text


def test_links_lead_to_the_overview(browser: Browser) -> None:
    browser.register("links@example.com")
    wid = browser.create_workflow("Linked")
    assert f'href="/workflows/{wid}/overview"' in browser.get("/workflows/").text
    assert f'href="/workflows/{wid}/overview"' in browser.get(f"/workflows/{wid}").text


@pytest.mark.parametrize("query", ["range=month", "range=", "range=DAY", "range=day%00", "range=" + "w" * 5000])
def test_a_malformed_range_is_a_clear_400(browser: Browser, query: str) -> None:
    browser.register("range@example.com")
    wid = browser.create_workflow("Ranged")
    url = f"/workflows/{wid}/overview?{query}"
    page = browser.get(url)
    assert page.status_code == 400 and "use one of day, week" in page.text and "w" * 100 not in page.text
    api = browser.get(url, headers={"accept": "application/json"})
    assert api.status_code == 400 and api.headers["content-type"] == "application/problem+json"
    assert api.json()["title"] == "Bad request" and "use one of day, week" in api.json()["detail"]
    partial = browser.get(url, headers={"hx-request": "true"})
    assert partial.status_code == 400 and partial.headers["hx-retarget"] == "#flash"
    assert "use one of day, week" in partial.text and "<html" not in partial.text


def test_other_users_and_missing_workflows_get_404(browser: Browser, second_browser: Browser, db_call: Any,
                                                   owner: int) -> None:
    wid = browser.create_workflow("Secret stats")
    add_rows(db_call, wid, owner, recent_rows())
    second_browser.register("peeker@example.com")
    for url in (f"/workflows/{wid}/overview", f"/workflows/{wid}/overview?range=week", "/workflows/987654/overview"):
        page = second_browser.get(url)
        assert page.status_code == 404 and "Secret stats" not in page.text and "500 Server Error" not in page.text
        api = second_browser.get(url, headers={"accept": "application/json"})
        assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
        assert "Secret stats" not in api.text
    # the peeker's own, empty workflow with the same statistics request shows nothing of the owner's
    own = second_browser.create_workflow("Mine")
    assert second_browser.get(f"/workflows/{own}/overview", headers={"accept": "application/json"}).json()[
        "totals"]["executions"] == 0
    assert browser.get(f"/workflows/{wid}/overview").status_code == 200
