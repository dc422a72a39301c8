"""The live-status WebSocket: session and same-origin required; streams htmx OOB badge fragments."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.channels import ChannelsPlugin
from litestar.exceptions import WebSocketDisconnect
from sqlalchemy import select

from engine.events import Event, channel_for
from engine.models import Execution, ExecutionEvent, User, Workflow, WorkflowVersion
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


def test_a_live_event_after_a_gap_makes_the_stream_read_the_missed_ones_first(browser: Browser, client: Any,
                                                                               db_call: Any) -> None:
    """Events a full backlog dropped (or a channel lost) are read from the database: no gaps."""
    browser.register("gap@example.com")

    async def running_execution(db: Any) -> int:  # no job is enqueued: only this test writes its events
        user_id = await db.scalar(select(User.id).where(User.email == "gap@example.com"))
        workflow = Workflow(owner_id=user_id, name="Gap")
        db.add(workflow)
        await db.flush()
        version = WorkflowVersion(workflow_id=workflow.id, number=1, graph={"nodes": [], "connections": []})
        db.add(version)
        await db.flush()
        execution = Execution(workflow_id=workflow.id, owner_id=user_id, version_id=version.id, status="running")
        db.add(execution)
        await db.flush()
        db.add(ExecutionEvent(execution_id=execution.id, seq=1, data=event(execution.id, workflow.id, 1,
                                                                            "workflow.started").to_builtins()))
        await db.commit()
        return execution.id

    def event(execution_id: int, workflow_id: int, seq: int, type_: str) -> Event:
        status = "succeeded" if type_ == "workflow.finished" else "running"
        return Event(type=type_, execution_id=execution_id, workflow_id=workflow_id, seq=seq, at=0.0, status=status,
                     node_id=None if type_.startswith("workflow") else "n1", node_name="N1")

    execution_id = db_call(running_execution)
    workflow_id = db_call(lambda db: db.scalar(select(Execution.workflow_id).where(Execution.id == execution_id)))
    later = [event(execution_id, workflow_id, 2, "node.started"), event(execution_id, workflow_id, 3, "node.completed"),
             event(execution_id, workflow_id, 4, "workflow.finished")]

    async def store_later(db: Any) -> None:
        db.add_all(ExecutionEvent(execution_id=execution_id, seq=e.seq, data=e.to_builtins()) for e in later)
        execution = await db.get(Execution, execution_id)
        execution.status = "succeeded"
        await db.commit()

    channels = client.app.plugins.get(ChannelsPlugin)
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        assert _seqs([ws.receive_text()]) == [1]  # the snapshot
        db_call(store_later)
        client.blocking_portal.call(lambda: _publish(channels, later[-1], channel_for(execution_id)))
        rest = drain(ws)
    assert _seqs(rest) == [2, 3, 4], "the two events never published live came from the database, in order"


async def _publish(channels: Any, event: Any, channel: str) -> None:
    channels.publish(event.to_json(), [channel])
