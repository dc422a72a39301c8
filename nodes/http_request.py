from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from engine.config import KeyValue
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.expressions import check_syntax, is_expression
from engine.netguard import AddressRefused
from engine.policy import kind_of_status

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
MAX_BODY_BYTES = 10 * 1024 * 1024


def url_problem(url: str) -> str | None:
    if is_expression(url):
        return check_syntax(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a full http:// or https:// URL."
    return None


class HttpRequestConfig(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(title="URL", description="http:// or https://; may use {{ }} expressions.")]
    method: Annotated[Method, msgspec.Meta(title="Method")] = "GET"
    headers: Annotated[list[KeyValue], msgspec.Meta(title="Headers")] = []
    body: Annotated[Any, msgspec.Meta(title="JSON body", description="Sent as JSON for POST, PUT and PATCH.")] = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300, title="Timeout (s)")] = 30.0
    fail_on_error_status: Annotated[bool, msgspec.Meta(
        title="Fail on 4xx/5xx", description="Treat an error status as a failure of the node.")] = True

    def problems(self) -> dict[str, str]:
        if error := url_problem(self.url):
            return {"url": error}
        return {}


class HttpRequest(NodeType):
    """Makes one HTTP request per item; the response (status, headers, body) becomes the item."""

    type_name = "http_request"
    version = 1
    title = "HTTP Request"
    category = "Actions"
    description = "Call any HTTP API."
    Config = HttpRequestConfig

    async def run(self, ctx: NodeContext, config: HttpRequestConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main([await self._request(ctx, config, item) for item in items])

    def time_limit(self, config: HttpRequestConfig, items: list[Item]) -> float:
        return config.timeout * max(1, len(items)) + 30

    async def _request(self, ctx: NodeContext, config: HttpRequestConfig, item: Item) -> Item:
        url = str(await ctx.expressions.render(config.url, item=item, field="url"))
        if error := url_problem(url):
            raise NodeError(f"Invalid URL {url!r}: {error}")
        headers = {h.name: str(await ctx.expressions.render(h.value, item=item, field=f"headers.{h.name}"))
                   for h in config.headers}
        headers.setdefault("Idempotency-Key", ctx.idempotency_key)
        body = await ctx.expressions.render(config.body, item=item, field="body")
        send_body = config.method in ("POST", "PUT", "PATCH") and body is not None
        started = time.monotonic()
        try:
            async with ctx.http.stream(config.method, url, headers=headers, json=body if send_body else None,
                                       timeout=config.timeout) as response:
                content = await _read_capped(response)
        except AddressRefused as exc:
            raise NodeError(f"{config.method} {url} refused: {exc}. Workflows may only call public addresses; an "
                            f"operator can allow networks with PATCHWIRE_HTTP_ALLOW_NETWORKS", kind="other") from None
        except httpx.TimeoutException:
            raise NodeError(f"{config.method} {url} timed out after {config.timeout:g} s", kind="timeout") from None
        except httpx.HTTPError as exc:
            raise NodeError(f"{config.method} {url} failed: {exc}", kind="network") from None
        result = {"status": response.status_code, "headers": dict(response.headers), "body": _body(response, content)}
        ctx.logger.info("%s %s → HTTP %d, %s bytes in %.0f ms", config.method, url, response.status_code,
                        f"{len(content):,}", (time.monotonic() - started) * 1000)
        if config.fail_on_error_status and response.status_code >= 400:
            raise NodeError(f"{config.method} {url} returned HTTP {response.status_code}", data=result,
                            kind=kind_of_status(response.status_code),
                            retry_after=retry_after(response.headers.get("retry-after")))
        return result


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else None


async def _read_capped(response: httpx.Response) -> bytes:
    """Read at most MAX_BODY_BYTES; a larger body is an error, not a worker out of memory."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise NodeError(f"response body larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _body(response: httpx.Response, content: bytes) -> Any:
    text = content.decode(response.encoding or "utf-8", errors="replace")
    if "json" not in response.headers.get("content-type", ""):
        return text
    try:
        return json.loads(content)
    except ValueError:
        return text  # a server that labels non-JSON as JSON: keep what it sent
