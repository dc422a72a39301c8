"""What the address browsers use means for each response: ``Secure`` cookies and HSTS over HTTPS, the
WebSocket ``Origin`` rule, and which reverse proxies may tell us the scheme and the client.

- **HTTPS** is known from ``PATCHWIRE_PUBLIC_URL`` (``https://…``: always) or from the request itself:
  uvicorn serving TLS, or ``X-Forwarded-Proto: https`` from a proxy listed in ``PATCHWIRE_TRUSTED_PROXIES``
  (nobody's by default: a header anyone can send proves nothing; ``proxy_header_options`` configures
  ``patchwire serve``'s uvicorn). Then every ``Set-Cookie`` of the response (session, CSRF, any later one)
  carries ``Secure``, and ``Strict-Transport-Security`` is sent.
- **Origin**: a WebSocket is accepted only when its ``Origin`` names the same scheme, host and port as
  ``PATCHWIRE_PUBLIC_URL`` or, when that is unset, as the request itself (``wss`` ↔ ``https``, its ``Host``
  header). Default ports count as written (``https://h`` is ``https://h:443``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection

from engine.settings import Settings

HSTS = b"max-age=31536000; includeSubDomains"
"""One year, subdomains included: once a browser has seen it, it never tries plain HTTP on this host."""
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """A web origin: scheme (``http`` / ``https``), host (lower case) and port (the default one when none
    is written)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, value: str | None) -> Origin | None:
        """``scheme://host[:port]`` as a browser sends it in ``Origin``; ``None`` for anything else."""
        if not value:
            return None
        parts = urlsplit(value.strip())
        try:
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
            return None
        return cls(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme])


def request_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> Origin | None:
    """The origin this request was made to: its scheme (``ws``/``wss`` count as ``http``/``https``) and its
    ``Host`` header."""
    scheme = "https" if connection.scope.get("scheme") in ("https", "wss") else "http"
    return Origin.parse(f"{scheme}://{connection.headers.get('host', '')}")


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Browsers always send ``Origin`` on WebSockets; it must be the origin browsers use for Patchwire."""
    settings: Settings = connection.app.state.runtime.settings
    expected = Origin.parse(settings.public_url) if settings.public_url else request_origin(connection)
    given = Origin.parse(connection.headers.get("origin"))
    return given is not None and given == expected


def is_https(scope: Any, settings: Settings) -> bool:
    """Browsers reach this response over HTTPS (the public URL says so, or the request came that way)."""
    return settings.https or scope.get("scheme") in ("https", "wss")


def https_headers_hook(settings: Settings) -> Callable[[Any, Any], Any]:
    """A ``before_send`` hook: over HTTPS, every cookie the response sets is ``Secure``, and HSTS is sent.
    It runs after every middleware has added its cookies."""

    async def add_https_headers(message: Any, scope: Any) -> None:
        if message["type"] != "http.response.start" or not is_https(scope, settings):
            return
        headers = message.setdefault("headers", [])
        headers[:] = [(name, _secure(value) if name.lower() == b"set-cookie" else value) for name, value in headers]
        headers.append((b"strict-transport-security", HSTS))

    return add_https_headers


def _secure(cookie: bytes) -> bytes:
    attributes = {part.strip().lower() for part in cookie.split(b";")[1:]}
    return cookie if b"secure" in attributes else cookie + b"; Secure"


def proxy_header_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``X-Forwarded-Proto`` / ``X-Forwarded-For``: believed from the proxies listed in
    ``PATCHWIRE_TRUSTED_PROXIES`` only, for every request (a 404 and a WebSocket included; the request's
    scheme and client then are the browser's). With none listed the headers are ignored — uvicorn's own
    default would believe them from 127.0.0.1, i.e. from anyone on this machine."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.trusted_proxies}
