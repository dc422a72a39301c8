from __future__ import annotations

import dataclasses
import functools
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from engine.config import KeyValue
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.credentials.redaction import Redactor
from engine.errors import NodeError
from engine.expressions import check_syntax, is_expression
from engine.netguard import AddressRefused
from engine.policy import kind_of_status
from nodes.credentials import credential_registry

if TYPE_CHECKING:
    from engine.credentials import CredentialRegistry, CredentialType, OpenCredential

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
Output = Literal["full", "body"]
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
    body: Annotated[Any, msgspec.Meta(title="JSON body", description="Sent as JSON for POST, PUT and PATCH.",
                                      extra={"display_when": {"method": ["POST", "PUT", "PATCH"]}})] = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300, title="Timeout (s)",
                                           extra={"collection": "options"})] = 30.0
    fail_on_error_status: Annotated[bool, msgspec.Meta(
        title="Fail on 4xx/5xx", description="Treat an error status as a failure of the node.",
        extra={"collection": "options"})] = True
    credential: Annotated[int | None, msgspec.Meta(
        title="Credential", description="Sent with every request; replaces a header of the same name above.",
        extra={"widget": "credential"})] = None
    response: Annotated[Output, msgspec.Meta(
        title="Output", description="full: the response's status, headers and body are the item. body: the response "
        "body is the item, as in n8n (a JSON array gives one item per element; text gives {data: …}).",
        extra={"labels": {"full": "Full response (status, headers, body)", "body": "Response body as the item"}})] = "full"

    def problems(self) -> dict[str, str]:
        if error := url_problem(self.url):
            return {"url": error}
        return {}


class HttpRequest(NodeType):
    """Makes one HTTP request per item; the response (status, headers, body) becomes the item, or with
    ``response: "body"`` the response body does (``response_items``), as n8n's node outputs it.

    With a credential, its type adds the authentication to each request (``CredentialType.authorize``);
    an OAuth token is refreshed ahead of its expiry, and a 401 answer gets one refresh and one retry."""

    type_name = "http_request"
    version = 1
    title = "HTTP Request"
    category = "Actions"
    description = "Call any HTTP API."
    Config = HttpRequestConfig
    credential_types: ClassVar[tuple[str, ...]] = (
        "http_header", "http_bearer", "http_basic", "oauth2", "oauth2_client_credentials")

    async def run(self, ctx: NodeContext, config: HttpRequestConfig, items: list[Item]) -> NodeResult:
        results = [await self._request(ctx, config, item) for item in items]
        if config.response == "body":
            return NodeResult.main([out for result in results for out in response_items(result["body"])])
        return NodeResult.main(results)

    def time_limit(self, config: HttpRequestConfig, items: list[Item]) -> float:
        # a retry after a 401 doubles the worst case of an authenticated request
        per_item = config.timeout * (2 if config.credential is not None else 1)
        return per_item * max(1, len(items)) + 30

    async def _request(self, ctx: NodeContext, config: HttpRequestConfig, item: Item) -> Item:
        url = str(await ctx.expressions.render(config.url, item=item, field="url"))
        if error := url_problem(url):
            raise NodeError(f"Invalid URL {url!r}: {error}")
        headers = {h.name: str(await ctx.expressions.render(h.value, item=item, field=f"headers.{h.name}"))
                   for h in config.headers}
        headers.setdefault("Idempotency-Key", ctx.idempotency_key)
        body = await ctx.expressions.render(config.body, item=item, field="body")
        request = _Request(config.method, url, headers, {}, body if config.method in ("POST", "PUT", "PATCH") else None,
                           config.timeout)
        started = time.monotonic()
        auth = await _Auth.open(ctx, config.credential, self.credential_types)
        response, content = await _send(ctx, await auth.apply(request))
        if response.status_code == 401 and auth.refreshable:
            ctx.logger.info("%s %s → HTTP 401: refreshing the credential's token and retrying once", config.method, url)
            response, content = await _send(ctx, await auth.after_unauthorized(request))
        # a server that echoes the request (or quotes the token in an error) must not put it in the output
        result = auth.scrub({"status": response.status_code, "headers": dict(response.headers),
                             "body": _body(response, content)})
        ctx.logger.info("%s %s → HTTP %d, %s bytes in %.0f ms", config.method, url, response.status_code,
                        f"{len(content):,}", (time.monotonic() - started) * 1000)
        if config.fail_on_error_status and response.status_code >= 400:
            raise NodeError(f"{config.method} {url} returned HTTP {response.status_code}", data=result,
                            kind=kind_of_status(response.status_code),
                            retry_after=retry_after(response.headers.get("retry-after")))
        return result


