"""The request-parsing layer: every id, body and content type is checked before a handler runs.

Four seams of Litestar, set once on the app (``webapp/app.py``), so a new route is covered the
day it is added:

- ``require_ids_in_range`` (an app guard, HTTP and WebSocket): an ``int`` path parameter outside
  ``1 … 2**63 - 1`` is a 404 before anything queries the database with it.
- ``StrictRequest`` (the app's request class, also used by the CSRF middleware when it reads a
  form): a body past the size limit is a 413 naming it; form bodies must be UTF-8 (also inside
  %-escapes) and JSON bodies are held to ``engine.limits`` (size, UTF-8, depth) — else a 400.
- ``check_body`` (the app's before-request hook): a non-empty body of an unsafe request must be
  of the kind the handler reads — JSON for a ``data: JSONBody[...]`` handler, a form for every
  other — else a 415; then it is parsed (and cached), so a bad one fails here, as a 4xx.
- ``SocketAwareSessionAuth`` (the session auth's middleware class) and ``refuse_sockets_clearly`` (around
  the router): a WebSocket without a session is closed with 4401, one to no route with 4404 — not with
  Litestar's 4500 "internal server error", which no client can tell from a crash.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from litestar import Litestar, Request
from litestar._asgi.utils import wrap_in_exception_handler
from litestar.connection import ASGIConnection
from litestar.datastructures.multi_dicts import FormMultiDict
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, WebSocketException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.session_auth.middleware import SessionAuthMiddleware
from litestar.types import ASGIApp, Empty, Receive, Scope, Send

from engine.limits import MAX_ID, JSONLimitError, JSONTooLarge, is_id, load_json
from webapp.errors import BadRequest, TooLarge, UnsupportedMediaType

WS_NOT_FOUND, WS_NOT_AUTHORIZED = 4404, 4401
"""WebSocket close codes: 4000 + the HTTP status, as the streams close for an execution not found."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({RequestEncodingType.URL_ENCODED.value, RequestEncodingType.MULTI_PART.value})
UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
OFF_LOOP_BYTES = 64 * 1024
"""A JSON body larger than this is checked and decoded in a worker thread, not on the event loop."""


