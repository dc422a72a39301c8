"""n8n workflow JSON → a Patchwire workflow document, plus a report of what could not be mapped.

Pure functions over parsed JSON (no database, no web): ``convert(raw)`` returns the document in
our own format (a dict, decoded and validated afterwards exactly like a Patchwire file) and an
``ImportReport``. The n8n shapes handled are those of its exported workflow files:

    {"name", "nodes": [{"id", "name", "type": "n8n-nodes-base.<x>", "typeVersion", "position": [x, y],
                        "parameters": {...}}],
     "connections": {"<source NAME>": {"main": [[{"node": "<target NAME>", "type": "main", "index": 0}], ...]}}}

Output ``i`` of an n8n node becomes one or more of our port names (If: 0 → ``true``, 1 → ``false``;
Switch: rule outputs → ``0``–``3``/``fallback``); input ``i`` of a Merge becomes ``a``/``b``.
The mapping table is in docs/workflow-format.md ("Importing from n8n").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from engine.errors import GraphError
from engine.graph import MAX_NOTE_TEXT, NOTE_HEIGHT, NOTE_WIDTH, Problem
from nodes.set_types import FIELD_TYPES
from nodes.set_types import convert as convert_field

PREFIXES = ("n8n-nodes-base.", "@n8n/n8n-nodes-base.")
MAX_SWITCH_RULES = 4
MAX_WAIT_SECONDS = 86_400


# --- the report ----------------------------------------------------------------------------------
@dataclass
class Entry:
    """One line of the report: about n8n node ``node`` (its name), maybe one of its parameters."""

    node: str
    message: str
    parameter: str | None = None


@dataclass
class MappedNode:
    node: str
    n8n_type: str
    patchwire_type: str


@dataclass
class ImportReport:
    """What an import did: nodes mapped, nodes skipped, parameters and expressions not translated."""

    source: str = "n8n"
    mapped: list[MappedNode] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    unmapped: list[Entry] = field(default_factory=list)
    expressions: list[Entry] = field(default_factory=list)
    connections: list[Entry] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.skipped or self.unmapped or self.expressions or self.connections)

    def lines(self) -> list[str]:
        """The report as readable lines (what was not imported as it was), for the command line."""
        sections = (("not imported", self.skipped), ("not mapped", self.unmapped),
                    ("expression kept verbatim", self.expressions), ("connection not imported", self.connections))
        return [f"{title}: {e.node}" + (f" [{e.parameter}]" if e.parameter else "") + f": {e.message}"
                for title, entries in sections for e in entries]

    def to_dict(self) -> dict[str, Any]:
        as_list = lambda entries: [vars(e) for e in entries]  # noqa: E731
        return {"source": self.source, "mapped": as_list(self.mapped), "skipped": as_list(self.skipped),
                "unmapped": as_list(self.unmapped), "expressions": as_list(self.expressions),
                "connections": as_list(self.connections)}


# --- expressions ---------------------------------------------------------------------------------
_ACCESS = r"""(?:\.[A-Za-z_]\w*|\[\s*(?:"[^"\\]*"|'[^'\\]*'|\d+)\s*\])*"""
_NAME = r"""\s*(?P<q>['"])(?P<name>(?:(?!(?P=q)).)+)(?P=q)\s*"""
_SIMPLE: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(rf"\$json(?P<path>{_ACCESS})"), lambda m: "item" + m["path"]),
    (re.compile(rf"\$input\.item\.json(?P<path>{_ACCESS})"), lambda m: "item" + m["path"]),
    (re.compile(rf"\$input\.first\(\)\.json(?P<path>{_ACCESS})"), lambda m: "items[0]" + m["path"]),
    (re.compile(r"\$input\.all\(\)"), lambda m: "items"),
    (re.compile(rf"\$\({_NAME}\)\.(?:item|first\(\))\.json(?P<path>{_ACCESS})"),
     lambda m: f"nodes[{json.dumps(m['name'])}][0]" + m["path"]),
    (re.compile(rf"\$node\[{_NAME}\]\.json(?P<path>{_ACCESS})"),
     lambda m: f"nodes[{json.dumps(m['name'])}][0]" + m["path"]),
]
_BLOCK = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def translate_simple(source: str) -> str | None:
    """``$json.a.b`` → ``item.a.b`` and the few other shapes in ``_SIMPLE``; None for anything else."""
    source = source.strip()
    for pattern, build in _SIMPLE:
        if match := pattern.fullmatch(source):
            return build(match)
    return None


