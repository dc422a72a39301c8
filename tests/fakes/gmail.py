"""``/google/gmail/v1/users/{userId}/messages[/{id}]``: Gmail's ``users.messages.list`` and ``.get`` over the
fake's mailbox (tests/fakes/mailbox.py), with Google's error bodies.

list: ``q``, ``labelIds`` (repeated, ANDed), ``maxResults`` (1–500, default 100; more is capped at 500 as
Gmail does), ``pageToken`` / ``nextPageToken``, ``includeSpamTrash`` → ``{"messages": [{"id", "threadId"}],
"nextPageToken"?, "resultSizeEstimate"}`` (no ``messages`` key when nothing matches).
get: ``format`` full (default) | metadata | minimal | raw, ``metadataHeaders`` (repeated).
Errors: 401 ``UNAUTHENTICATED`` (missing, expired or revoked token), 403 ``PERMISSION_DENIED`` (no Gmail scope;
another ``userId``), 404 ``NOT_FOUND``, 400 ``INVALID_ARGUMENT``; and what ``mailbox.fail_next`` asks for.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import MultiDict
from litestar.params import FromPath

from tests.fakes.state import ProviderState
from tests.fakes.web import bearer, json_response

ERRORS = {
    401: ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
          "valid authentication credential.", "authError", "UNAUTHENTICATED"),
    403: ("User-rate limit exceeded.", "userRateLimitExceeded", "PERMISSION_DENIED"),
    404: ("Requested entity was not found.", "notFound", "NOT_FOUND"),
    429: ("Resource has been exhausted (e.g. check quota).", "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("Internal error encountered.", "backendError", "INTERNAL"),
    503: ("The service is currently unavailable.", "backendError", "UNAVAILABLE"),
}
FORMATS = ("full", "metadata", "minimal", "raw")


def handlers(state: ProviderState) -> list[Any]:
    @get("/gmail/v1/users/{user_id:str}/messages")
    async def list_messages(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        return refused(state, request, user_id) or list_answer(state, request.query_params)

    @get("/gmail/v1/users/{user_id:str}/messages/{message_id:str}")
    async def get_message(request: Request[Any, Any, Any], user_id: FromPath[str],
                          message_id: FromPath[str]) -> Response[Any]:
        return refused(state, request, user_id) or get_answer(state, message_id, request.query_params)

    return [list_messages, get_message]


def error(state: ProviderState, status: int, message: str | None = None, reason: str | None = None) -> Response[Any]:
    from tests.fakes.google import google_error

    default_message, default_reason, code = ERRORS.get(status, ("Bad Request", "invalidArgument", "INVALID_ARGUMENT"))
    answer = google_error(status, message or default_message, reason or default_reason, code)
    if status == 429:
        answer.headers["retry-after"] = str(state.retry_after)
    return answer


def refused(state: ProviderState, request: Request[Any, Any, Any], user_id: str) -> Response[Any] | None:
    """Forced failures first, then the token, its scope and the user id, as Google checks them."""
    from tests.fakes.google import GMAIL_SCOPES

    with state.lock:
        forced = state.mailbox.take_failure()
    if forced is not None:
        return error(state, forced)
    token = state.valid_access(bearer(request))
    if token is None:
        return error(state, 401)
    if not any(s.startswith(GMAIL_SCOPES) for s in token.scope.split()):
        return error(state, 403, "Request had insufficient authentication scopes.", "insufficientPermissions")
    if user_id not in ("me", token.account):
        return error(state, 403, f"Delegation denied for {token.account}", "forbidden")
    return None


def list_answer(state: ProviderState, params: MultiDict[str]) -> Response[Any]:
    size_text, start_text = params.get("maxResults", "100"), params.get("pageToken") or "0"
    if not size_text.isdigit() or int(size_text) < 1:
        return error(state, 400, f"Invalid value at 'max_results' (TYPE_UINT32), \"{size_text}\"", "invalidArgument")
    if not start_text.isdigit():
        return error(state, 400, "Invalid pageToken", "invalidArgument")
    size, start = min(int(size_text), 500), int(start_text)
    try:
        with state.lock:
            found = state.mailbox.search(params.get("q", ""), params.getall("labelIds", []),
                                         params.get("includeSpamTrash", "false") == "true")
    except ValueError as exc:
        return error(state, 400, str(exc), "invalidArgument")
    page = found[start:start + size]
    body: dict[str, Any] = {"resultSizeEstimate": len(found)}
    if page:
        body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
    if start + size < len(found):
        body["nextPageToken"] = f"{start + size:020d}"
    return json_response(body)


def get_answer(state: ProviderState, message_id: str, params: MultiDict[str]) -> Response[Any]:
    fmt = params.get("format", "full")
    if fmt not in FORMATS:
        return error(state, 400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
    with state.lock:
        message = state.mailbox.get(message_id)
        if message is None:
            return error(state, 404)
        body = state.mailbox.resource(message, fmt, params.getall("metadataHeaders", []))
    return json_response(body)