@dataclasses.dataclass(frozen=True)
class _Request:
    """One outgoing request as the node built it, before any authentication is added."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    body: Any
    timeout: float


@dataclasses.dataclass
class _Auth:
    """The credential a node run uses (or none): adds it to a request, refreshes an OAuth token after a 401."""

    ctx: NodeContext
    credential: OpenCredential | None = None
    kind: CredentialType | None = None
    token: str | None = None  # the OAuth access token last sent
    sent: Redactor = dataclasses.field(default_factory=Redactor)
    """What the credential added to the requests, as sent (``Basic dXNl…`` is not the password as stored)."""

    @classmethod
    async def open(cls, ctx: NodeContext, credential_id: int | None, accept: tuple[str, ...]) -> _Auth:
        if credential_id is None:
            return cls(ctx)
        if ctx.credentials is None:
            raise NodeError("this run has no access to credentials", kind="other")
        credential = await ctx.credentials.get(credential_id, accept=accept)
        return cls(ctx, credential, _credential_types().get(credential.type_name)())

    @property
    def refreshable(self) -> bool:
        return self.token is not None

    def scrub(self, result: Item) -> Item:
        return self.sent.redact(result)

    async def apply(self, request: _Request) -> _Request:
        if self.credential is None:
            return request
        if _uses_access_token(self.kind):
            assert self.ctx.credentials is not None
            self.token = await self.ctx.credentials.access_token(self.credential.id)
        return self._authorized(request)

    async def after_unauthorized(self, request: _Request) -> _Request:
        assert self.ctx.credentials is not None and self.credential is not None and self.token is not None
        self.token = await self.ctx.credentials.refresh_after_unauthorized(self.credential.id, self.token)
        return self._authorized(request)

    def _authorized(self, request: _Request) -> _Request:
        """The request with the credential's headers and parameters, which replace the user's of the same name."""
        assert self.credential is not None and self.kind is not None
        credential = self.credential
        if self.token is not None:
            credential = dataclasses.replace(credential, secret={**credential.secret, "access_token": self.token})
        added_headers: dict[str, str] = {}
        added_params: dict[str, str] = {}
        self.kind.authorize(credential, added_headers, added_params)
        self.sent.add(*added_params.values(), *added_headers.values(),
                      *(value.split(" ", 1)[1] for value in added_headers.values() if " " in value))
        names = {name.lower() for name in added_headers}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in names} | added_headers
        return dataclasses.replace(request, headers=headers, params={**request.params, **added_params})


@functools.cache
def _credential_types() -> CredentialRegistry:
    return credential_registry()


def _uses_access_token(kind: CredentialType | None) -> bool:
    """OAuth types keep an access token among their secret fields; the vault keeps it fresh."""
    return kind is not None and "access_token" in {f.name for f in msgspec.structs.fields(kind.Secret)}


async def _send(ctx: NodeContext, request: _Request) -> tuple[httpx.Response, bytes]:
    """Send one request through the guarded client; the response and its body (capped)."""
    what = f"{request.method} {request.url}"  # never the headers or parameters: they may carry the credential
    try:
        async with ctx.http.stream(request.method, request.url, headers=request.headers, params=request.params or None,
                                   json=request.body, timeout=request.timeout) as response:
            return response, await _read_capped(response)
    except AddressRefused as exc:
        raise NodeError(f"{what} refused: {exc}. Workflows may only call public addresses; an "
                        f"operator can allow networks with PATCHWIRE_HTTP_ALLOW_NETWORKS", kind="other") from None
    except httpx.TimeoutException:
        raise NodeError(f"{what} timed out after {request.timeout:g} s", kind="timeout") from None
    except httpx.HTTPError as exc:
        raise NodeError(f"{what} failed: {exc}", kind="network") from None


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


def response_items(body: Any) -> list[Item]:
    """The items a response body becomes with ``response: "body"`` (n8n's shapes): a JSON object is the item;
    a JSON array is one item per element (an element that is not an object becomes ``{"value": …}``, an empty
    array no item); text (or a body that is not JSON) becomes ``{"data": "<text>"}``; any other JSON value
    ``{"value": …}``."""
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        return [element if isinstance(element, dict) else {"value": element} for element in body]
    if isinstance(body, str):
        return [{"data": body}]
    return [{"value": body}]
