"""The live executions table (/ws/executions) and its hub: snapshot, prepends, row updates, filters,
owner isolation, bad subscriptions (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.exceptions import WebSocketDisconnect

from engine.changes import EXECUTIONS_CHANNEL, ExecutionChange
from tests.webapp.conftest import Browser
from webapp.executions.hub import DirectSubscriber, Listener

SNAPSHOT = '<hx-partial hx-target="#exec-rows" hx-swap="innerHTML">'


def flow(browser: Browser, name: str, *, fail: bool = False, delay: str = "0.3") -> int:
    wid = browser.create_workflow(name)
    trigger = browser.add_node(wid, "manual_trigger")
    wait = browser.add_node(wid, "delay")
    browser.configure(wid, wait, {"name": "Pause", "seconds": delay})
    browser.connect(wid, trigger, wait)
    if fail:
        broken = browser.add_node(wid, "set")
        browser.configure(wid, broken, {"name": "Broken", "fields.name": ["x"], "fields.value": ["{{ 1 / 0 }}"]})
        browser.connect(wid, wait, broken)
    return wid


def run(browser: Browser, wid: int) -> int:
    return int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{wid}/run").text).group(1))


def receive_until(ws: Any, done: Any, timeout: float = 20) -> list[str]:
    """Messages until ``done(all messages so far)`` holds (a deadline, not a sleep)."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while not done("\n".join(messages)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("not seen in time:\n" + "\n".join(messages)[-3000:])
        try:
            messages.append(ws.receive_text(timeout=left))
        except Exception as exc:  # the queue's Empty on a timeout
            raise AssertionError("not seen in time:\n" + "\n".join(messages)[-3000:]) from exc
    return messages


def row_status(text: str, execution_id: int) -> list[str]:
    return re.findall(rf'<tr id="exec-{execution_id}" class="exec-row" data-status="(\w+)"', text)


def test_snapshot_then_new_rows_are_prepended_and_updated_live(browser: Browser) -> None:
    browser.register("live@example.com")
    wid = flow(browser, "Live flow", fail=True)
    earlier = run(browser, wid)
    browser.wait_for_execution(earlier)
    with browser.websocket("/ws/executions") as ws:
        snapshot = ws.receive_text()
        assert SNAPSHOT in snapshot and f'id="exec-{earlier}"' in snapshot
        assert row_status(snapshot, earlier) == ["failed"] and "Broken" in snapshot, "the failed node is shown"
        execution_id = run(browser, wid)
        stream = "\n".join(receive_until(ws, lambda text: "failed" in row_status(text, execution_id)))
    assert '<hx-partial hx-target="#exec-rows" hx-swap="afterbegin"><tr id="exec-' in stream, "prepended"
    statuses = row_status(stream, execution_id)
    assert statuses[0] == "queued", "announced by the producer before the worker started it"
    assert "running" in statuses and statuses[-1] == "failed"
    assert "Pause" in stream, "the node running now was shown"


def test_each_owner_sees_only_their_own_rows(browser: Browser, second_browser: Browser) -> None:
    browser.register("alice@example.com")
    alice_flow = flow(browser, "Alice's flow", delay="0")
    second_browser.register("bob@example.com")
    bob_flow = flow(second_browser, "Bob's flow", delay="0")
    with browser.websocket("/ws/executions") as alice_ws, second_browser.websocket("/ws/executions") as bob_ws:
        alice_ws.receive_text(), bob_ws.receive_text()
        alice_run = run(browser, alice_flow)
        receive_until(alice_ws, lambda text: "succeeded" in row_status(text, alice_run))
        bob_run = run(second_browser, bob_flow)  # Bob's own row marks the end of what he has been sent
        bob_stream = "\n".join(receive_until(bob_ws, lambda text: "succeeded" in row_status(text, bob_run)))
        alice_after = "\n".join(receive_until(alice_ws, lambda text: True))
    assert f"exec-{alice_run}" not in bob_stream and "Alice" not in bob_stream
    assert f"exec-{bob_run}" not in alice_after


def test_a_filtered_table_only_gets_matching_rows(browser: Browser) -> None:
    browser.register("filtered@example.com")
    good = flow(browser, "Good", delay="0")
    bad = flow(browser, "Bad", fail=True, delay="0")
    with browser.websocket("/ws/executions?status=failed") as ws:
        ws.receive_text()
        ok_run = run(browser, good)
        browser.wait_for_execution(ok_run)
        failing = run(browser, bad)
        stream = "\n".join(receive_until(ws, lambda text: f'id="exec-{failing}"' in text))
    assert f"exec-{ok_run}" not in stream, "a succeeded execution does not enter a failed-only table"
    assert row_status(stream, failing)[-1] == "failed"


def test_a_search_refreshes_from_the_database(browser: Browser) -> None:
    browser.register("searchlive@example.com")
    wid = flow(browser, "Searched", delay="0")
    with browser.websocket("/ws/executions?q=needle") as ws:
        empty = ws.receive_text()
        assert "No executions match these filters." in empty
        plain = run(browser, wid)
        browser.wait_for_execution(plain)
        needle = int(re.search(r"/executions/(\d+)", browser.post(
            f"/workflows/{wid}/run").text).group(1))  # the same input: no needle in it either
        browser.wait_for_execution(needle)
        snapshots = receive_until(ws, lambda text: text.count(SNAPSHOT) >= 1)
    assert all(f'id="exec-{plain}"' not in s and f'id="exec-{needle}"' not in s for s in snapshots)


