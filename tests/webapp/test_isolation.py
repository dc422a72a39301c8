"""A second user gets 404 for everything of the first user's: pages, partials, run, execution, stream."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect

from tests.webapp.conftest import Browser


def test_second_user_sees_nothing_of_the_first(browser: Browser, second_browser: Browser, sink_server: Any) -> None:
    browser.register("owner@example.com")
    wid = browser.create_workflow("Private flow")
    trigger = browser.add_node(wid, "manual_trigger")
    delay = browser.add_node(wid, "delay")
    browser.connect(wid, trigger, delay)
    run = browser.post(f"/workflows/{wid}/run")
    execution_id = int(run.text.split("/executions/")[1].split('"')[0])
    browser.wait_for_execution(execution_id)

    second_browser.register("intruder@example.com")
    assert "Private flow" not in second_browser.get("/workflows/").text
    assert "Private flow" not in second_browser.get("/executions/").text
    for method, url, data in [
        ("get", f"/workflows/{wid}", None),
        ("get", f"/workflows/{wid}/export", None),
        ("get", f"/workflows/{wid}/nodes/{trigger}", None),
        ("post", f"/workflows/{wid}/nodes/{trigger}", {"name": "pwned"}),
        ("post", f"/workflows/{wid}/nodes", {"type": "delay", "x": 0, "y": 0}),
        ("post", f"/workflows/{wid}/nodes/{trigger}/position", {"x": 1, "y": 1}),
        ("post", f"/workflows/{wid}/connections", {"source": trigger, "target": delay}),
        ("post", f"/workflows/{wid}/connections/delete", {"source": trigger, "target": delay}),
        ("post", f"/workflows/{wid}/rename", {"name": "pwned"}),
        ("post", f"/workflows/{wid}/run", None),
        ("delete", f"/workflows/{wid}/nodes/{trigger}", None),
        ("delete", f"/workflows/{wid}", None),
        ("get", f"/executions/{execution_id}", None),
    ]:
        response = getattr(second_browser, method)(url, **({"data": data} if data is not None else {}))
        assert response.status_code == 404, f"{method.upper()} {url} gave {response.status_code}"
        assert "Private flow" not in response.text

    with pytest.raises(WebSocketDisconnect) as closed, second_browser.websocket(f"/ws/executions/{execution_id}") as ws:
        ws.receive_text()
    assert closed.value.code == 4404
    # and the owner's things are intact
    assert "Private flow" in browser.get(f"/workflows/{wid}").text
    assert browser.get(f"/workflows/{wid}/nodes/{trigger}").status_code == 200


def test_unknown_ids_are_404_not_500(browser: Browser) -> None:
    browser.register("lost@example.com")
    for url in ["/workflows/999999", "/executions/999999", "/workflows/999999/nodes/abc"]:
        assert browser.get(url).status_code == 404
    assert browser.post("/workflows/999999/run").status_code == 404
