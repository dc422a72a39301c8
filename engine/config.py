"""Node config schemas: field descriptions for forms, and parsing with per-field errors.

Every node type's ``Config`` is a ``msgspec.Struct``. Field metadata comes from
``Annotated[T, msgspec.Meta(title=..., description=..., extra={"widget": ...})]``. The same
parser serves the editor's forms (strings), imported JSON and the run loop, so a config is
validated on save and again on load by one piece of code.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import msgspec

from engine.errors import ConfigError
from engine.limits import nesting_exceeds, too_deep_message

MAX_FIELD_CHARS = 100_000


class KeyValue(msgspec.Struct, forbid_unknown_fields=True):
    """One row of a key–value list field (headers, Set fields, …)."""

    name: str
    value: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """One form field of a schema. ``extra`` is the annotation's ``msgspec.Meta.extra``: the form
    blocks read ``display_when`` ({field: [values]}), ``collection`` (an "Add option" group),
    ``labels`` (a select's choice → text), ``options`` (choices loaded by the node type) and
    ``rows`` (the struct of a ``conditions`` row) from it."""

    name: str
    kind: str  # text | textarea | code | number | boolean | select | keyvalue | json | conditions | options | credential
    title: str
    description: str
    required: bool
    default: Any
    choices: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def display_when(self) -> Mapping[str, list[str]]:
        return self.extra.get("display_when") or {}

    @property
    def collection(self) -> str | None:
        return self.extra.get("collection")

    def label_of(self, choice: str) -> str:
        return (self.extra.get("labels") or {}).get(choice, choice)

    def row_errors(self, message: str | None) -> dict[int, list[str]]:
        return row_errors(message, self.name)

    def shown_for(self, values: Mapping[str, Any]) -> bool:
        """Whether ``display_when`` lets this field show, given the other fields' (raw) values."""
        return all(_as_text(values.get(other)) in [str(v) for v in allowed]
                   for other, allowed in self.display_when.items())


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        value = value[-1] if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _meta_of(annotation: Any) -> tuple[Any, msgspec.Meta | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        metas = [m for m in extras if isinstance(m, msgspec.Meta)]
        return base, (metas[0] if metas else None)
    return annotation, None


def _kind_of(base: Any, widget: str | None) -> tuple[str, tuple[str, ...]]:
    if widget:
        return widget, ()
    origin = typing.get_origin(base)
    if origin is Literal:
        return "select", tuple(str(a) for a in typing.get_args(base))
    if base is bool:
        return "boolean", ()
    if base in (int, float):
        return "number", ()
    if origin is list and typing.get_args(base) == (KeyValue,):
        return "keyvalue", ()
    if base is str:
        return "text", ()
    return "json", ()


@lru_cache(maxsize=256)
def _fields(config_type: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """``msgspec.structs.fields`` evaluates annotations on every call: once per schema is enough."""
    return {f.name: f for f in msgspec.structs.fields(config_type)}


@lru_cache(maxsize=256)
def _hints(config_type: type[msgspec.Struct]) -> dict[str, Any]:
    return typing.get_type_hints(config_type, include_extras=True)


@lru_cache(maxsize=256)
def field_specs(config_type: type[msgspec.Struct]) -> tuple[FieldSpec, ...]:
    hints = _hints(config_type)
    specs = []
    for f in msgspec.structs.fields(config_type):
        base, meta = _meta_of(hints[f.name])
        extra = (meta.extra or {}) if meta else {}
        kind, choices = _kind_of(base, extra.get("widget"))
        default = f.default if f.default is not msgspec.NODEFAULT else (
            f.default_factory() if f.default_factory is not msgspec.NODEFAULT else None
        )
        specs.append(FieldSpec(
            name=f.name, kind=kind, title=(meta.title if meta and meta.title else f.name.replace("_", " ").capitalize()),
            description=(meta.description or "") if meta else "", required=f.required, default=default, choices=choices,
            extra=extra,
        ))
    return tuple(specs)


def _field_type(config_type: type[msgspec.Struct], name: str) -> Any:
    return _hints(config_type)[name]


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_config(config_type: type[msgspec.Struct], raw: Mapping[str, Any]) -> msgspec.Struct:
    """Validate ``raw`` field by field; raise ``ConfigError`` naming every bad field."""
    if not isinstance(raw, Mapping):
        raise ConfigError({"config": "must be an object"})
    known = _fields(config_type)
    errors = {name: "unknown field" for name in raw if name not in known}
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw or _is_blank(raw[name]) and (f.required or not _is_text(config_type, name)):
            if f.required:
                errors[name] = "This field is required."
            continue  # a blank optional field takes its default
        try:
            values[name] = msgspec.convert(raw[name], _field_type(config_type, name), strict=False)
        except msgspec.ValidationError as exc:
            errors[name] = _friendly(str(exc))
    if errors:
        raise ConfigError(errors)
    config = config_type(**values)
    problems = getattr(config, "problems", None)
    if problems and (found := problems()):
        raise ConfigError(found)
    return config


def _is_text(config_type: type[msgspec.Struct], name: str) -> bool:
    base, _ = _meta_of(_field_type(config_type, name))
    return base is str


def _friendly(message: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$[0].name`" → "Expected int, got str at [0].name"."""
    return message.replace("`", "").replace(" - at $", " at ")


def config_to_dict(config: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(config)


def config_from_form(config_type: type[msgspec.Struct],
                     form: Mapping[str, list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn submitted form fields (a multi-dict as ``{name: [values]}``) into a raw config dict.

    Values stay strings where the schema decides their type (``parse_config`` converts them).
    Returns the raw values (a field that could not be read keeps its text, to show it again)
    and the errors per field.
    """
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in field_specs(config_type):
        values = form.get(spec.name, [])
        if not spec.shown_for(form) or _removed_option(spec, form):
            continue  # hidden by display_when, or an optional field not picked: it takes its default
        if any(len(v) > MAX_FIELD_CHARS for v in values):
            errors[spec.name] = f"Too long (at most {MAX_FIELD_CHARS:,} characters)."
            raw[spec.name] = ""
            continue
        value, error = _read_field(spec, form, values)
        if value is not _UNSET:
            raw[spec.name] = value
        if error:
            errors[spec.name] = error
    return raw, errors


_UNSET = object()


def _read_field(spec: FieldSpec, form: Mapping[str, list[str]], values: list[str]) -> tuple[Any, str | None]:
    """One field's raw value (``_UNSET`` when the form has none) and its error."""
    if spec.kind == "conditions" and f"{spec.name}.builder" in form:
        if rules := spec.extra.get("rules"):  # rules of condition rows (Switch v2): the rule struct assembles them
            return rules.from_form(form, spec.name), None
        return _struct_rows(form, spec), None
    if spec.kind == "boolean":
        return any(v in ("on", "true", "1") for v in values), None
    if spec.kind == "keyvalue":
        return _keyvalue_rows(form, spec.name), None
    if spec.kind in ("json", "conditions"):
        text = values[-1] if values else ""
        return _parse_json(text) if text.strip() else (_UNSET, None)
    return (values[-1], None) if values else (_UNSET, None)


def _parse_json(text: str) -> tuple[Any, str | None]:
    if nesting_exceeds(text.encode("utf-8", "surrogatepass")):
        return text, too_deep_message("This JSON")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return text, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    except RecursionError:
        return text, "Not valid JSON: nested too deeply."


OPTIONS_MARKER = "_options"
"""Each optional field shown in an "Add option" group posts its name under this key (a removed
one does not), so that an unchecked checkbox still counts as set."""


def _removed_option(spec: FieldSpec, form: Mapping[str, list[str]]) -> bool:
    if not spec.collection or OPTIONS_MARKER not in form:
        return False
    return spec.name not in form[OPTIONS_MARKER]


def _struct_rows(form: Mapping[str, list[str]], spec: FieldSpec) -> list[dict[str, Any]]:
    """Rows posted as repeated ``name.part`` fields (one value per row and part), each turned into
    its stored shape by the row struct's ``from_form``."""
    row_type = spec.extra["rows"]
    parts = {part: form.get(f"{spec.name}.{part}", []) for part in row_type.__struct_fields__}
    count = max((len(v) for v in parts.values()), default=0)
    rows = [{part: (v[i] if i < len(v) else "") for part, v in parts.items()} for i in range(count)]
    return [row_type.from_form(row) for row in rows if any(str(v).strip() for v in row.values())]


def row_errors(message: str | None, name: str) -> dict[int, list[str]]:
    """Split a list field's message (``name[2].value: …; name[3].field: …``) into messages per row."""
    found: dict[int, list[str]] = {}
    prefix = f"{name}["
    for part in (message or "").split("; "):
        if part.startswith(prefix) and "]" in part:
            index, _, rest = part[len(prefix):].partition("]")
            if index.isdigit():
                found.setdefault(int(index), []).append(rest.lstrip("."))
    return found


def _keyvalue_rows(form: Mapping[str, list[str]], name: str) -> list[dict[str, str]]:
    keys = form.get(f"{name}.name", [])
    vals = form.get(f"{name}.value", [])
    rows = []
    for i, key in enumerate(keys):
        value = vals[i] if i < len(vals) else ""
        if key.strip() or value.strip():
            rows.append({"name": key.strip(), "value": value})
    return rows


def default_config(config_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The defaults of a schema, for a freshly dropped node (required fields left out)."""
    return {s.name: msgspec.to_builtins(s.default) for s in field_specs(config_type) if not s.required and s.default is not None}

