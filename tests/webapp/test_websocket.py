"""The live-status WebSocket: session and same-origin required; streams htmx OOB badge fragments."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect

from tests.webapp.conftest import Browser


def slow_flow(browser: Browser, seconds: str = "0.6") -> tuple[int, str, str]:
    wid = browser.create_workflow("Slow")
    trigger = browser.add_node(wid, "manual_trigger")
    delay = browser.add_node(wid, "delay")
    browser.configure(wid, delay, {"name": "Wait", "seconds": seconds})
    browser.connect(wid, trigger, delay)
    return wid, trigger, delay


def start(browser: Browser, wid: int) -> int:
    return int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{wid}/run").text).group(1))


def test_stream_sends_badges_until_the_execution_finishes(browser: Browser) -> None:
    browser.register("ws@example.com")
    wid, trigger, delay = slow_flow(browser)
    execution_id = start(browser, wid)
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        stream = "\n".join(drain(ws))
    assert f'id="status-{delay}" data-status="succeeded" hx-swap-oob="true"' in stream
    assert f'id="status-{trigger}" data-status="succeeded"' in stream
    assert re.search(r'id="run-status" hx-swap-oob="true" data-status="succeeded"', stream)
    assert f'id="status-{delay}" data-status="running"' in stream, "the running state was streamed live"


def test_finished_execution_gets_its_final_state_at_once(browser: Browser) -> None:
    browser.register("late@example.com")
    wid, _, delay = slow_flow(browser, "0")
    execution_id = start(browser, wid)
    browser.wait_for_execution(execution_id)
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        snapshot = ws.receive_text()
        with pytest.raises(WebSocketDisconnect):
            ws.receive_text()
    assert f'id="status-{delay}" data-status="succeeded"' in snapshot


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null", "http://testserver.local.evil.example"])
def test_cross_origin_or_missing_origin_is_refused(browser: Browser, origin: str | None) -> None:
    browser.register("origin@example.com")
    wid, _, _ = slow_flow(browser, "0")
    execution_id = start(browser, wid)
    with pytest.raises(WebSocketDisconnect) as closed, browser.websocket(f"/ws/executions/{execution_id}", origin=origin) as ws:
        ws.receive_text()
    assert closed.value.code == 4403


def test_anonymous_websocket_is_refused(browser: Browser, client: Any) -> None:
    browser.register("anon@example.com")
    wid, _, _ = slow_flow(browser, "0")
    execution_id = start(browser, wid)
    anonymous = Browser(client)
    with pytest.raises(WebSocketDisconnect), anonymous.websocket(f"/ws/executions/{execution_id}") as ws:
        ws.receive_text()


def _seqs(messages: list[str]) -> list[int]:
    return [int(s) for m in messages for s in re.findall(r'id="pw-seq" hidden data-seq="(\d+)"', m)]


def drain(ws: Any) -> list[str]:
    """Every message until the server closes the stream."""
    messages = []
    while True:
        try:
            messages.append(ws.receive_text())
        except WebSocketDisconnect:
            return messages


def test_reconnecting_client_gets_missed_events_without_gaps_or_duplicates(browser: Browser) -> None:
    browser.register("resume@example.com")
    wid, trigger, delay = slow_flow(browser, "0.3")
    execution_id = start(browser, wid)
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        first = ws.receive_text()  # the snapshot; then the tab "loses" its connection
    snapshot_seq = _seqs([first])[0]
    browser.wait_for_execution(execution_id)
    with browser.websocket(f"/ws/executions/{execution_id}?after={snapshot_seq}") as ws:
        replay = drain(ws)
    seqs = _seqs(replay)
    total = seqs[-1]
    assert seqs == list(range(snapshot_seq + 1, total + 1)), "every missed event once, in order"
    assert "workflow.finished" not in replay[-1] and 'id="run-status" hx-swap-oob="true" data-status="succeeded"' in replay[-1]
    with browser.websocket(f"/ws/executions/{execution_id}?after=2") as ws:
        assert _seqs(drain(ws)) == list(range(3, total + 1))
    with browser.websocket(f"/ws/executions/{execution_id}?after={total}") as ws:
        assert drain(ws) == [], "nothing missed: the stream of a finished execution just closes"
