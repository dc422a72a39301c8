"""The Webhook trigger: starts the workflow when its URL (``/webhook/<token>`` or ``/webhook/<path>``) receives a
request (webapp/webhooks/, docs/triggers.md "Webhooks"). The web process turns the request into the trigger's
one item; the node passes it on."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
PATH_PATTERN = re.compile(r"[A-Za-z0-9._~/-]+")
MAX_PATH = 200
SIGNATURE_PRESETS = ("github", "stripe", "slack", "hmac")
"""Authentication presets whose secret is a ``webhook_secret`` credential."""

Authentication = Literal["none", "header", "basic", "github", "stripe", "slack", "hmac"]
ResponseMode = Literal["immediately", "last_node", "respond_node"]


def parse_methods(text: str) -> tuple[str, ...]:
    """``"post, put"`` → ``("POST", "PUT")``; ``ValueError`` naming an unknown method."""
    methods = [m.strip().upper() for m in re.split(r"[\s,]+", text) if m.strip()]
    for method in methods:
        if method not in HTTP_METHODS:
            raise ValueError(f"{method[:20]!r} is not an HTTP method: use {', '.join(HTTP_METHODS)}.")
    if not methods:
        raise ValueError("Accept at least one method (e.g. POST).")
    return tuple(dict.fromkeys(methods))


def path_problem(path: str) -> str | None:
    """Why a custom path cannot be used (``None``: it can). Stored without surrounding slashes."""
    if len(path) > MAX_PATH:
        return f"At most {MAX_PATH} characters."
    if not PATH_PATTERN.fullmatch(path):
        return "Use only letters, digits and . _ ~ / - (no spaces)."
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "No empty, . or .. segments (e.g. orders/new)."
    return None


def clean_path(path: str | None) -> str | None:
    cleaned = (path or "").strip().strip("/")
    return cleaned or None


class WebhookConfig(msgspec.Struct, forbid_unknown_fields=True):
    methods: Annotated[str, msgspec.Meta(
        title="HTTP methods", description="Comma-separated, e.g. POST or GET, POST. Others are answered 405.")] = "POST"
    path: Annotated[str, msgspec.Meta(
        title="Custom path", description="Optional: /webhook/<path> instead of the unguessable token URL "
        "(letters, digits, . _ ~ / -; unique on this instance).")] = ""
    authentication: Annotated[Authentication, msgspec.Meta(
        title="Authentication", description="none; header (a header token credential); basic (a basic auth "
        "credential); github, stripe, slack or hmac (a signature over the raw body with a webhook secret credential).")] = "none"
    credential: Annotated[int | None, msgspec.Meta(
        title="Credential", description="The secret the requests are checked against.",
        extra={"widget": "credential"})] = None
    signature_header: Annotated[str, msgspec.Meta(
        title="Signature header (hmac)", description="The header carrying the HMAC-SHA256 of the raw body.")] = "X-Signature"
    signature_encoding: Annotated[Literal["hex", "base64"], msgspec.Meta(title="Signature encoding (hmac)")] = "hex"
    signature_prefix: Annotated[str, msgspec.Meta(
        title="Signature prefix (hmac)", description="Text before the signature, e.g. sha256=.")] = ""
    response_mode: Annotated[ResponseMode, msgspec.Meta(
        title="Respond", description="immediately: 202 with the execution id; last_node: the last node's output "
        "when the workflow finishes; respond_node: what a Respond to Webhook node says.")] = "immediately"
    response_data: Annotated[Literal["first_item", "all_items"], msgspec.Meta(
        title="Response data (last_node)", description="The first item as the JSON body, or the list of all items.")] = "first_item"
    response_node: Annotated[str, msgspec.Meta(
        title="Node to respond with (last_node)", description="A node's name; empty: the last node.")] = ""
    response_timeout: Annotated[float, msgspec.Meta(
        gt=0, le=300, title="Time limit (s)", description="Past it the answer is 202 with the execution id.")] = 30.0
    rate_limit: Annotated[int, msgspec.Meta(
        ge=0, le=100_000, title="Rate limit (per minute)", description="0: none. Past it: 429 with Retry-After.")] = 0
    raw_body: Annotated[bool, msgspec.Meta(
        title="Keep the raw body as binary", description="The body becomes binary data (item.binary.data) "
        "instead of being parsed.")] = False

    def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        try:
            parse_methods(self.methods)
        except ValueError as exc:
            problems["methods"] = str(exc)
        path = clean_path(self.path)
        if path is not None and (error := path_problem(path)):
            problems["path"] = error
        if self.authentication != "none" and self.credential is None:
            problems["credential"] = f"Choose the credential for {self.authentication} authentication."
        if self.authentication == "hmac" and not re.fullmatch(r"[A-Za-z0-9-]{1,100}", self.signature_header):
            problems["signature_header"] = "A header name: letters, digits and -."
        return problems


class WebhookTrigger(NodeType):
    """Starts the workflow when its URL is called; emits the request as one item
    (``method``, ``path``, ``headers``, ``query``, ``body`` and, for files, ``binary``)."""

    type_name = "webhook_trigger"
    version = 1
    title = "Webhook"
    category = "Triggers"
    description = "Starts the workflow when another system calls its URL."
    Config = WebhookConfig
    inputs = ()
    is_trigger = True
    trigger_kind = "webhook"
    pure = True
    credential_types: ClassVar[tuple[str, ...]] = ("webhook_secret", "http_header", "http_basic")

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)
