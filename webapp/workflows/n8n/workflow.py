"""The whole file: nodes through their mappers, sticky notes, settings, connections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import GraphError
from engine.graph import Problem
from webapp.workflows.n8n.base import PREFIXES, Context, Mapped, Params, Skip, mapper_for, node_position
from webapp.workflows.n8n.expressions import Translator
from webapp.workflows.n8n.notes import STICKY_NOTE_TYPES, sticky_note
from webapp.workflows.n8n.report import Entry, ImportReport, MappedNode


def looks_like_n8n(raw: Any) -> bool:
    """An n8n export: nodes with ``parameters``/``typeVersion`` or n8n type names, connections by name."""
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list):
        return False
    if isinstance(raw.get("connections"), dict):
        return True
    return any(isinstance(n, dict) and ("typeVersion" in n or "parameters" in n or str(n.get("type", "")).startswith(PREFIXES))
               for n in raw["nodes"])


def convert(raw: Any, *, workflows: Mapping[str, int] | None = None) -> tuple[dict[str, Any], ImportReport]:
    """``raw`` (parsed n8n JSON) → (our workflow document as a dict, report). ``workflows``: the
    importing user's workflow ids by (unique) name, for Execute Workflow nodes.

    Raises ``GraphError`` when the file is not an n8n workflow at all (no node list, a node without
    name or type). A connection from or to a node that is not in the file is left out and reported."""
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list):
        raise GraphError([Problem("Not an n8n workflow: expected an object with a \"nodes\" list.")])
    report = ImportReport()
    by_name: dict[str, tuple[str, Mapped]] = {}
    nodes = []
    notes = []
    for index, node in enumerate(raw["nodes"]):
        if isinstance(node, dict) and node.get("type") in STICKY_NOTE_TYPES:
            notes.append(sticky_note(index, node, report))
            continue
        converted = _convert_node(index, node, report, workflows or {})
        if converted is None:
            continue
        spec, mapped = converted
        by_name[spec["name"]] = (spec["id"], mapped)
        nodes.append(spec)
    known = {n.get("name") for n in raw["nodes"] if isinstance(n, dict)}
    connections = _convert_connections(raw.get("connections"), known, by_name, report)
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name", "").strip() else "Imported from n8n"
    return {"name": name, "nodes": nodes, "connections": connections, "notes": notes}, report


def _convert_node(index: int, node: Any, report: ImportReport,
                  workflows: Mapping[str, int]) -> tuple[dict[str, Any], Mapped] | None:
    if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not isinstance(node.get("type"), str):
        raise GraphError([Problem(f"Not an n8n workflow: nodes[{index}] needs a \"name\" and a \"type\" (strings).")])
    name, full_type = node["name"], node["type"]
    short = full_type.split(".", 1)[1] if full_type.startswith(PREFIXES) else full_type
    mapper = mapper_for(short) if full_type.startswith(PREFIXES) or "." not in full_type else None
    if mapper is None:
        report.skipped.append(Entry(name, f"{full_type} has no Patchwire equivalent"))
        return None
    version = node.get("typeVersion", 1)
    params = Params(node.get("parameters"))
    credentials = node.get("credentials") if isinstance(node.get("credentials"), dict) else {}
    ctx = Context(name, float(version) if isinstance(version, int | float) else 1.0, params,
                  Translator(report, name), report, workflows, credentials)
    try:
        mapped = mapper.map(ctx)
    except Skip as exc:
        report.skipped.append(Entry(name, f"{full_type}: {exc}"))
        return None
    for key in params.unread():
        ctx.unmapped(f"parameter {key!r} is not supported (ignored)", key)
    _node_settings(ctx, node, mapped)
    report.mapped.append(MappedNode(name, full_type, mapped.type))
    return _spec(index, node, mapped), mapped


def _node_settings(ctx: Context, node: dict[str, Any], mapped: Mapped) -> None:
    """n8n's per-node settings that have an equivalent (retries, on error); the rest is reported."""
    on_error = node.get("onError") or ("continueRegularOutput" if node.get("continueOnFail") else None)
    if on_error == "continueRegularOutput":
        mapped.settings["on_error"] = "continue"
    elif on_error == "continueErrorOutput":
        mapped.settings["on_error"] = "error_output"
        mapped.outputs[max(mapped.outputs, default=-1) + 1] = ["error"]
    if node.get("retryOnFail"):
        tries = node.get("maxTries", 3)
        mapped.settings["retry"] = {"max_attempts": int(tries) if isinstance(tries, int | float) else 3,
                                    "initial_delay": max(0.0, float(node.get("waitBetweenTries", 1000)) / 1000),
                                    "multiplier": 1}
    if node.get("disabled"):
        ctx.unmapped("disabled in n8n: imported enabled (Patchwire has no disabled nodes)", "disabled")
    if node.get("credentials") and mapped.config.get("credential") is None:
        ctx.unmapped("credentials are not imported: connect them in Patchwire", "credentials")
    if node.get("notes"):
        ctx.unmapped("the node's notes are not imported", "notes")
    for key in ("executeOnce", "alwaysOutputData"):
        if node.get(key):
            ctx.unmapped(f"setting {key!r} is not supported (ignored)", key)


