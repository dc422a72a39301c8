"""The HTTP Request node's Output option: the full response (``{status, headers, body}``, the default) or the
response body as the item (n8n's shape), through the real run loop and the guarded HTTP client, against a
loopback API that answers each body kind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.netguard import outbound_client, parse_networks
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import registry
from nodes.http_request import HttpRequestConfig, response_items
from tests.loopback import serve_http

ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/object": (200, "application/json", json.dumps({"id": 7, "name": "Ada"}).encode()),
    "/array": (200, "application/json; charset=utf-8", json.dumps([{"id": 1}, {"id": 2}, 3, "four"]).encode()),
    "/empty-array": (200, "application/json", b"[]"),
    "/number": (200, "application/json", b"42"),
    "/text": (200, "text/plain; charset=utf-8", "plain words – ok".encode()),
    "/html": (200, "text/html", b"<p>hi</p>"),
    "/mislabelled": (200, "application/json", b"not json"),
    "/binary": (200, "application/octet-stream", bytes([0x89, 0x50, 0x4E, 0x47, 0xFF, 0x00])),
    "/missing": (404, "application/json", json.dumps({"error": "no such thing"}).encode()),
}


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status, content_type, body = ANSWERS[self.path]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Handler, "http-response-api") as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with outbound_client(allow=parse_networks("127.0.0.0/8")) as client:
        yield client


async def run(http: httpx.AsyncClient, url: str, *, inputs: int = 1, **config: Any) -> tuple[Any, list[Any]]:
    """Manual Trigger (``inputs`` items) → HTTP Request; the outcome and the HTTP node's output items."""
    graph = Graph(nodes=[NodeSpec(id="t", type="manual_trigger", name="Start", version=1, config={}),
                         NodeSpec(id="h", type="http_request", name="Call", version=1, config={"url": url, **config})],
                  connections=[ConnectionSpec(source="t", target="h", source_port="main", target_port="main")])
    store = MemoryRunStore()
    outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http,
                                start_items=[{"n": i} for i in range(inputs)]))
    attempts = store.attempts(1, "h")
    return outcome, (attempts[-1].output or {}).get("main", []) if attempts else []


def test_the_default_is_the_full_response_so_existing_workflows_are_unchanged() -> None:
    assert HttpRequestConfig(url="https://example.com").response == "full"


async def test_full_response_is_status_headers_and_body(http: httpx.AsyncClient, api: str) -> None:
    outcome, [item] = await run(http, f"{api}/object")
    assert outcome.status == "succeeded", outcome.error
    assert item["status"] == 200 and item["body"] == {"id": 7, "name": "Ada"}
    assert item["headers"]["content-type"] == "application/json"


async def test_body_mode_makes_a_json_object_the_item(http: httpx.AsyncClient, api: str) -> None:
    outcome, items = await run(http, f"{api}/object", response="body")
    assert outcome.status == "succeeded", outcome.error
    assert items == [{"id": 7, "name": "Ada"}]


async def test_body_mode_splits_a_json_array_into_items_and_wraps_non_objects(http: httpx.AsyncClient,
                                                                               api: str) -> None:
    outcome, items = await run(http, f"{api}/array", response="body")
    assert outcome.status == "succeeded", outcome.error
    assert items == [{"id": 1}, {"id": 2}, {"value": 3}, {"value": "four"}]
    # one request per incoming item, the elements of each answer in order
    outcome, items = await run(http, f"{api}/array", response="body", inputs=2)
    assert outcome.status == "succeeded", outcome.error
    assert items == [{"id": 1}, {"id": 2}, {"value": 3}, {"value": "four"}] * 2


async def test_body_mode_an_empty_array_gives_no_item(http: httpx.AsyncClient, api: str) -> None:
    outcome, items = await run(http, f"{api}/empty-array", response="body")
    assert outcome.status == "succeeded", outcome.error
    assert items == []


@pytest.mark.parametrize(("path", "expected"), [
    ("/text", {"data": "plain words – ok"}),
    ("/html", {"data": "<p>hi</p>"}),
    ("/mislabelled", {"data": "not json"}),
    ("/number", {"value": 42}),
])
async def test_body_mode_text_becomes_data(http: httpx.AsyncClient, api: str, path: str,
                                           expected: dict[str, Any]) -> None:
    outcome, items = await run(http, f"{api}{path}", response="body")
    assert outcome.status == "succeeded", outcome.error
    assert items == [expected]


async def test_body_mode_keeps_a_binary_body_as_the_full_mode_does(http: httpx.AsyncClient, api: str) -> None:
    _, [full] = await run(http, f"{api}/binary")
    outcome, items = await run(http, f"{api}/binary", response="body")
    assert outcome.status == "succeeded", outcome.error
    assert items == [{"data": full["body"]}]
    assert isinstance(full["body"], str) and full["body"].startswith("\ufffdPNG")


async def test_body_mode_error_status_without_failing_is_still_the_body(http: httpx.AsyncClient, api: str) -> None:
    outcome, items = await run(http, f"{api}/missing", response="body", fail_on_error_status=False)
    assert outcome.status == "succeeded", outcome.error
    assert items == [{"error": "no such thing"}]


async def test_body_mode_error_status_fails_with_the_full_response_as_data(http: httpx.AsyncClient,
                                                                          api: str) -> None:
    outcome, _ = await run(http, f"{api}/missing", response="body")
    assert outcome.status == "failed"
    assert "HTTP 404" in str(outcome.error)


def test_response_items_shapes() -> None:
    assert response_items({"a": 1}) == [{"a": 1}]
    assert response_items([{"a": 1}, [2], None]) == [{"a": 1}, {"value": [2]}, {"value": None}]
    assert response_items("") == [{"data": ""}]
    assert response_items(True) == [{"value": True}]
