"""A JSON value as a collapsible tree of ``<details>``/``<summary>`` (no script), escaped, bounded.

Big payloads are cut: at most ``MAX_CHILDREN`` entries per object or list, ``MAX_STRING`` characters
per string and ``MAX_NODES`` values in all; what is left out is said where it is left out.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

from engine.limits import MAX_JSON_DEPTH
from webapp.testing.datapaths import Key, expression_for

MAX_NODES = 1500
MAX_CHILDREN = 100
MAX_STRING = 1000
OPEN_DEPTH = 3
MAX_DEPTH = MAX_JSON_DEPTH
"""Levels shown; deeper values would exhaust the recursion of this renderer (one value per level)."""


class _Budget:
    def __init__(self, source: str | None, limit: int) -> None:
        self.left = limit
        self.cut = False
        self.source = source


def json_tree(value: Any, label: str = "", download: str | None = None, source: str | None = None,
              limit: int = MAX_NODES) -> Markup:
    """The tree of ``value``; a top-level note says when parts are not shown (with a link to
    ``download``, a URL that returns the whole value, when given).

    With ``source`` (``value`` is then a list of items: ``""`` for the node's own input, or an earlier node's
    name for its output), every key can be dragged into a parameter: it carries ``data-expr``, the expression
    that reaches it (``webapp/testing/datapaths.py``). ``limit`` bounds the values shown (the node editor's
    panes show fewer than the execution page, to open fast: ``webapp/testing/panes.py``)."""
    budget = _Budget(source, limit)
    body = _node(label, value, 0, budget, ())
    note = _note(download) if budget.cut else ""
    return Markup('<div class="json-tree">{}{}</div>').format(Markup("<ul>{}</ul>").format(body), note)


def _note(download: str | None) -> Markup:
    if download is None:
        return Markup('<p class="jt-note" role="note">Large payload: parts are not shown (truncated).</p>')
    return Markup('<p class="jt-note" role="note">Large payload: parts are not shown (truncated) — '
                  '<a class="jt-download" href="{}" download>download the whole JSON</a>.</p>').format(download)


def _label(key: str, budget: _Budget, path: tuple[Key, ...]) -> Markup:
    if key == "":
        return Markup("")
    if budget.source is None or not path:
        return Markup('<span class="jt-key">{}</span>').format(key)
    expr = expression_for(path, budget.source or None)
    return Markup('<span class="jt-key" draggable="true" data-expr="{}" title="Drag into a parameter: {}">{}</span>').format(
        expr, "{{ " + expr + " }}", key)


def _node(key: str, value: Any, depth: int, budget: _Budget, path: tuple[Key, ...]) -> Markup:
    budget.left -= 1
    label = _label(key, budget, path)
    if isinstance(value, (dict, list)):
        return _container(label, value, depth, budget, path)
    return Markup("<li>{}{}{}</li>").format(label, Markup(": ") if key != "" else "", _scalar(value, budget))


def _container(label: Markup, value: dict[str, Any] | list[Any], depth: int, budget: _Budget,
               path: tuple[Key, ...]) -> Markup:
    entries: list[tuple[Key, Any]] = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    meta = (f"{{…}} {len(entries)} key{'s' if len(entries) != 1 else ''}" if isinstance(value, dict)
            else f"[…] {len(entries)} item{'s' if len(entries) != 1 else ''}")
    children = []
    if depth >= MAX_DEPTH and entries:  # data stored before the depth limit, or a node's own output
        budget.cut = True
        children.append(Markup('<li class="jt-more">… nested deeper than {} levels: not shown</li>').format(MAX_DEPTH))
        entries = []
    for index, (key, child) in enumerate(entries):
        if index >= MAX_CHILDREN or budget.left <= 0:
            budget.cut = True
            children.append(Markup('<li class="jt-more">… {} more not shown</li>').format(len(entries) - index))
            break
        children.append(_node(str(key), child, depth + 1, budget, (*path, key)))
    opened = " open" if depth < OPEN_DEPTH else ""
    return Markup('<li><details{}><summary>{} <span class="jt-meta">{}</span></summary><ul>{}</ul></details></li>').format(
        Markup(opened), label, meta, Markup("").join(children))


def _scalar(value: Any, budget: _Budget) -> Markup:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            budget.cut = True
            return Markup('<span class="jt-str">{}</span><span class="jt-more">… {} more characters</span>').format(
                json.dumps(value[:MAX_STRING], ensure_ascii=False), f"{len(value) - MAX_STRING:,}")
        return Markup('<span class="jt-str">{}</span>').format(json.dumps(value, ensure_ascii=False))
    kind = "null" if value is None else "bool" if isinstance(value, bool) else "num"
    return Markup('<span class="jt-{}">{}</span>').format(kind, escape(json.dumps(value, default=str)))
