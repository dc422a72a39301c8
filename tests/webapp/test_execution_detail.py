"""The execution page: the pinned version's canvas, the timeline of attempts, a node's attempts, error
with traceback, logs and data (JSON trees, truncated, with a download of the whole) — from real runs
through the in-process worker, on SQLite and PostgreSQL; and refusals for what is not the user's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import NodeRun
from tests.crash_node import registered
from tests.webapp.conftest import Browser


@pytest.fixture
def crash_node() -> Iterator[None]:
    with registered():
        yield


def run(browser: Browser, wid: int) -> int:
    response = browser.post(f"/workflows/{wid}/run")
    assert response.status_code == 200, response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1))


def flaky_flow(browser: Browser, url: str) -> tuple[int, dict[str, str]]:
    """Trigger → HTTP Request (503 twice, then 200; three attempts) → Set with a 5,000-character field."""
    wid = browser.create_workflow("Detail")
    ids = {"trigger": browser.add_node(wid, "manual_trigger"), "http": browser.add_node(wid, "http_request", 240),
           "big": browser.add_node(wid, "set", 480)}
    assert browser.configure(wid, ids["http"], {
        "name": "Fetch", "url": url, "fail_on_error_status": "on", "settings.present": "1",
        "settings.retry.max_attempts": "3", "settings.retry.initial_delay": "0.05",
        "settings.retry.jitter": "", "settings.retry.retry_on": ["5xx"]}).status_code == 200
    assert browser.configure(wid, ids["big"], {"name": "Big", "fields.name": ["big"],
                                               "fields.value": ["{{ 'x' * 5000 }}"]}).status_code == 200
    for source, target in [("trigger", "http"), ("http", "big")]:
        assert browser.connect(wid, ids[source], ids[target]).status_code == 201
    return wid, ids


def timeline_row(page: str, node_id: str) -> str:
    start = page.index(f'data-timeline-node="{node_id}"')
    return page[start:page.index('class="tl-row"', start) if 'class="tl-row"' in page[start:] else len(page)]


def test_the_page_shows_the_pinned_canvas_timeline_attempts_and_logs(browser: Browser, sink_server: Any) -> None:
    browser.register("detail@example.com")
    wid, ids = flaky_flow(browser, f"{sink_server.url}/flaky/2/detail")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    # the draft moves on after the run: the page still shows the version that ran
    later = browser.add_node(wid, "set", 720)
    assert browser.configure(wid, ids["big"], {"name": "Renamed later", "fields.name": ["big"],
                                               "fields.value": ["1"]}).status_code == 200

    page = browser.get(f"/executions/{execution_id}").text
    nodes = page[page.index('<template id="execution-nodes">'):page.index("</template>")]
    assert {ids["trigger"], ids["http"], ids["big"]} == set(re.findall(r'data-node-id="([0-9a-f]+)"', nodes))
    assert later not in page and "Renamed later" not in page and ">Big<" in nodes
    assert f'id="status-{ids["http"]}" data-status="succeeded"' in nodes
    wires = json.loads(re.search(r'id="execution-connections">(.*?)</script>', page).group(1))
    assert {(w["source"], w["target"]) for w in wires} == {(ids["trigger"], ids["http"]), (ids["http"], ids["big"])}
    assert "hx-ws:connect" not in page, "a finished execution needs no live stream"

    row = timeline_row(page, ids["http"])
    assert 'data-status="succeeded" data-attempts="3"' in row
    assert row.count("tl-bar tl-run") == 3 and row.count("tl-bar tl-backoff") == 2
    assert re.findall(r'tl-bar tl-run" data-status="(\w+)" data-attempt="(\d)"', row) == [
        ("failed", "1"), ("failed", "2"), ("succeeded", "3")]
    assert "back-off before attempt 2" in row
    for attempt in (1, 2, 3):
        assert f'id="run-{ids["http"]}-{attempt}"' in page

    htmx = {"hx-request": "true"}
    panel = browser.get(f"/executions/{execution_id}/nodes/{ids['http']}?attempt=1", headers=htmx).text
    assert 'id="node-panel" data-node-id' in panel and "<html" not in panel, "htmx gets the panel alone"
    assert panel.count('class="attempt') == 3 and "returned HTTP 503" in panel and "then retried after" in panel
    assert re.search(r"GET http://127\.0\.0\.1:\d+/flaky/2/detail → HTTP 503, [\d,]+ bytes in \d+ ms", panel)
    newest = browser.get(f"/executions/{execution_id}/nodes/{ids['http']}", headers=htmx).text
    assert "→ HTTP 200" in newest and "Showing attempt 3 of 3" in newest
    whole = browser.get(f"/executions/{execution_id}/nodes/{ids['http']}").text
    assert "<html" in whole and 'id="execution-canvas"' in whole and "Showing attempt 3 of 3" in whole


def test_a_large_payload_is_truncated_with_a_download_of_the_whole(browser: Browser, sink_server: Any,
                                                                  db_call: Any) -> None:
    browser.register("big@example.com")
    wid, ids = flaky_flow(browser, f"{sink_server.url}/ok")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    panel = browser.get(f"/executions/{execution_id}/nodes/{ids['big']}").text
    link = f"/executions/{execution_id}/nodes/{ids['big']}/attempts/1/output"
    assert f'href="{link}" download>download the whole JSON' in panel and "truncated" in panel
    assert "x" * 5000 not in panel and "4,000 more characters" in panel
    download = browser.get(link)
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == f'attachment; filename="execution-{execution_id}-Big-attempt-1-output.json"'
    stored = db_call(lambda db: db.scalar(select(NodeRun.output).where(NodeRun.execution_id == execution_id,
                                                                       NodeRun.node_id == ids["big"])))
    assert download.json() == stored and len(stored["main"][0]["big"]) == 5000
    logs = browser.get(f"/executions/{execution_id}/nodes/{ids['http']}/attempts/1/logs").json()
    assert logs[0]["level"] == "INFO" and "→ HTTP 200" in logs[0]["message"]
    output = browser.get(f"/executions/{execution_id}/data/output")
    assert output.json() == {"Big": stored["main"]} and "attachment" in output.headers["content-disposition"]


def test_an_unexpected_error_shows_its_traceback_escaped(browser: Browser, crash_node: None) -> None:
    browser.register("crash@example.com")
    wid = browser.create_workflow("Crashing")
    trigger, boom = browser.add_node(wid, "manual_trigger"), browser.add_node(wid, "test_crash", 240)
    assert browser.configure(wid, boom, {"name": "Boom", "message": "<b>boom</b> & <script>alert(1)</script>",
                                         "settings.present": "1", "settings.retry.max_attempts": "2",
                                         "settings.retry.initial_delay": "0.05",
                                         "settings.retry.retry_on": ["other"]}).status_code == 200
    assert browser.connect(wid, trigger, boom).status_code == 201
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "failed"
    page = browser.get(f"/executions/{execution_id}").text  # the failed node is shown at once
    panel = page[page.index('id="node-panel"'):]
    assert f'data-node-id="{boom}"' in page[page.index('id="node-panel"') - 200:]
    assert '<strong class="error-type">LookupError</strong>' in panel and "(kind: other)" in panel
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in panel
    assert "<script>alert(1)</script>" not in page and "<b>boom</b>" not in page
    traceback = re.search(r'<details class="traceback"><summary>Traceback</summary><pre>(.*?)</pre>', panel, re.S)
    assert traceback and "Traceback (most recent call last)" in traceback.group(1) and "_explode" in traceback.group(1)
    assert "attempt 2: about to fail with &lt;b&gt;boom" in panel and 'data-level="WARNING"' in panel
    assert panel.count('class="attempt') == 2
    assert 'data-timeline-node="' + boom + '" data-status="failed" data-attempts="2"' in page


def test_live_parts_and_a_running_execution(browser: Browser, sink_server: Any) -> None:
    browser.register("live@example.com")
    wid, ids = flaky_flow(browser, f"{sink_server.url}/slow")  # the sink sleeps 3 s
    execution_id = run(browser, wid)
    page = browser.get(f"/executions/{execution_id}").text
    assert f'hx-ws:connect="/ws/executions/{execution_id}"' in page and 'id="pw-seq"' in page
    parts = browser.get(f"/executions/{execution_id}/live?node={ids['http']}", headers={"hx-request": "true"}).text
    for part in ('id="execution-summary" hx-swap-oob="true"', 'id="timeline"', 'id="node-runs-card" hx-swap-oob="true"'):
        assert part in parts
    assert "<html" not in parts
    plain = browser.get(f"/executions/{execution_id}/live", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/executions/{execution_id}"
    browser.wait_for_execution(execution_id)


def test_what_is_not_the_users_is_not_found(browser: Browser, second_browser: Browser, sink_server: Any) -> None:
    browser.register("owner@example.com")
    wid, ids = flaky_flow(browser, f"{sink_server.url}/ok")
    execution_id = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    second_browser.register("other@example.com")
    base = f"/executions/{execution_id}"
    theirs = [base, f"{base}?node={ids['http']}", f"{base}/nodes/{ids['http']}", f"{base}/live",
              f"{base}/nodes/{ids['http']}/attempts/1/output", f"{base}/nodes/{ids['http']}/attempts/1/input",
              f"{base}/data/output", f"{base}/data/input"]
    for url in theirs:
        response = second_browser.get(url, headers={"hx-request": "true"} if url.endswith("/live") else {})
        assert response.status_code == 404, url
        assert "x" * 100 not in response.text and "hello from the sink" not in response.text
        api = second_browser.get(url, headers={"accept": "application/json"})
        assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json"), url
    missing = ["/executions/999999", "/executions/999999/nodes/abc", "/executions/999999/data/output",
               f"{base}?node=0123456789abcdef", f"{base}/nodes/0123456789abcdef", f"{base}/nodes/{'a' * 300}",
               f"{base}/nodes/{ids['http']}?attempt=9", f"{base}/nodes/{ids['http']}/attempts/9/output",
               f"{base}/nodes/0123456789abcdef/attempts/1/output", f"{base}/nodes/{ids['http']}/attempts/1/secrets",
               f"{base}/data/secrets"]
    for url in missing:
        response = browser.get(url)
        assert response.status_code == 404, url
        assert "Not found" in response.text, url
    assert browser.get(f"{base}/nodes/{ids['http']}?attempt=x").status_code == 400
    assert browser.get(f"{base}/nodes/{ids['http']}", headers={"accept": "application/json"}).status_code == 200
