"""What a webhook answers: problem+json for refusals, 202 with the execution id, or the workflow's output."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from engine.contract import RESPONSE_OUTPUT
from engine.models import Execution, NodeRun
from nodes.webhook_trigger import WebhookConfig

PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Too large", 415: "Unsupported media type", 429: "Too many requests",
          500: "The workflow failed", 503: "Unavailable"}


class Answer(msgspec.Struct):
    """A response, and what the request log keeps of it."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = {}
    logged: dict[str, Any] | None = None

    def response(self, background: Any = None) -> Response[bytes]:
        return Response(self.body, status_code=self.status, media_type=self.media_type, headers=self.headers,
                        background=background)


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Answer:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail, **extra}
    return Answer(status, msgspec.json.encode(body), PROBLEM, headers or {}, {"problem": detail})


def json_answer(status: int, data: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, msgspec.json.encode(data), "application/json", headers or {}, {"json": _short(data)})


def accepted(execution_id: int, **extra: Any) -> Answer:
    return json_answer(202, {"execution_id": execution_id, **extra})


def _short(data: Any, limit: int = 4096) -> Any:
    """What the log keeps of a response body: the body, unless it is long."""
    encoded = msgspec.json.encode(data)
    return data if len(encoded) <= limit else {"truncated": encoded[:limit].decode("utf-8", "replace")}


@contextlib.asynccontextmanager
async def _reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads of committed rows: on PostgreSQL in autocommit (no ``BEGIN`` / ``ROLLBACK``
    round trips around the one ``SELECT``); SQLite's driver opens no transaction for a read anyway (and
    switching its isolation level would cost two thread hops)."""
    async with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


async def output_answer(engine: AsyncEngine, execution_id: int, status: str, config: WebhookConfig,
                        output: dict[str, list[Any]] | None = None) -> Answer:
    """``last_node``: the output of the last node (or of ``response_node``) when the workflow succeeded.
    ``output``: the execution's output when the caller has it (a run that went on in this process); read
    from the database when not, or when it does not tell (a node that is not a leaf, several leaves)."""
    if status != "succeeded":
        return problem(500, f"The workflow did not succeed (it {status}); see execution {execution_id}.",
                       execution_id=execution_id)
    node_name = config.response_node.strip()
    items = _items_in(output, node_name) if output is not None else None
    if items is None:
        async with _reading(engine) as db:
            items = await _items(db, execution_id, node_name)
    if items is None:
        return problem(500, f"The node “{config.response_node}” produced no output in execution {execution_id}.",
                       execution_id=execution_id)
    if config.response_data == "all_items":
        return json_answer(200, items)
    return json_answer(200, items[0] if items else {})


def _items_in(output: dict[str, list[Any]], node_name: str) -> list[Any] | None:
    if node_name:
        return list(output[node_name]) if node_name in output else None
    return list(next(iter(output.values()), [])) if len(output) <= 1 else None


async def _items(db: AsyncConnection, execution_id: int, node_name: str) -> list[Any] | None:
    output = await db.scalar(select(Execution.output).where(Execution.id == execution_id)) or {}
    if node_name:
        if node_name in output:
            return list(output[node_name])
        run_output = await db.scalar(select(NodeRun.output).where(
            NodeRun.execution_id == execution_id, NodeRun.node_name == node_name, NodeRun.status == "succeeded")
            .order_by(NodeRun.attempt.desc(), NodeRun.id.desc()).limit(1))
        return None if run_output is None else [i for items in run_output.values() for i in items]
    if len(output) <= 1:
        return next(iter(output.values()), [])
    # several leaves: the one that finished last
    last = await db.scalar(select(NodeRun.node_name).where(
        NodeRun.execution_id == execution_id, NodeRun.node_name.in_(list(output)), NodeRun.status == "succeeded")
        .order_by(NodeRun.finished_at.desc(), NodeRun.id.desc()).limit(1))
    return list(output.get(last, next(iter(output.values()))))


_RESPOND_TYPE = "respond_to_webhook"


async def node_response(engine: AsyncEngine, execution_id: int) -> dict[str, Any] | None:
    """The response a Respond to Webhook node of the execution gave (the first to run), if one has."""
    async with _reading(engine) as db:
        output = await db.scalar(select(NodeRun.output).where(
            NodeRun.execution_id == execution_id, NodeRun.node_type == _RESPOND_TYPE, NodeRun.status == "succeeded")
            .order_by(NodeRun.finished_at, NodeRun.id).limit(1))
    responses = (output or {}).get(RESPONSE_OUTPUT) or []
    return responses[0] if responses and isinstance(responses[0], dict) else None


def respond_answer(response: dict[str, Any]) -> Answer:
    """The Respond to Webhook node's response as an HTTP answer."""
    status = response.get("status") if isinstance(response.get("status"), int) else 200
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    lower = {k.lower() for k in headers}
    if status in (204, 304) or (100 <= status < 200) or response.get("empty"):
        return Answer(status, b"", headers.pop("Content-Type", "text/plain") if "content-type" in lower else
                      "text/plain", headers, {"empty": True})
    if "text" in response:
        text = str(response["text"])
        media = next((v for k, v in headers.items() if k.lower() == "content-type"), "text/plain; charset=utf-8")
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return Answer(status, text.encode("utf-8"), media, headers, {"text": text[:4096]})
    data = response.get("json")
    media = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Answer(status, msgspec.json.encode(data), media, headers, {"json": _short(data)})


def no_response(execution_id: int, status: str) -> Answer:
    """The run ended without reaching a Respond to Webhook node."""
    if status != "succeeded":
        return problem(500, f"The workflow did not succeed (it {status}) before a Respond to Webhook node "
                       f"answered; see execution {execution_id}.", execution_id=execution_id)
    return Answer(204, b"", "text/plain", {"X-Patchwire-Execution": str(execution_id)},
                  {"empty": True, "note": "the workflow finished without a Respond to Webhook node"})