def require_ids_in_range(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: every integer path parameter is a possible row id (else 404, naming the range)."""
    for name, value in connection.path_params.items():
        if isinstance(value, int) and not is_id(value):
            if connection.scope["type"] == ScopeType.WEBSOCKET:  # a close reason holds at most 123 bytes
                raise WebSocketException(detail=f"{name} out of range (1 to {MAX_ID})", code=WS_NOT_FOUND)
            raise NotFoundException(f"There is nothing with {name} {value}: ids are whole numbers from 1 to {MAX_ID}.")


class SocketAwareSessionAuth(SessionAuthMiddleware):
    """The session auth, closing a WebSocket without a session with 4401: Litestar closes every exception
    that is not a ``WebSocketException`` with 4500, "internal server error", which no client can tell
    from a crash."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        try:
            return await super().authenticate_request(connection)
        except NotAuthorizedException as exc:
            if connection.scope["type"] != ScopeType.WEBSOCKET:
                raise
            raise WebSocketException(detail=str(exc.detail)[:120], code=WS_NOT_AUTHORIZED) from None


def refuse_sockets_clearly(router: ASGIApp) -> ASGIApp:
    """Around the app's router: a WebSocket to no route (``/ws/executions/abc``) is closed with 4000 + the
    status (4404), not with the 4500 that Litestar's outer exception handler gives every non-WebSocket error.
    Only ``HTTPException``s, the router's refusals: anything else still is a server error."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET:
            await router(scope, receive, send)
            return
        try:
            await router(scope, receive, send)
        except HTTPException as exc:
            raise WebSocketException(detail=str(exc.detail)[:120], code=4000 + exc.status_code) from None

    return route


def install_socket_refusals(app: Litestar, front: Callable[[ASGIApp], ASGIApp] | None = None) -> Litestar:
    """Put ``refuse_sockets_clearly`` between the router and the app's outermost exception handler (Litestar
    2.25 builds that pair in ``Litestar._create_asgi_handler``; this app configures no CORS or tracing there),
    and ``front`` around it (the webhook route's way in, webapp/webhooks/front.py)."""
    inner = refuse_sockets_clearly(app.asgi_router)
    app.asgi_handler = wrap_in_exception_handler(app=front(inner) if front is not None else inner)
    return app


def _json_type(media_type: str) -> bool:
    return media_type == RequestEncodingType.JSON.value or (media_type.startswith("application/")
                                                             and media_type.endswith("+json"))


def expects_json(handler: Any) -> bool:
    """Whether the handler reads its body as JSON (a ``data`` parameter whose media type is JSON)."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    media_type = getattr(data.kwarg_definition, "media_type", RequestEncodingType.JSON)
    return media_type == RequestEncodingType.JSON


def parse_form(body: bytes) -> dict[str, str | list[str]]:
    """An URL-encoded form, strictly UTF-8 (Litestar reads the bytes as Latin-1 and replaces bad escapes)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The form is not valid UTF-8 text (byte {exc.start:,}); forms are read as UTF-8.") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("A form field is not valid UTF-8 text once its %-escapes are decoded.") from None
    fields: defaultdict[str, list[str]] = defaultdict(list)
    for key, value in pairs:
        fields[key].append(value)
    return {key: values if len(values) > 1 else values[0] for key, values in fields.items()}


class StrictRequest(Request[Any, Any, Any]):
    """Litestar's request, with bodies held to the limits (see the module's docstring)."""

    async def body(self) -> bytes:
        try:
            return await super().body()
        except RequestEntityTooLarge:
            limit = self.route_handler.resolve_request_max_body_size() or 0
            raise TooLarge(f"The request body is larger than {limit:,} bytes ({limit / 1048576:g} MiB), "
                           "the limit of this address.") from None

    async def json(self) -> Any:
        if self._json is Empty and self._connection_state.json is Empty:
            body = await self.body() or b"null"
            try:
                if len(body) > OFF_LOOP_BYTES:
                    value = await anyio.to_thread.run_sync(load_json, body, "The request body")
                else:
                    value = load_json(body, "The request body")
            except JSONTooLarge as exc:
                raise TooLarge(str(exc)) from None
            except JSONLimitError as exc:
                raise BadRequest(str(exc)) from None
            self._json = self._connection_state.json = value
        return await super().json()

    async def form(self) -> FormMultiDict:
        if self._form is Empty and self._connection_state.form is Empty:
            media_type, _ = self.content_type
            body = await self.body()  # also what a multipart parse streams: the size limit names itself
            if media_type == RequestEncodingType.URL_ENCODED:
                self._connection_state.form = parse_form(body)  # type: ignore[assignment]
            elif media_type == RequestEncodingType.MULTI_PART:
                try:
                    return await super().form()
                except (UnicodeDecodeError, LookupError):
                    raise BadRequest("A form field is not valid text in its charset (UTF-8 unless the part "
                                     "names another).") from None
        return await super().form()


def _check_charset(options: dict[str, str]) -> None:
    charset = options.get("charset", "utf-8").strip().lower()
    if charset not in UTF8_CHARSETS:
        raise UnsupportedMediaType(f"The body's charset {charset!r} is not accepted: send UTF-8.")


async def check_body(request: Request[Any, Any, Any]) -> None:
    """Before every handler: a body of the kind the handler reads, parsed within the limits (see above)."""
    if request.method in SAFE_METHODS or not await request.body():
        return
    media_type, options = request.content_type
    if expects_json(request.route_handler):
        if not _json_type(media_type):
            raise UnsupportedMediaType(f"This address takes a JSON body (Content-Type: application/json), "
                                       f"not {media_type or 'a body without a type'}.")
        _check_charset(options)
        await request.json()
        return
    if media_type not in FORM_TYPES:
        raise UnsupportedMediaType("This address takes a form (Content-Type: application/x-www-form-urlencoded "
                                   f"or multipart/form-data), not {media_type or 'a body without a type'}.")
    _check_charset(options)
    await request.form()

