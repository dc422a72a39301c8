"""What a webhook answers: problem+json for refusals, 202 with the execution id, or the workflow's output."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


async def output_answer(sessions: async_sessionmaker[AsyncSession], execution_id: int, status: str,
                        config: WebhookConfig) -> Answer:
    """``last_node``: the output of the last node (or of ``response_node``) when the workflow succeeded."""
    if status != "succeeded":
        return problem(500, f"The workflow did not succeed (it {status}); see execution {execution_id}.",
                       execution_id=execution_id)
    async with sessions() as db:
        items = await _items(db, execution_id, config.response_node.strip())
    if items is None:
        return problem(500, f"The node “{config.response_node}” produced no output in execution {execution_id}.",
                       execution_id=execution_id)
    if config.response_data == "all_items":
        return json_answer(200, items)
    return json_answer(200, items[0] if items else {})


async def _items(db: AsyncSession, execution_id: int, node_name: str) -> list[Any] | None:
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
