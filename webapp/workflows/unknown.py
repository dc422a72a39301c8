"""A stand-in for a node whose type is no longer registered (shown so it can be deleted)."""

from __future__ import annotations

from functools import lru_cache

from engine.contract import NodeType


@lru_cache(maxsize=64)
def unknown_type(type_name: str, version: int) -> type[NodeType]:
    return type("UnknownNodeType", (NodeType,), {
        "type_name": type_name, "version": version, "title": f"Unknown type “{type_name}” v{version}",
        "category": "Unknown", "description": "This node type is not installed; delete the node or install it.",
        "outputs": ("main",), "unknown": True,
    })
