"""Reading an uploaded or pasted workflow: size limits, JSON, format detection, n8n translation.

``prepare`` turns the bytes into a ``WorkflowDocument`` (and, for n8n, an ``ImportReport``) or
raises ``GraphError`` with one precise ``Problem`` per thing that is wrong. Creating the workflow
(graph validation included) is ``WorkflowService.import_document``: nothing is written before
every check has passed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from engine.errors import GraphError
from engine.graph import Problem, WorkflowDocument
from engine.limits import MAX_JSON_BYTES, nesting_exceeds, too_deep_message
from webapp.workflows import n8n

MAX_IMPORT_BYTES = MAX_JSON_BYTES
"""An uploaded or pasted workflow is at most 2 MiB (the CLI's limit is engine.graph.MAX_DOCUMENT_BYTES)."""
MAX_IMPORT_NODES = 500
MAX_IMPORT_CONNECTIONS = 1000
MAX_WORKFLOW_NAME = 200
"""The longest workflow name (webapp.workflows.services.MAX_NAME is this)."""
FORMATS = ("auto", "patchwire", "n8n")
Format = Literal["auto", "patchwire", "n8n"]


@dataclass
class Prepared:
    document: WorkflowDocument
    format: str
    report: n8n.ImportReport | None = None


def refuse(message: str, node_id: str | None = None) -> GraphError:
    return GraphError([Problem(message, node_id)])


def prepare(data: bytes, fmt: str = "auto", *, workflows: Mapping[str, int] | None = None) -> Prepared:
    if fmt not in FORMATS:
        raise refuse(f"Unknown format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    raw = parse_json(data)
    if not isinstance(raw, dict):
        raise refuse(f"Not a workflow: the JSON is {_kind(raw)}, expected an object with \"name\", \"nodes\" "
                     "and \"connections\".")
    chosen = fmt if fmt != "auto" else ("n8n" if n8n.looks_like_n8n(raw) and raw.get("format") is None else "patchwire")
    _check_counts(raw)
    report = None
    if chosen == "n8n":
        raw, report = n8n.convert(raw, workflows=workflows)
    return Prepared(decode(raw), chosen, report)


def parse_json(data: bytes) -> Any:
    if len(data) > MAX_IMPORT_BYTES:
        raise refuse(f"Too large: {len(data):,} bytes; an import is at most {MAX_IMPORT_BYTES:,} bytes (2 MiB).")
    if not data.strip():
        raise refuse("Nothing to import: choose a file or paste the workflow's JSON.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(f"Not valid JSON: the file is not UTF-8 text (byte {exc.start:,}).") from None
    if nesting_exceeds(data):
        raise refuse(too_deep_message("The workflow's JSON"))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise refuse(f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise refuse("Not valid JSON: nested too deeply.") from None


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_counts(raw: dict[str, Any]) -> None:
    nodes, connections = raw.get("nodes"), raw.get("connections")
    if isinstance(nodes, list) and len(nodes) > MAX_IMPORT_NODES:
        raise refuse(f"Too many nodes: {len(nodes):,}; an import has at most {MAX_IMPORT_NODES} nodes.")
    count = len(connections) if isinstance(connections, list) else 0
    if count > MAX_IMPORT_CONNECTIONS:
        raise refuse(f"Too many connections: {count:,}; an import has at most {MAX_IMPORT_CONNECTIONS}.")


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def decode(raw: dict[str, Any]) -> WorkflowDocument:
    """The document, or ``GraphError`` naming the place (node id, connection) that is wrong."""
    try:
        document = msgspec.convert(raw, WorkflowDocument)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        message, path = (match["message"], match["path"] or "") if match else (str(exc), "")
        where, node_id = _where(raw, path)
        raise refuse(f"Not a Patchwire workflow: {where}{message.replace('`', '')}.", node_id) from None
    if len(document.connections) > MAX_IMPORT_CONNECTIONS:
        raise refuse(f"Too many connections: {len(document.connections):,}; an import has at most "
                     f"{MAX_IMPORT_CONNECTIONS}.")
    return document


def _where(raw: dict[str, Any], path: str) -> tuple[str, str | None]:
    """``.nodes[3].config`` → ``"node 'fetch' (nodes[3]), config: "`` so the person finds it."""
    if not path:
        return "", None
    match = re.match(r"^\.(?P<list>nodes|connections)\[(?P<index>\d+)\](?P<rest>.*)$", path)
    if not match:
        return f"{path.lstrip('.')}: ", None
    index, rest = int(match["index"]), match["rest"].lstrip(".")
    entry = raw[match["list"]][index] if index < len(raw[match["list"]]) else None
    suffix = f", {rest}: " if rest else ": "
    if match["list"] == "nodes":
        node_id = entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else None
        return (f"node {node_id!r} (nodes[{index}]){suffix}" if node_id else f"nodes[{index}]{suffix}"), node_id
    if isinstance(entry, dict):
        return f"connection {entry.get('source')!r} → {entry.get('target')!r} (connections[{index}]){suffix}", None
    return f"connections[{index}]{suffix}", None


_IMPORTED_SUFFIX = re.compile(r" \(imported(?: \d+)?\)$")


def imported_names(name: str) -> Iterator[str]:
    """``name``, then ``name (imported)``, ``name (imported 2)``, … (within ``MAX_WORKFLOW_NAME``); a name that
    already ends in ``(imported …)`` is numbered again rather than suffixed twice."""
    yield name
    base = _IMPORTED_SUFFIX.sub("", name)
    for number in itertools.count(1):
        suffix = " (imported)" if number == 1 else f" (imported {number})"
        yield base[:MAX_WORKFLOW_NAME - len(suffix)].rstrip() + suffix