def _spec(index: int, node: dict[str, Any], mapped: Mapped) -> dict[str, Any]:
    node_id = node.get("id")
    if not isinstance(node_id, str) or not 1 <= len(node_id) <= 64:
        node_id = f"n8n-{index}"
    x, y = node_position(node)
    spec: dict[str, Any] = {"id": node_id, "type": mapped.type, "version": mapped.version, "name": node["name"],
                            "config": mapped.config, "position": {"x": x, "y": y}}
    if mapped.settings:
        spec["settings"] = mapped.settings
    return spec



def _convert_connections(raw: Any, known: set[Any], by_name: dict[str, tuple[str, Mapped]],
                         report: ImportReport) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise GraphError([Problem("Not an n8n workflow: \"connections\" must be an object keyed by node name.")])
    out: list[dict[str, str]] = []
    for source, kinds in raw.items():
        if _source_missing(source, kinds, known, report):
            continue
        for kind, outputs in kinds.items():
            for index, targets in enumerate(outputs or []):
                for target in targets or []:
                    for connection in _connections(source, kind, index, target, known, by_name, report):
                        if connection not in out:
                            out.append(connection)
    return out


def _source_missing(source: str, kinds: Any, known: set[Any], report: ImportReport) -> bool:
    """True (and reported) when connections leave a node that is not in the file, or are not an object."""
    if source not in known:
        report.connections.append(Entry(source, f"connections from {source!r} dropped: there is no node named "
                                                f"{source!r} in the file"))
        return True
    if not isinstance(kinds, dict):
        report.connections.append(Entry(source, f"connections from {source!r} dropped: expected an object of "
                                                "outputs by kind (\"main\")"))
        return True
    return False


def _connections(source: str, kind: str, index: int, target: Any, known: set[Any],
                 by_name: dict[str, tuple[str, Mapped]], report: ImportReport) -> list[dict[str, str]]:
    if not isinstance(target, dict) or target.get("node") not in known:
        shown = target.get("node") if isinstance(target, dict) else target
        report.connections.append(Entry(source, f"{source} (output {index}) → {shown!r}: dropped, there is no node "
                                                f"named {shown!r} in the file"))
        return []
    name, target_index = target["node"], target.get("index", 0)
    label = f"{source} (output {index}) → {name} (input {target_index})"
    if kind != "main":
        report.connections.append(Entry(source, f"{label}: {kind} connections (AI sub-nodes) are not supported"))
        return []
    if source not in by_name or name not in by_name:
        skipped = source if source not in by_name else name
        report.connections.append(Entry(source, f"{label}: dropped because {skipped!r} was not imported"))
        return []
    (source_id, source_mapped), (target_id, target_mapped) = by_name[source], by_name[name]
    ports = source_mapped.outputs.get(index)
    target_port = target_mapped.inputs.get(target_index if isinstance(target_index, int) else -1)
    if not ports or target_port is None:
        missing = f"output {index} of {source!r}" if not ports else f"input {target_index} of {name!r}"
        report.connections.append(Entry(source, f"{label}: dropped, {missing} has no Patchwire equivalent"))
        return []
    # one n8n output can feed several of our ports (a Switch rule output that is also the fallback)
    return [{"source": source_id, "source_port": port, "target": target_id, "target_port": target_port}
            for port in ports]
