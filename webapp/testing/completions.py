"""What the expression editor's autocomplete offers for one node: the fields of the item it processes (from its
last input, or the pinned data of the nodes feeding it), the names and fields of the nodes upstream of it, the
variables, and the sandbox's filters and functions (read from the sandbox itself, so the list cannot drift).

Every path is the expression that reaches the field (webapp/testing/datapaths.py), so a completion inserts
what a dragged field would.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.expressions import sandbox_names
from webapp.testing.datapaths import json_type, key_part, node_root

MAX_FIELDS = 300
MAX_DEPTH = 6
EXAMPLE_CHARS = 60

VARIABLES = {
    "item": "the item this node is processing",
    "items": "all of this node's input items",
    "trigger": "the execution's input (what started it)",
    "nodes": 'an earlier node\'s output items, by name: nodes["Name"][0]',
    "now": "the current time (UTC)",
}
"""The variables ``engine.expressions.Expressions.render`` gives every evaluation."""


@dataclass
class Field:
    expr: str
    type: str
    example: str


@dataclass
class UpstreamNode:
    name: str
    expr: str
    fields: list[Field]


@dataclass
class Name:
    name: str
    doc: str


@dataclass
class Completions:
    data_from: str
    fields: list[Field] = field(default_factory=list)
    trigger: list[Field] = field(default_factory=list)
    nodes: list[UpstreamNode] = field(default_factory=list)
    variables: list[Name] = field(default_factory=list)
    filters: list[Name] = field(default_factory=list)
    functions: list[Name] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def build_completions(items: list[Any], trigger: dict[str, Any], outputs: dict[str, list[Any]], upstream_names: Iterable[str],
          data_from: str) -> Completions:
    """The completions of a node whose input is ``items``; ``outputs``: known output items by node name."""
    filters, functions = sandbox_names()
    nodes = [UpstreamNode(name, node_root(name), _fields(outputs.get(name) or [], node_root(name) + "[0]"))
             for name in sorted(upstream_names, key=str.casefold)]
    return Completions(
        data_from=data_from,
        fields=_fields(items, "item"),
        trigger=list(_walk(trigger, "trigger", 0, [0])) if trigger else [],
        nodes=nodes,
        variables=[Name(name, doc) for name, doc in VARIABLES.items()],
        filters=[Name(name, _summary(f)) for name, f in sorted(filters.items())],
        functions=[Name(name, _summary(f)) for name, f in sorted(functions.items())],
    )


def upstream(node_id: str, edges: Iterable[tuple[str, str]]) -> set[str]:
    """The ids of the nodes upstream of ``node_id`` (its ancestors) along ``edges`` (source, target)."""
    feeding: dict[str, set[str]] = {}
    for source, target in edges:
        feeding.setdefault(target, set()).add(source)
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        for source in feeding.get(todo.pop(), ()):
            if source not in seen and source != node_id:
                seen.add(source)
                todo.append(source)
    return seen


def _fields(items: list[Any], root: str) -> list[Field]:
    """The paths under the first item (an item is a JSON object; anything else has no fields)."""
    if not items or not isinstance(items[0], dict):
        return []
    return list(_walk(items[0], root, 0, [0]))


def _walk(value: Any, prefix: str, depth: int, count: list[int]) -> Iterator[Field]:
    if depth >= MAX_DEPTH:
        return
    children: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list) and value:
        children = [(0, value[0])]
    else:
        return
    for key, child in children:
        if count[0] >= MAX_FIELDS:
            return
        count[0] += 1
        expr = prefix + key_part(key)
        yield Field(expr, json_type(child), example_of(child))
        yield from _walk(child, expr, depth + 1, count)


def example_of(value: Any) -> str:
    if isinstance(value, dict):
        return f"{{…}} {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, list):
        return f"[…] {len(value)} item{'' if len(value) == 1 else 's'}"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 1] + "…"


def _summary(function: Any) -> str:
    """The first line of a filter's or a function's docstring."""
    doc = inspect.getdoc(function) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
