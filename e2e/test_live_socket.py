"""`patchwire serve`'s live WebSockets, from a plain client (no browser): the server does not negotiate
permessage-deflate (webapp/cli.py). Each message of the live tables is a small HTML fragment sent to
every browser of its owner; compressing each one per socket cost the web process about 17 % more CPU
per message under the status-latency benchmark (docs/benchmarks.md), as Node's ``ws`` also turns it off
by default."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

PASSWORD = "correct horse battery staple"


def _login(url: str) -> str:
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        client.get("/login")
        answer = client.post("/register", data={"email": "socket@example.com", "password": PASSWORD},
                             headers={"x-csrftoken": client.cookies["csrftoken"]})
        assert answer.status_code in (201, 302, 303), answer.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_live_sockets_answer_without_compression(server: Any) -> None:
    cookie = _login(server.url)
    # the sync client: the e2e session's Playwright keeps an event loop running on this thread.
    # It offers permessage-deflate (its default); the server's answer takes it up or not.
    with connect(server.url.replace("http://", "ws://") + "/ws/executions", open_timeout=30,
                 additional_headers={"Cookie": cookie, "Origin": server.url}) as socket:
        assert socket.request is not None and socket.response is not None
        assert "permessage-deflate" in socket.request.headers["Sec-WebSocket-Extensions"]
        extensions = socket.response.headers.get("Sec-WebSocket-Extensions")
        message = str(socket.recv(timeout=30))
    assert extensions is None
    assert message.startswith('<hx-partial hx-target="#exec-rows"')  # the snapshot of the (empty) table
