"""The webhook route's fast way in: ``/webhook/…`` answered before Litestar's router and route middleware.

A webhook request needs none of what the app's pages need — no session, no login, no CSRF token, no
dependency injection — yet each of those layers cost it a coroutine frame on every await, and together they
were as much of the web process's CPU as the request's own work (docs/benchmarks.md, issue 16). Installed
inside the app's outermost exception handler (``install_front``), this layer takes ``/webhook/<key>`` with a
webhook method and calls ``receive`` with the app's own request class and the route's handler in the scope
(so the body limit, ``PATCHWIRE_WEBHOOK_MAX_BODY``, is the route's); everything else goes on to the router.
What still applies: ``Litestar.__call__``'s ``before_send`` hooks (the security headers), the exception
handler (an error is a 500 problem, as on any route), and, with metrics on, the same Prometheus middleware the
routes have, with the route's path template. The Litestar route (``receive.webhook_route``) stays registered:
its name builds URLs, and a method it does not take gets the router's 405 with ``Allow``.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from webapp.webhooks.answers import Answer
from webapp.webhooks.receive import receive

PREFIX = "/webhook/"
TEMPLATE = "/webhook/{key:path}"


def webhook_front(app: Litestar, inner: ASGIApp, *, metrics: Any | None = None) -> ASGIApp:
    """``inner`` (the router), with ``/webhook/…`` requests taken before it."""
    index = app.get_handler_index_by_name("webhook")
    assert index is not None, "the webhook route is not registered"
    handler = index["handler"]
    methods = frozenset(handler.http_methods)
    max_body = handler.resolve_request_max_body_size() or 0
    request_class = handler.resolve_request_class()

    async def answer(scope: Scope, receive_: Receive, send: Send) -> None:
        request = request_class(scope, receive_, send)
        result = await receive(request, scope["path_params"]["key"].strip("/"), max_body)
        await send_answer(result, send, head=scope["method"] == "HEAD")

    handle: ASGIApp = answer if metrics is None else metrics(app=answer)

    async def front(scope: Scope, receive_: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX) and scope["method"] in methods:
            scope["route_handler"] = handler
            scope["path_template"] = TEMPLATE
            scope["path_params"] = {"key": scope["path"][len(PREFIX):]}
            await handle(scope, receive_, send)
            return
        await inner(scope, receive_, send)

    return front


async def send_answer(answer: Answer, send: Send, *, head: bool = False) -> None:
    """The answer as Litestar's ``Response`` sends it (a text type gets its charset; the length is the body's)."""
    body, media_type = answer.body, answer.media_type
    if media_type.startswith("text/") and "charset" not in media_type:
        media_type += "; charset=utf-8"
    headers = [(b"content-type", media_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "content-type")]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
