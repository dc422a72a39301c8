"""Set (Edit Fields) v1–v3.4: fields, their n8n types, include options."""

from __future__ import annotations

import json
from typing import Any

from nodes.set_types import FIELD_TYPES
from nodes.set_types import convert as convert_field
from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, Skip, register, report_options


def _literal_text(value: Any) -> str:
    """A typed n8n value as our Set's string: numbers/booleans/objects as a one-expression string keep their type."""
    if isinstance(value, str):
        return value
    return "{{ " + json.dumps(value) + " }}"


def set_value(ctx: Context, value: Any, where: str) -> str:
    translated = ctx.tr.value(value, where)
    return translated if isinstance(translated, str) else _literal_text(translated)


@register
class SetMapper(NodeMapper):
    """Set v1/v2 (``values``), v3.0–3.2 (``fields.values``), v3.3+ (``assignments``)."""

    n8n_types = ("set",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        fields: list[dict[str, str]] = []
        if ctx.type_version < 3:
            for kind, rows in (p.get("values") or {}).items():
                for i, row in enumerate(rows or []):
                    fields.append({"name": str(row.get("name", "")),
                                   "value": set_value(ctx, row.get("value", ""), f"values.{kind}[{i}].value")})
            keep = not p.get("keepOnlySet", False)
            report_options(ctx, p.get("options"), ignore={"dotNotation"})
            return Mapped("set", {"fields": fields, "keep_existing": keep})
        mode = p.get("mode", "manual")
        if mode != "manual":
            p.read.update(p.raw)
            raise Skip(f"Set in mode {mode!r} (JSON) is not supported; only manual field assignments are")
        types: dict[str, str] = {}
        for i, row in enumerate((p.get("assignments") or {}).get("assignments") or []):
            _typed_field(ctx, fields, types, row, row.get("type", "string"), row.get("value", ""), f"assignments[{i}].value")
        for i, row in enumerate((p.get("fields") or {}).get("values") or []):  # 3.0–3.2
            kind = row.get("type", "stringValue")
            key = kind if kind.endswith("Value") else f"{kind}Value"
            _typed_field(ctx, fields, types, row, key.removesuffix("Value"), row.get(key, ""), f"fields.values[{i}].{key}")
        include = p.get("include", "all" if ctx.type_version < 3.3 else "none")
        keep = bool(p.get("includeOtherFields", ctx.type_version < 3.3 and include != "none"))
        if keep and include in ("selected", "except"):
            ctx.unmapped(f"include {include!r} (some other fields only) is not supported: all incoming fields are kept",
                         "include")
        p.read.update({"includeFields", "excludeFields"})
        report_options(ctx, p.get("options"), ignore={"dotNotation"})
        return Mapped("set", {"fields": fields, "keep_existing": keep, **({"types": types} if types else {})})


def _typed_field(ctx: Context, fields: list[dict[str, str]], types: dict[str, str], row: dict[str, Any],
                 n8n_type: Any, value: Any, where: str) -> None:
    """One v3 assignment: its value, and its n8n type as our Set's per-field type (converted at run time,
    as n8n converts it); a literal that cannot be converted is kept as text and reported."""
    name = str(row.get("name", ""))
    n8n_type = n8n_type or "string"
    if n8n_type not in FIELD_TYPES or n8n_type == "string" and isinstance(value, str):
        if n8n_type not in FIELD_TYPES:
            ctx.unmapped(f"type {n8n_type!r} of field {name!r} is not supported: the value is kept as given", where)
        fields.append({"name": name, "value": set_value(ctx, value, where)})
        return
    if isinstance(value, list | dict):
        value = json.dumps(value)  # n8n's array/object literal: JSON text, converted by our Set
    if not (isinstance(value, str) and value.startswith("=")):
        try:
            convert_field(value, n8n_type)
        except ValueError as exc:
            ctx.unmapped(f"field {name!r} is typed {n8n_type} in n8n, but {exc} (n8n would fail the node here): "
                         "kept as text", where)
            fields.append({"name": name, "value": set_value(ctx, value, where)})
            return
    fields.append({"name": name, "value": set_value(ctx, value, where)})
    types[name] = n8n_type


