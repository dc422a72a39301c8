"""When an execution ends, the live stream gives every node its final badge (webapp/executions/final.py):
a node that never ran says "not run" instead of keeping the "queued" badge the run started with."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect

from tests.webapp.conftest import Browser


def failing_flow(browser: Browser) -> tuple[int, str, str, str]:
    """Start → Divide (fails: 1 / 0) → Wait (never runs)."""
    wid = browser.create_workflow("Fails second")
    start = browser.add_node(wid, "manual_trigger")
    divide = browser.add_node(wid, "set")
    wait = browser.add_node(wid, "delay")
    assert browser.configure(wid, divide, {"name": "Divide", "fields.name": "x",
                                           "fields.value": "{{ 1 / 0 }}"}).status_code == 200
    browser.configure(wid, wait, {"name": "Wait", "seconds": "0"})
    browser.connect(wid, start, divide)
    browser.connect(wid, divide, wait)
    return wid, start, divide, wait


def run(browser: Browser, wid: int) -> tuple[int, str]:
    started = browser.post(f"/workflows/{wid}/run").text
    return int(re.search(r"/executions/(\d+)", started).group(1)), started


def last_badge(stream: str, node_id: str) -> str:
    return re.findall(rf'id="status-{node_id}" data-status="(\w+)"', stream)[-1]


def drain(ws: Any) -> str:
    messages = []
    while True:
        try:
            messages.append(ws.receive_text())
        except WebSocketDisconnect:
            return "\n".join(messages)


def test_a_failed_run_ends_with_not_run_badges_on_the_live_stream(browser: Browser) -> None:
    browser.register("final-live@example.com")
    wid, start, divide, wait = failing_flow(browser)
    execution_id, started = run(browser, wid)
    assert f'id="status-{wait}" data-status="queued"' in started  # what the canvas shows at the start
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        stream = drain(ws)
    assert 'data-status="failed"' in stream
    assert (last_badge(stream, start), last_badge(stream, divide), last_badge(stream, wait)) == \
        ("succeeded", "failed", "notrun")
    assert re.search(rf'id="status-{wait}" data-status="notrun" hx-swap-oob="true"\s*>not run<', stream)


@pytest.mark.parametrize("after", [None, 0])
def test_a_stream_opened_after_the_end_gives_the_final_states_too(browser: Browser, after: int | None) -> None:
    browser.register(f"final-late-{after}@example.com")
    wid, start, divide, wait = failing_flow(browser)
    execution_id, _ = run(browser, wid)
    assert browser.wait_for_execution(execution_id) == "failed"
    query = "" if after is None else f"?after={after}"
    with browser.websocket(f"/ws/executions/{execution_id}{query}") as ws:
        stream = drain(ws)
    assert (last_badge(stream, start), last_badge(stream, divide), last_badge(stream, wait)) == \
        ("succeeded", "failed", "notrun")
