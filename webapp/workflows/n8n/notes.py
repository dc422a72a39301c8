"""Sticky notes → canvas notes."""

from __future__ import annotations

from typing import Any

from engine.graph import MAX_NOTE_TEXT, NOTE_HEIGHT, NOTE_WIDTH
from webapp.workflows.n8n.base import PREFIXES, node_position
from webapp.workflows.n8n.report import Entry, ImportReport, MappedNode

STICKY_NOTE_TYPES = tuple(f"{prefix}stickyNote" for prefix in PREFIXES)


def sticky_note(index: int, node: dict[str, Any], report: ImportReport) -> dict[str, Any]:
    """An n8n sticky note → one of our canvas notes (text, position, size); what does not fit is reported."""
    name = str(node.get("name") or f"nodes[{index}]")
    params = node.get("parameters") if isinstance(node.get("parameters"), dict) else {}
    text = params.get("content", "") if isinstance(params.get("content"), str) else ""
    if len(text) > MAX_NOTE_TEXT:
        report.unmapped.append(Entry(name, f"the note's text is {len(text):,} characters; notes hold at most "
                                           f"{MAX_NOTE_TEXT:,}: the rest is cut", "content"))
        text = text[:MAX_NOTE_TEXT]
    if params.get("color") not in (None, 1):
        report.unmapped.append(Entry(name, "the note's colour is not kept (Patchwire notes have one colour)", "color"))
    x, y = node_position(node)
    report.mapped.append(MappedNode(name, str(node["type"]), "note"))
    return {"text": text, "position": {"x": x, "y": y},
            "width": _note_size(report, name, params, "width", NOTE_WIDTH, 240.0),
            "height": _note_size(report, name, params, "height", NOTE_HEIGHT, 160.0)}


def _note_size(report: ImportReport, name: str, params: dict[str, Any], key: str, bounds: tuple[float, float],
               default: float) -> float:
    value = params.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return default
    size = min(max(float(value), bounds[0]), bounds[1])
    if size != value:
        report.unmapped.append(Entry(name, f"{key} {value:g} is outside {bounds[0]:g}–{bounds[1]:g}: {size:g} used", key))
    return size


