"""The one place where errors become HTTP responses.

Browser requests get an HTML page or, for htmx, an HTML partial with the message; API
requests (``Accept: application/json`` or ``/api/``) get ``application/problem+json``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from engine.errors import (
    ConfigError,
    CredentialError,
    CredentialInUse,
    CredentialNotFound,
    GraphError,
    RegistryError,
    WorkflowPaused,
)
from engine.testruns import MissingTestData
from engine.triggers.activation import ActivationError
from webapp.forms import is_htmx

log = logging.getLogger("patchwire.web")


class Conflict(HTTPException):
    status_code = 409


class StaleEdit(Conflict):
    """A write based on a version of a row that changed since the editor loaded it (another tab, another
    person): refused, so two tabs never silently overwrite each other. ``changes`` says what is different."""

    def __init__(self, detail: str, changes: list[str], *, node_id: str | None = None,
                 current_version: int | None = None) -> None:
        super().__init__(detail=detail)
        self.changes = changes
        self.node_id = node_id
        self.current_version = current_version


class BadRequest(HTTPException):
    """A body that cannot be read: not UTF-8, not JSON, nested too deep (400); the message says which limit."""

    status_code = 400


class TooLarge(HTTPException):
    """A body past its size limit (413); the message names the limit."""

    status_code = 413


class UnsupportedMediaType(HTTPException):
    """A body of a type the address does not read, e.g. text/plain where JSON is expected (415)."""

    status_code = 415


class Invalid(HTTPException):
    """Bad input with a message for the person who sent it (422)."""

    status_code = 422
    stands_alone = False
    """True when the message is a whole sentence that says what was refused: pages and the flash area show it
    without the "Invalid input." lead (API clients still get the title)."""


class WouldCycle(Invalid):
    """A connection that would make the workflow loop back (422); the message names both nodes."""

    stands_alone = True


class PasteRefused(GraphError):
    """Pasted text that cannot be added to a workflow; ``problems`` say why. Nothing was changed."""


def wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request[Any, Any, Any], status: int, title: str, detail: str,
                   problems: list[Any] | None = None, stands_alone: bool = False) -> Response[Any]:
    if wants_json(request):
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        if problems:
            body["problems"] = problems
        return Response(body, status_code=status, media_type="application/problem+json")
    context = {"status": status, "title": title, "detail": detail, "problems": problems or [],
               "stands_alone": stands_alone and bool(detail)}
    if is_htmx(request):
        # Errors of htmx requests land in the page's flash area, never in the element that asked.
        return Template("_error_partial.html", context=context, status_code=status, media_type=MediaType.HTML,
                        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    return Template("error.html", context=context, status_code=status, media_type=MediaType.HTML)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    titles = {404: "Not found", 403: "Forbidden", 409: "Conflict", 422: "Invalid input", 400: "Bad request",
              413: "Too large", 415: "Unsupported media type"}
    generic = {t.lower() for t in titles.values()}
    detail = exc.detail if exc.detail and str(exc.detail).lower() not in generic else ""
    if exc.status_code == 404:
        detail = detail or "There is nothing here, or it belongs to someone else."
    return error_response(request, exc.status_code, titles.get(exc.status_code, "Error"), detail or str(exc.detail),
                          _validation_problems(exc.extra), getattr(exc, "stands_alone", False))


def _validation_problems(extra: Any) -> list[dict[str, str]] | None:
    """Litestar's validation errors (``[{"key": …, "message": …}]``) as problems naming the field."""
    if not isinstance(extra, list):
        return None
    return [{"message": f"{e.get('key') or 'body'}: {e.get('message')}"} for e in extra if isinstance(e, dict)] or None


def handle_unauthorized(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    if wants_json(request):
        return error_response(request, 401, "Not logged in", "Log in to continue.")
    if is_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": "/login"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?{urlencode({'next': target})}")


def handle_graph_error(request: Request[Any, Any, Any], exc: GraphError) -> Response[Any]:
    problems = [{"message": p.message, "node_id": getattr(p, "node_id", None)} for p in exc.problems]
    return error_response(request, 422, "Invalid workflow", "The workflow has problems.", problems)


