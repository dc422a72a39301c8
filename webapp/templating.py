"""Jinja setup: autoescape on, plus a few filters the templates share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine

from engine.config import field_specs
from engine.errors import RegistryError
from nodes import registry
from webapp.testing.jsontree import json_tree


def pretty_json(value: Any, limit: int = 200_000) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (truncated)"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    ms = (end - start).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def clock(epoch: float | None) -> str:
    """Epoch seconds as UTC wall-clock time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch is not None else ""


def milliseconds(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def port_labels(node_type: Any, config: Any) -> dict[str, str]:
    """Port id → the label a node's settings give it (Switch v2's output names); empty for most types."""
    labels = getattr(node_type, "port_labels", None)
    return labels(config) if callable(labels) else {}


def node_port_labels(node: Any) -> dict[str, str]:
    """``port_labels`` of a stored node (a type no longer registered has none)."""
    try:
        return port_labels(registry.get(node.type_name, node.type_version), node.config)
    except RegistryError:
        return {}


def configure_templates(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.autoescape = True
    env.filters["pretty_json"] = pretty_json
    env.filters["clock"] = clock
    env.filters["milliseconds"] = milliseconds
    env.tests["startingwith"] = lambda value, prefix: isinstance(value, str) and value.startswith(prefix)
    env.globals["duration"] = duration
    env.globals["registry"] = registry
    env.globals["field_specs"] = field_specs
    env.globals["json_tree"] = json_tree
    env.globals["port_labels"] = node_port_labels
