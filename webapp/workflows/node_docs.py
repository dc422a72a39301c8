"""``GET /docs/nodes``: docs/nodes.md as a page, the target of the node panel's Docs links."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from litestar import Controller, get
from litestar.response import Template
from markdown_it import MarkdownIt

NODES_DOC = Path(__file__).resolve().parents[2] / "docs" / "nodes.md"


@lru_cache(maxsize=1)
def _html() -> str:
    # our own file, not user text: its <a id> anchors are kept (raw HTML on)
    return MarkdownIt("commonmark", {"html": True}).render(NODES_DOC.read_text(encoding="utf-8"))


class NodeDocsController(Controller):
    path = "/docs"

    @get("/nodes")
    async def nodes(self) -> Template:
        return Template("nodes/docs.html", context={"html": _html()})