def handle_activation_error(request: Request[Any, Any, Any], exc: ActivationError) -> Response[Any]:
    problems = [{"message": p, "node_id": None} for p in exc.problems]
    return error_response(request, 422, "Cannot activate", "The workflow was not activated.", problems)


def handle_paste_refused(request: Request[Any, Any, Any], exc: PasteRefused) -> Response[Any]:
    problems = [{"message": p.message, "node_id": getattr(p, "node_id", None)} for p in exc.problems]
    return error_response(request, 422, "Nothing was pasted", "The workflow is unchanged.", problems)


def handle_config_error(request: Request[Any, Any, Any], exc: ConfigError) -> Response[Any]:
    problems = [{"field": k, "message": v} for k, v in exc.field_errors.items()]
    return error_response(request, 422, "Invalid configuration", str(exc), problems)


def handle_registry_error(request: Request[Any, Any, Any], exc: RegistryError) -> Response[Any]:
    return error_response(request, 422, "Unknown node type", str(exc).capitalize() + ".")


def handle_paused(request: Request[Any, Any, Any], exc: WorkflowPaused) -> Response[Any]:
    return error_response(request, 409, "Paused", str(exc).capitalize() + ". Resume it in the workflow settings.")


def handle_stale_edit(request: Request[Any, Any, Any], exc: StaleEdit) -> Response[Any]:
    if wants_json(request):
        body = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": exc.detail,
                "changes": exc.changes, "node_id": exc.node_id, "current_version": exc.current_version}
        return Response(body, status_code=409, media_type="application/problem+json")
    context = {"detail": exc.detail, "changes": exc.changes, "node_id": exc.node_id}
    if is_htmx(request):
        return Template("_conflict_partial.html", context=context, status_code=409, media_type=MediaType.HTML,
                        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    problems = [{"message": change} for change in exc.changes]
    return error_response(request, 409, "Conflict", exc.detail, problems)


def handle_missing_test_data(request: Request[Any, Any, Any], exc: MissingTestData) -> Response[Any]:
    """A test run that cannot feed its node: the run panel says which upstream node lacks data."""
    if wants_json(request) or not is_htmx(request):
        return error_response(request, 422, "Missing test data", str(exc))
    return Template("testing/_run_refused.html", context={"message": str(exc), "node_id": exc.node_id},
                    status_code=422, media_type=MediaType.HTML)


def handle_credential_error(request: Request[Any, Any, Any], exc: CredentialError) -> Response[Any]:
    """A credential that cannot be used here: not found (404, same as another person's), in use (409, naming
    the workflows), or one that cannot be opened (key missing, ciphertext altered: 409). Never a secret."""
    if isinstance(exc, CredentialNotFound):
        return error_response(request, 404, "Not found", "There is nothing here, or it belongs to someone else.")
    message = str(exc)[:1].upper() + str(exc)[1:] + "."  # not capitalize(): it lowercases the setting's name
    if isinstance(exc, CredentialInUse):
        problems = [{"message": name, "workflow_id": workflow_id} for workflow_id, name in exc.workflows]
        return error_response(request, 409, "Credential in use", message, problems)
    return error_response(request, 409, "Credential unavailable", message)


def handle_server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong",
                          "The error was logged. Nothing you saved was lost.")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotAuthorizedException: handle_unauthorized,
    NotFoundException: handle_http,
    PermissionDeniedException: handle_http,
    HTTPException: handle_http,
    StaleEdit: handle_stale_edit,
    PasteRefused: handle_paste_refused,
    GraphError: handle_graph_error,
    ActivationError: handle_activation_error,
    ConfigError: handle_config_error,
    RegistryError: handle_registry_error,
    WorkflowPaused: handle_paused,
    MissingTestData: handle_missing_test_data,
    CredentialError: handle_credential_error,
    HTTP_500_INTERNAL_SERVER_ERROR: handle_server_error,
}