def neutralise(text: str) -> str:
    """Text that must reach the node unevaluated (an n8n expression we cannot translate)."""
    return "{% raw %}" + text + "{% endraw %}" if ("{{" in text or "{%" in text) else text


class Translator:
    """Translates parameter values of one n8n node; what it cannot translate goes into the report."""

    def __init__(self, report: ImportReport, node: str) -> None:
        self.report = report
        self.node = node

    def value(self, value: Any, where: str) -> Any:
        """A parameter value: expressions translated where simple, others kept verbatim as text."""
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if not value.startswith("="):
            return neutralise(value)  # n8n literal text: "{{" in it means nothing there
        translated = self.expression(value)
        if translated is None:
            self.report.expressions.append(Entry(self.node, f"kept verbatim as text (not evaluated): {value}", where))
            return neutralise(value)
        return translated

    @staticmethod
    def expression(value: str) -> str | None:
        """``={{ $json.x }}`` → ``{{ item.x }}``; None when any ``{{ }}`` block is not simple."""
        body = value[1:]
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            translated = translate_simple(match[1])
            failed = failed or translated is None
            return "{{ " + (translated or "") + " }}"

        result = _BLOCK.sub(replace, body)
        return None if failed or "{%" in body else result

    def field_path(self, value: Any) -> str | None:
        """The dotted field of a left-hand side ``={{ $json.a.b }}`` (our conditions take a field)."""
        if not isinstance(value, str):
            return None
        translated = self.expression(value) if value.startswith("=") else None
        match = re.fullmatch(rf"\{{\{{ item(?P<path>{_ACCESS}) \}}\}}", translated or "")
        if not match or not match["path"]:
            return None
        parts = re.findall(r"""\.([A-Za-z_]\w*)|\[\s*(?:"([^"\\]*)"|'([^'\\]*)'|(\d+))\s*\]""", match["path"])
        keys = ["".join(p) for p in parts]
        return None if any("." in k or not k for k in keys) else ".".join(keys)


# --- parameters a mapper reads (the rest is reported) ----------------------------------------------
class Params:
    """A node's parameters; every key a mapper does not read is reported as not mapped."""

    def __init__(self, raw: Any) -> None:
        self.raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.raw.get(key, default)

    def unread(self) -> list[str]:
        return [k for k, v in self.raw.items() if k not in self.read and v not in ({}, [], "", None)]


@dataclass
class Mapped:
    """Our node for one n8n node, and how its n8n outputs / inputs become our port names."""

    type: str
    config: dict[str, Any]
    version: int = 1
    outputs: dict[int, list[str]] = field(default_factory=lambda: {0: ["main"]})
    inputs: dict[int, str] = field(default_factory=lambda: {0: "main"})
    settings: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """The n8n node has no Patchwire equivalent; the message says why."""


@dataclass
class Context:
    node: str
    type_version: float
    params: Params
    tr: Translator
    report: ImportReport
    workflows: Mapping[str, int]
    credentials: Mapping[str, Any] = field(default_factory=dict)
    """The node's ``credentials`` (n8n credential type → ``{"id", "name"}``)."""

    def unmapped(self, message: str, parameter: str | None = None) -> None:
        self.report.unmapped.append(Entry(self.node, message, parameter))


# --- node mappers -----------------------------------------------------------------------------
def map_manual_trigger(ctx: Context) -> Mapped:
    return Mapped("manual_trigger", {})


def map_other_trigger(ctx: Context) -> Mapped:
    ctx.params.read.update(ctx.params.raw)
    ctx.unmapped("replaced by a Manual Trigger: Patchwire has no equivalent of this trigger yet, so the "
                 "workflow starts from the Run button (or the API)")
    return Mapped("manual_trigger", {})


def map_no_op(ctx: Context) -> Mapped:
    return Mapped("set", {"fields": [], "keep_existing": True})


def _literal_text(value: Any) -> str:
    """A typed n8n value as our Set's string: numbers/booleans/objects as a one-expression string keep their type."""
    if isinstance(value, str):
        return value
    return "{{ " + json.dumps(value) + " }}"


def _set_value(ctx: Context, value: Any, where: str) -> str:
    translated = ctx.tr.value(value, where)
    return translated if isinstance(translated, str) else _literal_text(translated)


