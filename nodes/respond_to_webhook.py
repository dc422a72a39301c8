"""Respond to Webhook: answers the request that started the execution (a Webhook trigger whose *Respond* is
``respond_node``) with a status, headers and a body (expressions), and passes its items on unchanged.

How the answer reaches the waiting request: the node's result carries the rendered response under the reserved
output key ``RESPONSE_OUTPUT`` (not a port); it is committed with the node run, whose commit publishes a change
of the execution; the web process waiting for the request wakes on that change (the execution hub) and reads the
node run's response once (docs/triggers.md "Webhooks")."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from engine.config import KeyValue
from engine.contract import RESPONSE_OUTPUT, Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.expressions import check_syntax

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade", "te",
                        "trailer", "proxy-connection"})
RespondWith = Literal["first_item", "all_items", "json", "text", "no_data"]


class RespondConfig(msgspec.Struct, forbid_unknown_fields=True):
    respond_with: Annotated[RespondWith, msgspec.Meta(
        title="Respond with", description="first_item / all_items: the incoming items as JSON; json: the body "
        "below as JSON; text: the body below as text; no_data: an empty body.")] = "first_item"
    body: Annotated[str, msgspec.Meta(
        title="Body (json, text)", description="May use {{ }} expressions over the first incoming item; json: "
        "JSON text, or an expression giving an object or list.",
        extra={"widget": "code", "display_when": {"respond_with": ["json", "text"]}})] = ""
    status: Annotated[int, msgspec.Meta(ge=100, le=599, title="Status code")] = 200
    headers: Annotated[list[KeyValue], msgspec.Meta(
        title="Headers", description="Values may use {{ }} expressions.")] = []

    def problems(self) -> dict[str, str]:
        if self.respond_with in ("json", "text") and (error := check_syntax(self.body)):
            return {"body": error}
        for row in self.headers:
            if not HEADER_NAME.fullmatch(row.name):
                return {"headers": f"{row.name[:40]!r} is not a header name (letters, digits and -)."}
            if row.name.lower() in HOP_BY_HOP:
                return {"headers": f"{row.name} is set by the server."}
            if error := check_syntax(row.value):
                return {"headers": f"{row.name}: {error}"}
        return {}


class RespondToWebhook(NodeType):
    """Answers the webhook request that started the run; passes its items on."""

    type_name = "respond_to_webhook"
    version = 1
    title = "Respond to Webhook"
    category = "Actions"
    description = "Answer the webhook's caller: status, headers and body."
    Config = RespondConfig
    pure = True
    expression_fields = ("body", "headers")

    async def run(self, ctx: NodeContext, config: RespondConfig, items: list[Item]) -> NodeResult:
        first = items[0] if items else {}
        headers = {}
        for row in config.headers:
            value = str(await ctx.expressions.render(row.value, item=first, field=f"headers.{row.name}"))
            if any(c in value for c in "\r\n\0"):
                raise NodeError(f"The value of header {row.name} holds a line break.")
            headers[row.name] = value
        response = {"status": config.status, "headers": headers, **await self._body(ctx, config, items, first)}
        return NodeResult({"main": items, RESPONSE_OUTPUT: [response]})

    async def _body(self, ctx: NodeContext, config: RespondConfig, items: list[Item], first: Item) -> dict[str, Any]:
        if config.respond_with == "first_item":
            return {"json": first}
        if config.respond_with == "all_items":
            return {"json": items}
        if config.respond_with == "no_data":
            return {"empty": True}
        value = await ctx.expressions.render(config.body, item=first, field="body")
        if config.respond_with == "text":
            return {"text": value if isinstance(value, str) else msgspec.json.encode(value).decode()}
        if isinstance(value, str):
            try:
                value = msgspec.json.decode(value) if value.strip() else None
            except msgspec.DecodeError as exc:
                raise NodeError(f"The body is not valid JSON: {str(exc).replace('`', '')}.") from None
        return {"json": value}
