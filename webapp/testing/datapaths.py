"""The expression that reaches a field of a node's data: what a field dragged from the node editor's input pane
inserts into a parameter (``{{ item.user.name }}``, ``{{ nodes["HTTP Request"][0].body.id }}``).

``item`` is the item the node is processing, so a path under the input's items drops the item's index;
an earlier node's output is a list of items reached by name (``nodes["Name"]``), so its index stays.
Keys that are not plain identifiers, that Jinja reads as keywords, or that name a ``dict`` method
(``item.items`` would be the method) are written as subscripts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
                       "else", "for", "recursive"})
_DICT_NAMES = frozenset(name for name in dir(dict) if not name.startswith("_"))

Key = str | int


def key_part(key: Key) -> str:
    """One step of a path: ``.name``, ``["odd key"]`` or ``[3]``."""
    if isinstance(key, int):
        return f"[{key}]"
    if _IDENTIFIER.match(key) and key not in _KEYWORDS and key not in _DICT_NAMES:
        return f".{key}"
    return f"[{json.dumps(key, ensure_ascii=False)}]"


def json_type(value: object) -> str:
    """The JSON type name of a value, as the panes' views and the completions show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def node_root(node_name: str) -> str:
    """An earlier node's output items, by name."""
    return f"nodes[{json.dumps(node_name, ensure_ascii=False)}]"


def expression_for(keys: Sequence[Key], node_name: str | None = None) -> str:
    """The expression (without ``{{ }}``) of the path ``keys`` into a list of items.

    ``keys[0]`` is the item's index in the list. With no ``node_name`` the list is the node's own
    input: the path starts at ``item`` and the index is dropped. With one, it is that node's output.
    """
    if node_name is None:
        return "item" + "".join(key_part(k) for k in keys[1:])
    return node_root(node_name) + "".join(key_part(k) for k in keys)