def map_set(ctx: Context) -> Mapped:
    p = ctx.params
    fields: list[dict[str, str]] = []
    if ctx.type_version < 3:
        for kind, rows in (p.get("values") or {}).items():
            for i, row in enumerate(rows or []):
                fields.append({"name": str(row.get("name", "")),
                               "value": _set_value(ctx, row.get("value", ""), f"values.{kind}[{i}].value")})
        keep = not p.get("keepOnlySet", False)
        _report_options(ctx, p.get("options"), ignore={"dotNotation"})
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
    _report_options(ctx, p.get("options"), ignore={"dotNotation"})
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
        fields.append({"name": name, "value": _set_value(ctx, value, where)})
        return
    if isinstance(value, list | dict):
        value = json.dumps(value)  # n8n's array/object literal: JSON text, converted by our Set
    if not (isinstance(value, str) and value.startswith("=")):
        try:
            convert_field(value, n8n_type)
        except ValueError as exc:
            ctx.unmapped(f"field {name!r} is typed {n8n_type} in n8n, but {exc} (n8n would fail the node here): "
                         "kept as text", where)
            fields.append({"name": name, "value": _set_value(ctx, value, where)})
            return
    fields.append({"name": name, "value": _set_value(ctx, value, where)})
    types[name] = n8n_type


def _report_options(ctx: Context, options: Any, ignore: frozenset[str] | set[str] = frozenset()) -> None:
    for key, value in (options or {}).items():
        if key not in ignore and value not in ({}, [], "", None, False):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def map_http_request(ctx: Context) -> Mapped:
    p = ctx.params
    legacy = ctx.type_version < 2
    method = str(p.get("requestMethod" if legacy else "method", "GET")).upper()
    if method not in HTTP_METHODS:
        ctx.unmapped(f"method {method} is not supported; GET is used", "method")
        method = "GET"
    url = ctx.tr.value(p.get("url", ""), "url")
    config: dict[str, Any] = {"url": url, "method": method}
    auth = p.get("authentication", "none")
    if auth not in ("none", None):
        reference = _credential_reference(ctx, auth)
        if reference is not None:
            config["credential"] = reference
        else:
            ctx.unmapped(f"authentication {auth!r} is not imported: add the header (e.g. Authorization) by hand",
                         "authentication")
        for key in ("genericAuthType", "nodeCredentialType"):
            p.get(key)
    query = _http_query(ctx, legacy)
    if query:
        config["url"] = _append_query(ctx, config["url"], query)
    config["headers"] = _http_headers(ctx, legacy)
    body = _http_body(ctx, legacy)
    if body is not None:
        config["body"] = body
    _http_options(ctx, config, p.get("options") or {})
    return Mapped("http_request", config)


N8N_CREDENTIAL_TYPES = {"httpHeaderAuth": "http_header", "httpBasicAuth": "http_basic",
                        "httpBearerAuth": "http_bearer", "oAuth2Api": "oauth2"}
"""n8n's generic credential types → ours: an HTTP Request using one names our credential of that name."""
N8N_LEGACY_AUTH = {"headerAuth": "httpHeaderAuth", "basicAuth": "httpBasicAuth", "oAuth2": "oAuth2Api"}


def _credential_reference(ctx: Context, auth: Any) -> dict[str, str] | None:
    """``{"type", "name"}`` of the credential an n8n HTTP Request authenticates with, when it is a generic
    type we have (the import maps it to the user's credential of that type and name, or reports it missing)."""
    n8n_type = ctx.params.get("genericAuthType") if auth == "genericCredentialType" else N8N_LEGACY_AUTH.get(auth)
    ours = N8N_CREDENTIAL_TYPES.get(n8n_type) if isinstance(n8n_type, str) else None
    entry = ctx.credentials.get(n8n_type) if ours else None
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not _accepts_credentials("http_request"):
        return None
    return {"type": ours, "name": entry["name"]}


def _accepts_credentials(type_name: str) -> bool:
    from nodes import registry

    node_type = registry.latest(type_name)
    return "credential" in getattr(node_type.Config, "__struct_fields__", ())


def _pairs(rows: Any) -> list[tuple[str, Any]]:
    return [(str(r.get("name", "")), r.get("value", "")) for r in rows or [] if isinstance(r, dict)]


