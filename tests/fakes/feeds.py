"""A loopback HTTP server whose documents the test changes: feeds, JSON lists, redirects, errors.

``FeedServer.put(path, body, content_type=…)`` serves ``body`` at ``path`` with an ``ETag`` (a digest of the
body) and a ``Last-Modified`` (the time of the ``put``), and answers ``304 Not Modified`` to a request whose
``If-None-Match`` / ``If-Modified-Since`` still matches. ``status`` / ``headers`` make a path answer an error
(``Retry-After`` …), ``require`` makes it answer 401 unless a header has a value, ``redirect(path, to)`` makes
it a redirect. ``requests`` records every request (path and lower-cased headers). The ``feed_server``
fixture (tests/fakes/fixtures.py) gives a fresh one per test. ``rss`` and ``atom`` build small feeds.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from tests.loopback import serve_http


@dataclass
class Document:
    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    require: tuple[str, str] | None = None  # (header name, value) or 401


@dataclass
class FeedServer:
    url: str = ""
    documents: dict[str, Document] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _puts: int = 0

    def put(self, path: str, body: str | bytes, content_type: str = "application/rss+xml; charset=utf-8", *,
            status: int = 200, headers: dict[str, str] | None = None, validators: bool = True,
            require: tuple[str, str] | None = None) -> str:
        """Serve ``body`` at ``path`` from now on; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        with self.lock:
            self._puts += 1
            etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"' if validators else None
            modified = formatdate(1_700_000_000 + self._puts * 60, usegmt=True) if validators else None
            self.documents[path] = Document(data, content_type, status, headers or {}, etag, modified, require)
        return self.url + path

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        return self.put(path, b"", "text/plain", status=status, headers={"Location": to}, validators=False)

    def received(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append({"path": path, "headers": headers})
            doc = self.documents.get(path)
        if doc is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if doc.require and headers.get(doc.require[0].lower()) != doc.require[1]:
            return 401, {"Content-Type": "application/json"}, b'{"error": "unauthorized"}'
        fresh = {"ETag": doc.etag, "Last-Modified": doc.last_modified}
        validators = {k: v for k, v in fresh.items() if v}
        if doc.status == 200 and ((doc.etag and headers.get("if-none-match") == doc.etag) or
                                  (doc.last_modified and headers.get("if-modified-since") == doc.last_modified)):
            return 304, validators, b""
        return doc.status, {"Content-Type": doc.content_type, **validators, **doc.headers}, doc.body


def serve_feeds() -> Iterator[FeedServer]:
    state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            status, headers, body = state.answer(urlsplit(self.path).path,
                                                 {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except ConnectionError:  # the client stopped reading on purpose (a size cap): nothing to report
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            return None

    with serve_http(Handler, "feed-server") as url:
        state.url = url
        yield state


def rss(entries: list[dict[str, str]], title: str = "Example feed") -> str:
    """An RSS 2.0 document; each entry's keys: title, link, guid (optional), pubDate (optional), description."""
    items = "".join(
        "<item>" + "".join(f"<{tag}>{escape(entry[key])}</{tag}>" for key, tag in
                           (("title", "title"), ("link", "link"), ("guid", "guid"), ("pubDate", "pubDate"),
                            ("description", "description"), ("author", "author")) if key in entry) + "</item>"
        for entry in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>https://example.com/</link><description>test</description>{items}</channel></rss>")


def atom(entries: list[dict[str, str]], title: str = "Example Atom feed") -> str:
    """An Atom 1.0 document; each entry's keys: title, link, id (optional), updated, summary (optional)."""
    body = "".join(
        "<entry>" + f"<title>{escape(e['title'])}</title><link href=\"{escape(e['link'])}\"/>"
        + (f"<id>{escape(e['id'])}</id>" if "id" in e else "")
        + f"<updated>{e.get('updated', '2026-01-01T00:00:00Z')}</updated>"
        + (f"<summary>{escape(e['summary'])}</summary>" if "summary" in e else "") + "</entry>"
        for e in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title><id>urn:example:feed</id><updated>2026-01-01T00:00:00Z</updated>"
            f"{body}</feed>")