@pytest.mark.parametrize("query", ["status=bogus", "before=-1", "from=nonsense", "q=" + "x" * 300, "sort=id"])
def test_a_bad_subscription_is_closed_with_4400(browser: Browser, query: str) -> None:
    browser.register("badws@example.com")
    with pytest.raises(WebSocketDisconnect) as closed, browser.websocket(f"/ws/executions?{query}") as ws:
        ws.receive_text()
    assert closed.value.code == 4400


def test_subscriptions_to_someone_elses_workflow_or_execution_are_refused(browser: Browser,
                                                                          second_browser: Browser) -> None:
    browser.register("holder@example.com")
    wid = flow(browser, "Held", delay="0")
    execution_id = run(browser, wid)
    second_browser.register("snoop@example.com")
    for url in (f"/ws/executions?workflow={wid}", "/ws/executions?workflow=2147483647",
                f"/ws/executions/{execution_id}", "/ws/executions/2147483647"):
        with pytest.raises(WebSocketDisconnect) as closed, second_browser.websocket(url) as ws:
            ws.receive_text()
        assert closed.value.code == 4404, url


@pytest.mark.parametrize("origin", [None, "http://evil.example"])
def test_the_table_stream_checks_origin_and_login(browser: Browser, client: Any, origin: str | None) -> None:
    browser.register("originlive@example.com")
    with pytest.raises(WebSocketDisconnect) as closed, browser.websocket("/ws/executions", origin=origin) as ws:
        ws.receive_text()
    assert closed.value.code == 4403
    with pytest.raises(WebSocketDisconnect), Browser(client).websocket("/ws/executions") as ws:
        ws.receive_text()


def test_a_listener_that_falls_behind_coalesces_then_starts_over() -> None:
    listener = Listener(owner_id=1, max_pending=3)
    for execution_id in (5, 6, 5, 5, 6):
        listener.offer(execution_id)
    assert listener._pending == {5: None, 6: None}, "changes of one execution coalesce"
    for execution_id in (7, 8, 9):
        listener.offer(execution_id)
    assert listener._pending == {} and listener._overflowed, "past the bound: dropped, a snapshot is due"


def test_the_hub_routes_changes_by_owner(client: Any) -> None:
    hub = client.app.state.runtime.hub

    async def scenario() -> tuple[list[int], list[int]]:
        async with hub.listen(1) as one, hub.listen(2) as two:
            for execution_id, owner in ((10, 1), (11, 2), (12, 1)):
                hub.dispatch(ExecutionChange(execution_id=execution_id, owner_id=owner, workflow_id=1,
                                             status="running", at=time.time(), seq=1))
            return (await one.next_batch())[0], (await two.next_batch())[0]

    ones, twos = client.blocking_portal.call(scenario)
    assert ones == [10, 12] and twos == [11]


def test_the_home_signal_stream_fires_on_the_users_own_changes_only(browser: Browser,
                                                                    second_browser: Browser) -> None:
    browser.register("signal@example.com")
    mine = flow(browser, "Signalled", delay="0")
    second_browser.register("other-signal@example.com")
    theirs = flow(second_browser, "Not signalled", delay="0")
    with browser.websocket("/ws/executions/changed") as ws:
        their_run = run(second_browser, theirs)
        second_browser.wait_for_execution(their_run)
        execution_id = run(browser, mine)
        seen: list[int] = []
        while execution_id not in seen:  # every signal until one names this run (each waits at most 20 s)
            seen += ws.receive_json(timeout=20)["changed"]
    assert their_run not in seen, "another user's executions never signal this one"


@pytest.mark.parametrize("origin", [None, "http://evil.example"])
def test_the_home_signal_stream_checks_origin_and_login(browser: Browser, client: Any, origin: str | None) -> None:
    browser.register("originsignal@example.com")
    with pytest.raises(WebSocketDisconnect) as closed, browser.websocket("/ws/executions/changed",
                                                                         origin=origin) as ws:
        ws.receive_text()
    assert closed.value.code == 4403
    with pytest.raises(WebSocketDisconnect), Browser(client).websocket("/ws/executions/changed") as ws:
        ws.receive_text()


def test_a_direct_subscriber_hands_messages_over_in_order_then_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """The hub's subscription (webapp/executions/hub.py): queued messages first, then each one the moment
    the channels plugin hands it over; a failing receiver never raises into the plugin's task."""
    subscriber = DirectSubscriber(ChannelsPlugin(backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True))
    got: list[bytes] = []
    subscriber.put_nowait(b"1")
    subscriber.put_nowait(b"2")
    subscriber.deliver_to(got.append)
    assert got == [b"1", b"2"] and subscriber.qsize == 0
    subscriber.put_nowait(b"3")
    assert got == [b"1", b"2", b"3"] and subscriber.qsize == 0

    def broken(item: bytes) -> None:
        raise ValueError(item)

    subscriber.deliver_to(broken)
    assert subscriber.put_nowait(b"4") is True
    assert "the execution hub failed on a message" in caplog.text
    subscriber.put_nowait(None)  # the plugin ending the subscription: left for iter_events
    assert subscriber.qsize == 1


def test_a_change_published_on_the_channels_reaches_the_hubs_listeners(client: Any) -> None:
    """What a separate worker's change goes through (Redis or PostgreSQL there; the same plugin code)."""
    hub = client.app.state.runtime.hub
    channels = client.app.plugins.get(ChannelsPlugin)

    async def scenario() -> list[int]:
        async with hub.listen(7) as listener:
            change = ExecutionChange(execution_id=70, owner_id=7, workflow_id=1, status="running", at=time.time(), seq=1)
            channels.publish(change.to_json(), [EXECUTIONS_CHANNEL])
            return (await asyncio.wait_for(listener.next_batch(), 10))[0]

    assert client.blocking_portal.call(scenario) == [70]
    assert hub.row(70).status == "running"