def _http_query(ctx: Context, legacy: bool) -> list[tuple[str, Any]]:
    p = ctx.params
    if legacy:
        return _pairs((p.get("queryParametersUi") or {}).get("parameter"))
    if not p.get("sendQuery", False):
        return []
    if p.get("specifyQuery", "keypair") == "json":
        ctx.unmapped("query given as JSON is not supported; put the parameters in the URL", "jsonQuery")
        p.get("jsonQuery")
        return []
    return _pairs((p.get("queryParameters") or {}).get("parameters"))


def _append_query(ctx: Context, url: str, query: list[tuple[str, Any]]) -> str:
    """Query parameters go into the URL (our node has no query field): literals encoded, expressions
    through Jinja's ``urlencode`` filter."""
    parts = []
    for i, (name, value) in enumerate(query):
        translated = ctx.tr.value(value, f"queryParameters[{i}].value")
        single = re.fullmatch(r"\{\{ (.+) \}\}", translated) if isinstance(translated, str) else None
        if single and "{{" not in single[1]:
            parts.append(f"{urlencode({name: ''})}{{{{ ({single[1]}) | urlencode }}}}")
        else:
            parts.append(urlencode({name: translated if isinstance(translated, str) else json.dumps(translated)}))
    return url + ("&" if "?" in url else "?") + "&".join(parts)


def _http_headers(ctx: Context, legacy: bool) -> list[dict[str, str]]:
    p = ctx.params
    if legacy:
        rows = _pairs((p.get("headerParametersUi") or {}).get("parameter"))
    elif not p.get("sendHeaders", False):
        return []
    elif p.get("specifyHeaders", "keypair") == "json":
        ctx.unmapped("headers given as JSON are not supported; add them one by one", "jsonHeaders")
        p.get("jsonHeaders")
        return []
    else:
        rows = _pairs((p.get("headerParameters") or {}).get("parameters"))
    return [{"name": name, "value": _set_value(ctx, value, f"headers.{name}")} for name, value in rows]


def _http_body(ctx: Context, legacy: bool) -> Any:
    p = ctx.params
    if legacy:
        if p.get("jsonParameters", False):
            return _json_body(ctx, p.get("bodyParametersJson", ""))
        rows = _pairs((p.get("bodyParametersUi") or {}).get("parameter"))
        return {name: ctx.tr.value(v, f"body.{name}") for name, v in rows} or None
    if not p.get("sendBody", False):
        return None
    content_type = p.get("contentType", "json")
    if content_type != "json":
        for key in ("bodyParameters", "body", "inputDataFieldName", "rawContentType"):
            p.get(key)
        ctx.unmapped(f"body content type {content_type!r} is not supported (our node sends JSON): body dropped",
                     "contentType")
        return None
    if p.get("specifyBody", "keypair") == "json":
        return _json_body(ctx, p.get("jsonBody", ""))
    rows = _pairs((p.get("bodyParameters") or {}).get("parameters"))
    return {name: ctx.tr.value(v, f"body.{name}") for name, v in rows}


def _json_body(ctx: Context, text: Any) -> Any:
    if not isinstance(text, str):
        return ctx.tr.value(text, "jsonBody")
    source = text
    if text.startswith("="):
        translated = ctx.tr.expression(text)
        if translated is None:
            ctx.report.expressions.append(Entry(ctx.node, f"JSON body not translated: {text}", "jsonBody"))
            return None
        source = translated
    for candidate in (source, re.sub(r'(?<!")(\{\{ .+? \}\})(?!")', r'"\1"', source)):
        try:
            return json.loads(candidate) if candidate.strip() else None
        except ValueError:
            continue
    ctx.unmapped("the JSON body is not valid JSON after translation: body dropped", "jsonBody")
    return None


