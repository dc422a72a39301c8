"""A list of items as a table or as a schema, escaped and bounded (the JSON view is ``jsontree.py``).

The node editor's input and output panes show a node's items three ways. Every field they show can be
dragged into a parameter: it carries ``data-expr``, the expression that reaches it
(``webapp/testing/datapaths.py``), relative to ``source`` (``""``: the node's own input, ``item``;
a node name: that node's output, ``nodes["Name"]``).

Big payloads are cut where they are shown: at most ``MAX_ROWS`` rows and ``MAX_COLUMNS`` columns in the
table, each cell at most ``MAX_CELL`` characters; the schema reads at most ``SAMPLE_ITEMS`` items and shows
at most ``MAX_FIELDS`` fields. What is left out is said ("N more items not shown").
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

from webapp.testing.datapaths import Key, expression_for, json_type

MAX_ROWS = 50
MAX_COLUMNS = 40
MAX_CELL = 80
SAMPLE_ITEMS = 50
MAX_FIELDS = 200
MAX_EXAMPLE = 60
MAX_DEPTH = 8


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _field(tag: str, css: str, text: str, expr: str, extra: str = "") -> Markup:
    return Markup('<{} class="{}" draggable="true" data-expr="{}" title="Drag into a parameter: {}"{}>{}</{}>').format(
        Markup(tag), css, expr, "{{ " + expr + " }}", Markup(extra), text, Markup(tag))


def compact(value: Any, limit: int = MAX_CELL) -> str:
    """A value on one short line: strings as they are, containers as shortened JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and len(value) > 20:
        text = "{…} " + _plural(len(value), "key")
    elif isinstance(value, list) and len(value) > 20:
        text = "[…] " + _plural(len(value), "item")
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _columns(items: list[Any]) -> tuple[list[str], bool]:
    """The union of the first rows' top-level keys, in order of appearance (bounded)."""
    seen: dict[str, None] = {}
    for item in items[:MAX_ROWS]:
        for key in item if isinstance(item, dict) else ():
            seen.setdefault(str(key))
            if len(seen) > MAX_COLUMNS:
                return list(seen)[:MAX_COLUMNS], True
    return list(seen), False


def data_table(items: list[Any], source: str) -> Markup:
    """Rows are items, columns their top-level keys; nested values compact on one line."""
    if not items:
        return Markup('<p class="muted dv-empty">No items.</p>')
    columns, cut = _columns(items)
    node = source or None
    head = Markup("").join(_field("th", "dv-col", key, expression_for((0, key), node), ' scope="col"')
                           for key in columns)
    rows = []
    for index, item in enumerate(items[:MAX_ROWS]):
        row = item if isinstance(item, dict) else {}
        cells = Markup("").join(
            _field("td", "dv-cell dv-" + json_type(row[key]), compact(row[key]), expression_for((index, key), node))
            if key in row else Markup('<td class="dv-cell dv-absent"></td>') for key in columns)
        rows.append(Markup('<tr><th scope="row" class="dv-index">{}</th>{}</tr>').format(index + 1, cells))
    notes = []
    if len(items) > MAX_ROWS:
        notes.append(Markup('<p class="dv-more" role="note">{} more items not shown (the first {} are).</p>').format(
            f"{len(items) - MAX_ROWS:,}", MAX_ROWS))
    if cut:
        notes.append(Markup('<p class="dv-more" role="note">More columns not shown (the first {} are): '
                            'see the JSON or Schema view.</p>').format(MAX_COLUMNS))
    return Markup('<div class="dv-table-wrap"><table class="dv-table"><thead><tr><th class="dv-index">#</th>{}</tr>'
                  '</thead><tbody>{}</tbody></table></div>{}').format(head, Markup("").join(rows), Markup("").join(notes))


class _Shape:
    """The merged structure of sampled values at one path: kinds seen, one example, children by key."""

    def __init__(self) -> None:
        self.kinds: dict[str, None] = {}
        self.example: Any = None
        self.children: dict[str, _Shape] = {}
        self.key: Key = ""


class _Counter:
    def __init__(self) -> None:
        self.left = MAX_FIELDS
        self.cut = 0


def _merge(shape: _Shape, value: Any, depth: int, counter: _Counter) -> None:
    kind = json_type(value)
    if not shape.kinds and kind not in ("object", "array"):
        shape.example = value
    shape.kinds.setdefault(kind)
    if depth >= MAX_DEPTH:
        return
    entries: list[tuple[Key, Any]] = (list(value.items()) if isinstance(value, dict)
                                      else [(0, v) for v in value[:3]] if isinstance(value, list) else [])
    for key, child in entries:
        name = str(key) if isinstance(key, str) else "[0]"
        if name not in shape.children:
            if counter.left <= 0:
                counter.cut += 1
                continue
            counter.left -= 1
            shape.children[name] = _Shape()
            shape.children[name].key = key
        _merge(shape.children[name], child, depth + 1, counter)


def data_schema(items: list[Any], source: str) -> Markup:
    """Field names and types (nested), each with an example value, merged over the first items."""
    if not items:
        return Markup('<p class="muted dv-empty">No items.</p>')
    root, counter = _Shape(), _Counter()
    for item in items[:SAMPLE_ITEMS]:
        _merge(root, item, 0, counter)
    body = _schema_list(root, (0,), source or None)
    notes = []
    if counter.cut:
        notes.append(Markup('<p class="dv-more" role="note">{} more fields not shown.</p>').format(f"{counter.cut:,}"))
    if len(items) > SAMPLE_ITEMS:
        notes.append(Markup('<p class="muted dv-sample">Fields of the first {} of {} items.</p>').format(
            SAMPLE_ITEMS, f"{len(items):,}"))
    return Markup('<div class="dv-schema">{}{}</div>').format(body, Markup("").join(notes))


def _schema_list(shape: _Shape, path: tuple[Key, ...], node: str | None) -> Markup:
    if not shape.children:
        return Markup("")
    entries = []
    for name, child in shape.children.items():
        child_path = (*path, child.key)
        kinds = " | ".join(child.kinds)
        example = (Markup(' <span class="dv-example">{}</span>').format(compact(child.example, MAX_EXAMPLE))
                   if child.kinds and next(iter(child.kinds)) not in ("object", "array") else Markup(""))
        entries.append(Markup('<li>{} <span class="dv-type">{}</span>{}{}</li>').format(
            _field("span", "dv-field", name, expression_for(child_path, node)), kinds, example,
            _schema_list(child, child_path, node)))
    return Markup("<ul>{}</ul>").format(Markup("").join(entries))
