"""HTTP Request v1 and v3/v4."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, register
from webapp.workflows.n8n.edit_fields import set_value
from webapp.workflows.n8n.report import Entry

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


@register
class HttpRequestMapper(NodeMapper):
    """HTTP Request: method, URL, query, headers, body, auth."""

    n8n_types = ("httpRequest",)

    def map(self, ctx: Context) -> Mapped:
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
        if legacy:
            _response_format(ctx, p.get("responseFormat"), p.get("dataPropertyName"), "responseFormat")
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
    return [{"name": name, "value": set_value(ctx, value, f"headers.{name}")} for name, value in rows]


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
    # n8n's node outputs the response body as the item; "Include Response Headers and Status" (v3+:
    # options.response.response.fullResponse, v1: options.fullResponse) outputs the whole response
    config["response"] = "body"
    for key, value in options.items():
        if key == "timeout" and isinstance(value, int | float) and value > 0:
            config["timeout"] = min(300.0, max(0.001, value / 1000))
            if value / 1000 > 300:
                ctx.unmapped("timeout above 300 s: set to 300 s", "options.timeout")
        elif key == "fullResponse" and value is True:
            _full_response(ctx, config, "options.fullResponse")
        elif key == "response" and isinstance(value, dict):
            inner = value.get("response", value)
            if inner.get("neverError"):
                config["fail_on_error_status"] = False
            if inner.get("fullResponse") is True:
                _full_response(ctx, config, "options.response")
            _response_format(ctx, inner.get("responseFormat"), inner.get("outputPropertyName"), "options.response")
        elif value not in ({}, [], "", None, False):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")




def _full_response(ctx: Context, config: dict[str, Any], parameter: str) -> None:
    config["response"] = "full"
    ctx.unmapped("full response: our item is {status, headers, body}, n8n's {body, headers, statusCode, "
                 "statusMessage}: read the status as status (not statusCode); there is no statusMessage", parameter)


def _response_format(ctx: Context, response_format: Any, property_name: Any, parameter: str) -> None:
    """n8n reads the body as JSON (``autodetect``/``json``) or text into ``{data}`` (``text``; v1 ``string``)
    as ours does; a file (binary data) or text under another property name is reported."""
    if response_format not in (None, "autodetect", "json", "text", "string"):
        ctx.unmapped(f"response format {response_format!r} is not supported: the body is read as JSON, "
                     "or as text ({data: …}) when it is not JSON", parameter)
    elif response_format in ("text", "string") and property_name not in (None, "", "data"):
        ctx.unmapped(f"text response put in {property_name!r}: ours is always in data", parameter)