def _http_options(ctx: Context, config: dict[str, Any], options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key == "timeout" and isinstance(value, int | float) and value > 0:
            config["timeout"] = min(300.0, max(0.001, value / 1000))
            if value / 1000 > 300:
                ctx.unmapped("timeout above 300 s: set to 300 s", "options.timeout")
        elif key == "response" and isinstance(value, dict):
            inner = value.get("response", value)
            if inner.get("neverError"):
                config["fail_on_error_status"] = False
            if inner.get("fullResponse") is False or inner.get("responseFormat") not in (None, "autodetect", "json"):
                ctx.unmapped("response options are not supported: the output is {status, headers, body}",
                             "options.response")
        elif value not in ({}, [], "", None, False):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")


# conditions ------------------------------------------------------------------------------------
_V1_OPERATIONS = {
    "string": {"equal": "equals", "notEqual": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "isEmpty": "is_empty",
               "isNotEmpty": "is_not_empty"},
    "number": {"equal": "equals", "notEqual": "not_equals", "larger": "gt", "largerEqual": "gte", "smaller": "lt",
               "smallerEqual": "lte"},
    "dateTime": {"after": "after", "before": "before"},
    "boolean": {"equal": "equals", "notEqual": "not_equals"},
}
_V1_TYPES = {"string": "string", "number": "number", "dateTime": "date", "boolean": "boolean"}
_FILTER_OPERATIONS = {
    "string": {"equals": "equals", "notEquals": "not_equals", "contains": "contains", "notContains": "not_contains",
               "startsWith": "starts_with", "endsWith": "ends_with", "regex": "matches", "empty": "is_empty",
               "notEmpty": "is_not_empty"},
    "number": {"equals": "equals", "notEquals": "not_equals", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"},
    "dateTime": {"equals": "equals", "after": "after", "before": "before"},
    "boolean": {"true": "is_true", "false": "is_false", "equals": "equals", "notEquals": "not_equals"},
}
_ANY_TYPE = {"exists": "exists", "notExists": "not_exists"}
_NO_VALUE = {"is_empty", "is_not_empty", "is_true", "is_false", "exists", "not_exists"}


def _condition(ctx: Context, where: str, left: Any, kind: str, operator: str | None, right: Any) -> dict[str, Any] | None:
    """One of our conditions, or None (reported) when it cannot be expressed."""
    path = ctx.tr.field_path(left)
    if path is None:
        ctx.unmapped(f"condition left side {left!r} is not a simple field ($json.x): condition dropped", where)
        return None
    if operator is None:
        ctx.unmapped(f"{kind} operation is not supported: condition dropped", where)
        return None
    if kind == "boolean" and operator in ("equals", "not_equals"):
        truth = right if isinstance(right, bool) else str(right).strip().lower() == "true"
        operator = "is_true" if truth == (operator == "equals") else "is_false"
    condition: dict[str, Any] = {"field": path, "type": _V1_TYPES.get(kind, "string"), "operator": operator}
    if operator not in _NO_VALUE:
        value = ctx.tr.value(right, f"{where}.value")
        if isinstance(value, str) and value.startswith("{% raw %}"):
            ctx.unmapped("right side is an expression we cannot translate: condition dropped", where)
            return None
        condition["value"] = str(value) if kind == "string" and not isinstance(value, str) else value
    return condition


def _v1_conditions(ctx: Context, raw: Any, left_of: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    out = []
    for kind, rows in (raw or {}).items():
        for i, row in enumerate(rows or []):
            op_name = str(row.get("operation", "equal"))
            operator = _V1_OPERATIONS.get(kind, {}).get(op_name)
            where = f"conditions.{kind}[{i}] ({op_name})"
            if (c := _condition(ctx, where, left_of(row), kind, operator, row.get("value2"))) is not None:
                out.append(c)
    return out


def _filter_conditions(ctx: Context, raw: Any, where: str) -> tuple[list[dict[str, Any]], str]:
    """The v2 "filter" shape: ``{options, conditions: [{leftValue, rightValue, operator: {type, operation}}], combinator}``."""
    raw = raw or {}
    if (raw.get("options") or {}).get("caseSensitive") is False:
        ctx.unmapped("case-insensitive comparison is not supported: compared case-sensitively", f"{where}.options")
    out = []
    for i, row in enumerate(raw.get("conditions") or []):
        op = row.get("operator") or {}
        kind, op_name = str(op.get("type", "string")), str(op.get("operation", "equals"))
        operator = _ANY_TYPE.get(op_name) or _FILTER_OPERATIONS.get(kind, {}).get(op_name)
        label = f"{where}[{i}] ({kind} {op_name})"
        if (c := _condition(ctx, label, row.get("leftValue"), kind, operator, row.get("rightValue"))) is not None:
            out.append(c)
    return out, "or" if raw.get("combinator") == "or" else "and"


def map_if(ctx: Context) -> Mapped:
    p = ctx.params
    if ctx.type_version < 2:
        conditions = _v1_conditions(ctx, p.get("conditions"), lambda row: row.get("value1"))
        combine = "or" if p.get("combineOperation") == "any" else "and"
    else:
        conditions, combine = _filter_conditions(ctx, p.get("conditions"), "conditions")
        p.get("looseTypeValidation")
        _report_options(ctx, p.get("options"), ignore={"looseTypeValidation"})
    if not conditions:
        raise Skip("none of its conditions could be mapped (see above)")
    return Mapped("if", {"combine": combine, "conditions": conditions}, version=2,
                  outputs={0: ["true"], 1: ["false"]})


def map_switch(ctx: Context) -> Mapped:
    p = ctx.params
    mode = p.get("mode", "rules")
    if mode != "rules":
        p.read.update(p.raw)
        raise Skip(f"Switch in mode {mode!r} (output index from an expression) is not supported")
    return _switch_v3(ctx) if ctx.type_version >= 3 else _switch_v1(ctx)


def _switch_v3(ctx: Context) -> Mapped:
    options = ctx.params.get("options") or {}
    rules, outputs = [], {}
    for i, rule in enumerate((ctx.params.get("rules") or {}).get("values") or []):
        conditions, _ = _filter_conditions(ctx, rule.get("conditions"), f"rules[{i}]")
        if len(conditions) > 1:
            ctx.unmapped(f"rule {i} has {len(conditions)} conditions; a Patchwire rule has one: only the first is kept",
                         f"rules[{i}]")
        if not conditions or len(rules) == MAX_SWITCH_RULES:
            if conditions:
                ctx.unmapped(f"rule {i}: Switch has at most {MAX_SWITCH_RULES} rules: dropped with its output",
                             f"rules[{i}]")
            continue
        outputs[i] = [str(len(rules))]
        rules.append(conditions[0])
    fallback = options.get("fallbackOutput", "none")
    values = (ctx.params.get("rules") or {}).get("values") or []
    if fallback == "extra":
        outputs[len(values)] = ["fallback"]
    elif isinstance(fallback, int):
        outputs.setdefault(fallback, []).append("fallback")
    _report_output_names(ctx, values, outputs, options.get("renameFallbackOutput") if fallback == "extra" else None)
    for key in options:
        if key not in ("fallbackOutput", "allMatchingOutputs", "renameFallbackOutput"):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")
    return _switch(ctx, rules, outputs, bool(options.get("allMatchingOutputs")))


def _report_output_names(ctx: Context, values: list[Any], outputs: dict[int, list[str]], fallback_name: Any) -> None:
    """n8n's output names (``renameOutput`` + ``outputKey``) have no place here: our ports carry no labels."""
    names = [(str(rule["outputKey"]), "/".join(outputs.get(i, [])) or "dropped") for i, rule in enumerate(values)
             if isinstance(rule, dict) and rule.get("renameOutput") and rule.get("outputKey")]
    if isinstance(fallback_name, str) and fallback_name:
        names.append((fallback_name, "fallback"))
    if names:
        shown = ", ".join(f"{name!r} → port {port}" for name, port in names)
        ctx.unmapped(f"output names are not kept: Patchwire's Switch ports have fixed names (0–3, fallback) and no "
                     f"labels; {shown}", "rules")


def _switch_v1(ctx: Context) -> Mapped:
    p = ctx.params
    kind, left = str(p.get("dataType", "number")), p.get("value1")
    rules, outputs = [], {}
    for i, rule in enumerate((p.get("rules") or {}).get("rules") or []):
        operator = _V1_OPERATIONS.get(kind, {}).get(str(rule.get("operation", "equal")))
        condition = _condition(ctx, f"rules[{i}]", left, kind, operator, rule.get("value2"))
        if condition is None or len(rules) == MAX_SWITCH_RULES:
            if condition is not None:
                ctx.unmapped(f"rule {i}: Switch has at most {MAX_SWITCH_RULES} rules: dropped", f"rules[{i}]")
            continue
        outputs.setdefault(int(rule.get("output", 0)), []).append(str(len(rules)))
        rules.append(condition)
    fallback = p.get("fallbackOutput", -1)
    if isinstance(fallback, int) and fallback >= 0:
        outputs.setdefault(fallback, []).append("fallback")
    return _switch(ctx, rules, outputs, False)


def _switch(ctx: Context, rules: list[dict[str, Any]], outputs: dict[int, list[str]], all_matches: bool) -> Mapped:
    if not rules:
        raise Skip("none of its rules could be mapped (see above)")
    return Mapped("switch", {"mode": "all_matches" if all_matches else "first_match", "rules": rules},
                  outputs=outputs)


# merge --------------------------------------------------------------------------------------------
def map_merge(ctx: Context) -> Mapped:
    p = ctx.params
    inputs = {0: "a", 1: "b"}
    mode = p.get("mode", "append")
    if isinstance(p.get("numberInputs"), int) and p.get("numberInputs") > 2:
        ctx.unmapped("more than 2 inputs: inputs 3 and up are not connected", "numberInputs")
    config: dict[str, Any] = {"mode": "append"}
    if mode in ("mergeByIndex", "combineByPosition") or (mode == "combine" and _combine_by(p) == "position"):
        config["mode"] = "combine_by_position"
    elif mode in ("mergeByKey",):
        config.update(mode="combine_by_key", key_a=str(p.get("propertyName1", "")), key_b=str(p.get("propertyName2", "")))
    elif mode == "combine" and _combine_by(p) == "fields":
        config.update(_merge_keys(ctx))
    elif mode in ("passThrough", "chooseBranch"):
        config["mode"] = "wait_pass_first"
        second = p.get("output") in ("input2",) or str(p.get("useDataOfInput", "1")) == "2"
        p.get("chooseBranchMode")
        if p.get("output") == "empty":
            ctx.unmapped("output 'empty' is not supported: the first input's items are passed", "output")
        if second:
            inputs = {0: "b", 1: "a"}  # our wait_pass_first passes input a: swap the wires
    elif mode != "append":
        how = f" by {p.get('combineBy') or p.get('combinationMode')}" if mode == "combine" else ""
        ctx.unmapped(f"mode {mode!r}{how} is not supported (Patchwire's Merge appends, combines by position or by "
                     "one key, or waits and passes one input): mapped to append", "mode")
        p.read.update(p.raw)
    _report_options(ctx, p.get("options"), ignore={"fuzzyCompare", "includeUnpaired"})
    if (p.get("options") or {}).get("includeUnpaired"):
        config["keep_unmatched"] = True
    return Mapped("merge", config, inputs=inputs)


def _combine_by(p: Params) -> str:
    raw = p.get("combineBy") or p.get("combinationMode") or "combineByFields"
    return {"combineByPosition": "position", "mergeByPosition": "position", "combineByFields": "fields",
            "mergeByFields": "fields"}.get(raw, raw)


def _merge_keys(ctx: Context) -> dict[str, Any]:
    p = ctx.params
    config: dict[str, Any] = {"mode": "combine_by_key"}
    if text := p.get("fieldsToMatchString"):
        key = str(text).split(",")[0].strip()
        config.update(key_a=key, key_b=key)
        if "," in str(text):
            ctx.unmapped("matching on several fields is not supported: only the first is used", "fieldsToMatchString")
    else:
        rows = (p.get("mergeByFields") or {}).get("values") or []
        if rows:
            config.update(key_a=str(rows[0].get("field1", "")), key_b=str(rows[0].get("field2", "")))
        if len(rows) > 1:
            ctx.unmapped("matching on several fields is not supported: only the first pair is used", "mergeByFields")
    p.get("advanced")
    join = p.get("joinMode", "keepMatches")
    if join == "keepEverything":
        config["keep_unmatched"] = True
    elif join != "keepMatches":
        ctx.unmapped(f"join mode {join!r} is not supported: only matches are kept", "joinMode")
    source = p.get("outputDataFrom", "both")
    if join in ("keepMatches", "keepNonMatches") and source not in ("both", None):
        ctx.unmapped(f"output data from {source!r} only is not supported: matched items are merged from both inputs "
                     "(fields of input 2 win on a clash)", "outputDataFrom")
    return config


def map_wait(ctx: Context) -> Mapped:
    p = ctx.params
    resume = p.get("resume", "timeInterval")
    if resume == "timeInterval":
        unit = p.get("unit", "hours" if ctx.type_version < 1.1 else "seconds")
        amount = p.get("amount", 1 if ctx.type_version < 1.1 else 5)
        factor = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}.get(unit)
        if factor is None or not isinstance(amount, int | float):
            raise Skip(f"a wait of {amount!r} {unit!r} cannot be mapped")
        seconds = float(amount) * factor
        if seconds > MAX_WAIT_SECONDS:
            ctx.unmapped(f"waits over one day are not supported: {seconds:g} s shortened to {MAX_WAIT_SECONDS} s", "amount")
            seconds = MAX_WAIT_SECONDS
        return Mapped("wait", {"mode": "duration", "seconds": seconds})
    if resume == "specificTime":
        until = p.get("dateTime", "")
        if isinstance(until, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?", until):
            ctx.unmapped("date-time without a timezone: read as UTC", "dateTime")
            until += "Z"
        return Mapped("wait", {"mode": "until", "until": ctx.tr.value(until, "dateTime")})
    p.read.update(p.raw)
    raise Skip(f"Wait that resumes on {resume!r} (a webhook or form) is not supported")


def map_execute_workflow(ctx: Context) -> Mapped:
    p = ctx.params
    source = p.get("source", "database")
    ref = p.get("workflowId")
    name = ref.get("cachedResultName") if isinstance(ref, dict) else None
    for key in ("mode", "options", "workflowInputs"):
        p.get(key)
    if source != "database":
        p.read.update(p.raw)
        raise Skip(f"Execute Workflow from {source!r} is not supported: add a Sub-workflow node and choose a workflow")
    if name and name in ctx.workflows:
        ctx.unmapped(f"n8n workflow {name!r} mapped by name to your workflow #{ctx.workflows[name]}: check it",
                     "workflowId")
        return Mapped("sub_workflow", {"workflow_id": ctx.workflows[name]})
    shown = (ref.get("value") if isinstance(ref, dict) else ref) or "?"
    raise Skip(f"needs a Patchwire workflow id: n8n workflow {shown!r}"
               + (f" ({name!r})" if name else "") + " is not one of your workflows by name; add a Sub-workflow node "
               "and choose the workflow")


MAPPERS: dict[str, Callable[[Context], Mapped]] = {
    "manualTrigger": map_manual_trigger,
    "start": map_manual_trigger,
    "set": map_set,
    "httpRequest": map_http_request,
    "if": map_if,
    "switch": map_switch,
    "merge": map_merge,
    "wait": map_wait,
    "executeWorkflow": map_execute_workflow,
    "noOp": map_no_op,
}
_OTHER_TRIGGERS = {"webhook", "cron", "interval", "scheduleTrigger", "formTrigger"}


def _mapper(short_type: str) -> Callable[[Context], Mapped] | None:
    if short_type in MAPPERS:
        return MAPPERS[short_type]
    if short_type in _OTHER_TRIGGERS or short_type.endswith("Trigger"):
        return map_other_trigger
    return None


# --- the whole workflow ----------------------------------------------------------------------------
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
    x, y = _position(node)
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


def _convert_node(index: int, node: Any, report: ImportReport,
                  workflows: Mapping[str, int]) -> tuple[dict[str, Any], Mapped] | None:
    if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not isinstance(node.get("type"), str):
        raise GraphError([Problem(f"Not an n8n workflow: nodes[{index}] needs a \"name\" and a \"type\" (strings).")])
    name, full_type = node["name"], node["type"]
    short = full_type.split(".", 1)[1] if full_type.startswith(PREFIXES) else full_type
    mapper = _mapper(short) if full_type.startswith(PREFIXES) or "." not in full_type else None
    if mapper is None:
        report.skipped.append(Entry(name, f"{full_type} has no Patchwire equivalent"))
        return None
    version = node.get("typeVersion", 1)
    params = Params(node.get("parameters"))
    credentials = node.get("credentials") if isinstance(node.get("credentials"), dict) else {}
    ctx = Context(name, float(version) if isinstance(version, int | float) else 1.0, params,
                  Translator(report, name), report, workflows, credentials)
    try:
        mapped = mapper(ctx)
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
    x, y = _position(node)
    spec: dict[str, Any] = {"id": node_id, "type": mapped.type, "version": mapped.version, "name": node["name"],
                            "config": mapped.config, "position": {"x": x, "y": y}}
    if mapped.settings:
        spec["settings"] = mapped.settings
    return spec


def _position(node: dict[str, Any]) -> tuple[float, float]:
    position = node.get("position")
    return (position[0], position[1]) if (isinstance(position, list) and len(position) >= 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in position[:2])) else (0, 0)


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
