"""Markdown for sticky notes, rendered on the server into HTML that is safe to insert as is.

CommonMark with raw HTML off (``<script>`` stays text), no images (no requests leave the
page for a note), and links only to ``http``, ``https`` and ``mailto`` (``javascript:`` and
``data:`` links are shown as text). Links open in a new tab without a referrer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


def _safe_link(url: str) -> bool:
    scheme = urlsplit(url.strip()).scheme.lower()
    return scheme in SAFE_SCHEMES


def _link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    tokens[idx].attrSet("target", "_blank")
    return renderer.renderToken(tokens, idx, options, env)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _parser()


def render_markdown(text: str) -> str:
    """HTML for ``text``: everything the person typed is escaped unless it is markdown syntax."""
    return _MD.render(text)
