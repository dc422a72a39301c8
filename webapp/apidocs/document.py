"""The OpenAPI 3.1 document of Patchwire's public HTTP API, written by hand: exactly the webhook endpoint
(``/webhook/{path}``, every method a Webhook node can accept) and ``/healthz``. Nothing else is listed — the
app's pages and their form posts are not an API (docs/api.md); a route added to the app does not appear here
until someone describes it on purpose. What each answer means follows docs/triggers.md, *Webhooks*."""

from __future__ import annotations

from typing import Any

from nodes.webhook_trigger import HTTP_METHODS

PUBLIC_PATHS = ("/webhook/{path}", "/healthz")
"""The paths the document lists (tests/webapp/test_api_docs.py holds it to these)."""

TRIGGERS = "See docs/triggers.md, *Webhooks*, for the details."


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if headers:
        answer["headers"] = headers
    return answer


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}

WEBHOOK_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "*Respond* is `last_node`: the output of the last node (or of *Node to respond with*) — the "
                       "first item, or the list of all items. A **Respond to Webhook** node (*Respond* is "
                       "`respond_node`) chooses its own status, headers and body. A request to an **inactive** "
                       "workflow that someone listens to in the editor: `{execution_id, message}` (the draft runs).",
        "content": {"application/json": {"schema": {}}}},
    "202": {
        "description": "*Respond* is `immediately` (the default): the execution is committed and queued. Also the "
                       "answer of a waiting mode past the node's *Time limit* (`status: running`; the run goes on).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
    "204": {"description": "*Respond* is `respond_node` and the run ended without a Respond to Webhook node "
                           "(header `X-Patchwire-Execution` names the execution)."},
    "400": _problem("The body cannot be read: malformed JSON (line and column named), nested deeper than 64 "
                    "levels, not UTF-8, or a NUL character in the query."),
    "401": _problem("Authentication missing or unreadable (a header missing, empty, too long, of the wrong "
                    "scheme; a signature that is not hex or base64). `basic` answers `WWW-Authenticate: Basic`."),
    "403": _problem("Authentication read but wrong: a signature that does not match the body, a stale "
                    "timestamp (Stripe, Slack: more than 300 s), an event already received (replay)."),
    "404": _problem("No webhook at this address, or its workflow is inactive and nobody listens in the editor."),
    "405": _problem("The node does not accept this method (its *HTTP methods*, default `POST`).",
                    {"Allow": {"description": "The methods this webhook accepts.", "schema": {"type": "string"}}}),
    "409": _problem("The webhook node cannot take requests: its configuration or credential is invalid "
                    "(the workflow's owner must fix the node)."),
    "413": _problem("The body is larger than the instance's limit (`PATCHWIRE_WEBHOOK_MAX_BODY`, default 16 MiB)."),
    "429": _problem("Past the node's *Rate limit* (requests per minute).", RETRY_AFTER),
    "500": _problem("A waiting mode (`last_node`, `respond_node`) whose run failed; the detail names the execution."),
    "503": _problem("The workflow is paused by its circuit breaker.", RETRY_AFTER),
}

BODY = {
    "description": "Any body. How it becomes the trigger item's `body` (and `binary`) depends on its Content-Type: "
                   "JSON is parsed, a form's fields become an object, multipart files become binary data, other "
                   "text is kept as text, other bytes become binary data. The node's *Keep the raw body as binary* "
                   "keeps the raw bytes instead. " + TRIGGERS,
    "required": False,
    "content": {
        "application/json": {"schema": {}, "example": {"id": 17, "event": "order.created"}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": True}},
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True}},
        "text/plain": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}},
    },
}

WEBHOOK_DESCRIPTION = (
    "Starts the workflow of the **Webhook** node at this address. Each node has an unguessable token address "
    "(`/webhook/<token>`) and optionally a *Custom path* (letters, digits, `. _ ~ / -`; it may contain `/`). "
    "There is one URL, no test/production split: an **active** workflow runs its published version; an inactive "
    "one runs its draft only while someone listens in the editor, else it answers 404.\n\n"
    "The request becomes the trigger's one item: `{method, path, headers, query, body, binary}` (secret headers "
    "masked as `***`).\n\n"
    "**Authentication** is the node's preset: `none`; `header` (a header equal to the credential's value); "
    "`basic` (HTTP Basic); `github` (`X-Hub-Signature-256`), `stripe` (`Stripe-Signature`), `slack` "
    "(`X-Slack-Signature` + `X-Slack-Request-Timestamp`) or `hmac` (HMAC-SHA256 of the raw body in a header the "
    "node names) — signatures over the raw body with a webhook signing secret.\n\n"
    "**Response modes** (the node's *Respond*): `immediately` → 202; `last_node` → 200 with the last node's "
    "output; `respond_node` → what a Respond to Webhook node says. " + TRIGGERS)


def _operation(method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["Webhooks"], "operationId": f"webhook_{method.lower()}",
        "summary": f"{method} a webhook", "description": WEBHOOK_DESCRIPTION,
        "security": [{}, {"webhookHeader": []}, {"webhookBasic": []}, {"webhookSignature": []}],
        "responses": WEBHOOK_RESPONSES,
    }
    if method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = BODY
    return operation


def openapi_document(version: str) -> dict[str, Any]:
    """The document (``version``: Patchwire's)."""
    webhook: dict[str, Any] = {
        "parameters": [{"name": "path", "in": "path", "required": True,
                        "description": "The node's token, or its custom path (which may contain `/`).",
                        "schema": {"type": "string", "maxLength": 200}, "example": "orders/new"}],
    }
    webhook |= {method.lower(): _operation(method) for method in HTTP_METHODS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Patchwire public HTTP API", "version": version,
            "description": "The endpoints other systems call: the **webhooks** that start workflows, and the "
                           "health check. The app's own pages and forms are not an API and are not listed.",
        },
        "servers": [{"url": "/", "description": "This Patchwire instance"}],
        "tags": [{"name": "Webhooks", "description": "Start a workflow from another system."},
                 {"name": "Operations", "description": "For load balancers and monitoring."}],
        "paths": {
            "/webhook/{path}": webhook,
            "/healthz": {"get": {
                "tags": ["Operations"], "operationId": "healthz", "summary": "Health check",
                "description": "Answers while the web process serves requests; no login. (Prometheus metrics, "
                               "`/metrics`, are for operators only — loopback or a token — and not part of this API: "
                               "docs/operations.md.)",
                "security": [{}],
                "responses": {"200": {"description": "The web process is up.", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}}}}},
            }},
        },
        "components": {
            "schemas": {
                "Problem": {"type": "object", "description": "RFC 9457 problem details.",
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                           "status": {"type": "integer"}, "detail": {"type": "string"}},
                            "required": ["title", "status", "detail"]},
                "Accepted": {"type": "object",
                             "properties": {"execution_id": {"type": "integer"},
                                            "status": {"type": "string", "enum": ["running"]},
                                            "message": {"type": "string"}},
                             "required": ["execution_id"]},
            },
            "securitySchemes": {
                "webhookHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                                  "description": "Authentication `header`: the header named in the node's credential "
                                                 "(`X-Api-Key` is an example) must equal its value."},
                "webhookBasic": {"type": "http", "scheme": "basic",
                                 "description": "Authentication `basic`: the credential's user and password."},
                "webhookSignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                                     "description": "Authentication `github`, `stripe`, `slack` or `hmac`: an "
                                                    "HMAC-SHA256 signature of the raw body with the webhook signing "
                                                    "secret, in the provider's header (`hmac`: the node's, "
                                                    "`X-Signature` by default). " + TRIGGERS},
            },
        },
    }
