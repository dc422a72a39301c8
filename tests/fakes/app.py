"""The fake server's ASGI app: one Litestar app with a router per dialect, behind a small middleware
that records each request and applies the provider's switches (down → 503, rate limit → 429 +
``Retry-After``, delay → answer late)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from tests.fakes import generic, google, notion, slack, telegram
from tests.fakes.state import ProviderState, RecordedRequest

RATE_LIMITED = {
    "oauth2": {"error": "rate_limited", "error_description": "Too many requests."},
    "google": {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                         "errors": [{"message": "Rate Limit Exceeded", "domain": "usageLimits",
                                     "reason": "rateLimitExceeded"}], "status": "RESOURCE_EXHAUSTED"}},
    "slack": {"ok": False, "error": "ratelimited"},
    "notion": {"object": "error", "status": 429, "code": "rate_limited",
               "message": "You have been rate limited. Please try again in a few minutes."},
    "telegram": {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after {n}"},
}
DOWN = {"error": "temporarily_unavailable", "error_description": "The fake provider is down (test switch)."}


class Switches:
    """ASGI middleware: find the provider by the first path segment, record, then down / 429 / delay."""

    def __init__(self, app: ASGIApp, states: dict[str, ProviderState], release: Any, gate: Any) -> None:
        self.app = app
        self.states = states
        self.release = release  # () -> asyncio.Event set when the fakes are reset (cuts delays short)
        self.gate = gate  # (provider) -> asyncio.Event set when the test releases held requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.states.get(scope["path"].strip("/").split("/")[0])
        if state is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw, receive = await buffered(receive)
        state.record(RecordedRequest(scope["method"], scope["path"], scope["query_string"].decode(), headers,
                                     parse_body(raw, headers.get("content-type", ""))))
        if state.hold:
            await self.wait_at_gate(state)
        if state.delay > 0:
            with contextlib.suppress(TimeoutError):  # the delay ran out (not cut short by a reset)
                await asyncio.wait_for(self.release().wait(), state.delay)
        if state.down:
            await answer(send, 503, DOWN, {"retry-after": "1"})
        elif state.take_rate_limit():
            body = json.loads(json.dumps(RATE_LIMITED[state.name]).replace("{n}", str(state.retry_after)))
            if state.name == "telegram":
                body["parameters"] = {"retry_after": state.retry_after}
            await answer(send, 429, body, {"retry-after": str(state.retry_after)})
        else:
            await self.app(scope, receive, send)


    async def wait_at_gate(self, state: ProviderState) -> None:
        # Reading `hold` and taking the gate happen on the loop with no await between, and the gate is
        # opened on the loop too (FakeProviders.release), so a request never waits on a stale gate.
        gate = self.gate(state.name)
        state.note_held(+1)
        try:
            await gate.wait()
        finally:
            state.note_held(-1)


async def buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body (the fakes' requests are small) and a ``receive`` that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return raw, replay


def parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            return value if isinstance(value, dict) else {"_json": value}
        return {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


async def answer(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def create_app(states: dict[str, ProviderState], release: Any, gate: Any) -> ASGIApp:
    dialects = {"oauth2": generic, "google": google, "slack": slack, "notion": notion, "telegram": telegram}
    routers = [module.router(states[name]) for name, module in dialects.items()]
    app = Litestar(route_handlers=routers, openapi_config=None, debug=False)
    return Switches(app, states, release, gate)
