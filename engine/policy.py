"""Per-node failure handling: retry policy, time limit, and what happens on final failure.

Stored as ``settings`` next to a node's ``config`` (the editor's Settings tab). Defaults mean
"one attempt, stop the workflow on failure", i.e. the behaviour of a node without settings.
"""

from __future__ import annotations

import random
import traceback
from typing import Annotated, Any, Literal

import httpx
import msgspec

from engine.errors import ExpressionError, NodeError, NodeTimeout, PatchwireError
from engine.limits import Id

ErrorKind = Literal["network", "timeout", "429", "5xx", "4xx", "other"]
DEFAULT_RETRY_ON: tuple[ErrorKind, ...] = ("network", "timeout", "429", "5xx")
ERROR_PORT = "error"


class RetryPolicy(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25, title="Max attempts")] = 1
    initial_delay: Annotated[float, msgspec.Meta(ge=0, le=3600, title="Initial delay (s)")] = 1.0
    multiplier: Annotated[float, msgspec.Meta(ge=1, le=10, title="Multiplier")] = 2.0
    max_delay: Annotated[float, msgspec.Meta(ge=0, le=86_400, title="Max delay (s)")] = 300.0
    jitter: Annotated[bool, msgspec.Meta(title="Full jitter")] = True
    retry_on: list[ErrorKind] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_ON))

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempt + 1``: exponential, capped, full jitter; ``Retry-After`` wins
        when it asks for longer (capped by ``max_delay``)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        delay = (rng or random).uniform(0, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether to try again; never for an error that would only repeat (``retryable = False``)."""
        if not getattr(error, "retryable", True):
            return False
        return attempt < self.max_attempts and error_kind(error) in self.retry_on


class NodeSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout: Annotated[float, msgspec.Meta(gt=0, le=86_400, title="Timeout (s)")] | None = None
    on_error: Literal["stop", "continue", "error_output"] = "stop"


def error_kind(error: BaseException) -> ErrorKind:
    """Classify a failure for the retry policy (network errors, timeouts, 429 and 5xx retry by default)."""
    if isinstance(error, (NodeTimeout, TimeoutError)):
        return "timeout"
    if isinstance(error, NodeError) and error.kind:
        return error.kind  # type: ignore[return-value]
    return "other"


_EXPECTED = (PatchwireError, httpx.HTTPError, TimeoutError)


def error_data(node_id: str, node_name: str, exc: BaseException) -> dict[str, Any]:
    """A node's failure as data (stored on its node run, routed to its error output): type, message,
    retry kind, a ``NodeError``'s ``data``, an expression's field — and the traceback of a bug."""
    error: dict[str, Any] = {"node_id": node_id, "node_name": node_name, "type": type(exc).__name__,
                             "message": str(exc) or type(exc).__name__, "kind": error_kind(exc)}
    if isinstance(exc, NodeError) and exc.data:
        error["data"] = exc.data
    if isinstance(exc, ExpressionError):
        error.update(field=exc.field, expression=exc.expression)
    if not isinstance(exc, _EXPECTED):  # a bug in node code: keep the traceback
        error["traceback"] = "".join(traceback.format_exception(exc))
    return error


def kind_of_status(status: int) -> ErrorKind:
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else "4xx"


def parse_settings(raw: object) -> NodeSettings:
    return msgspec.convert(raw or {}, NodeSettings, strict=False)


SETTINGS_PREFIX = "settings."


def settings_from_form(form: dict[str, list[str]]) -> dict[str, object] | None:
    """The Settings tab's fields (``settings.retry.max_attempts`` …) as raw settings; blank means default.

    ``None`` when the form has no Settings tab (the stored settings stay as they are)."""
    if "settings.present" not in form:
        return None

    def last(name: str) -> str:
        values = form.get(SETTINGS_PREFIX + name) or [""]
        return values[-1].strip()

    retry: dict[str, object] = {"jitter": bool(last("retry.jitter")), "retry_on": form.get("settings.retry.retry_on", [])}
    for name in ("max_attempts", "initial_delay", "multiplier", "max_delay"):
        if value := last(f"retry.{name}"):
            retry[name] = value
    raw: dict[str, object] = {"retry": retry, "on_error": last("on_error") or "stop"}
    if timeout := last("timeout"):
        raw["timeout"] = timeout
    return raw


def check_settings(raw: object) -> tuple[NodeSettings | None, dict[str, str]]:
    """Validate settings; the error names the field as the form does (``settings.retry.max_attempts``)."""
    try:
        return msgspec.convert(raw or {}, NodeSettings, strict=False), {}
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$.")
        field = SETTINGS_PREFIX + path.rstrip("`").split("[")[0] if path else "settings"
        return None, {field: message.replace("`", "")}


class BreakerSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Pause a workflow's automatic triggers when too many of its recent executions fail."""

    enabled: bool = True
    failure_ratio: Annotated[float, msgspec.Meta(gt=0, le=1, title="Failure share")] = 0.5
    min_executions: Annotated[int, msgspec.Meta(ge=1, le=100_000, title="At least")] = 10
    window_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400, title="Window (s)")] = 300.0
    cooldown_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400, title="Cool-down (s)")] = 900.0


class WorkflowSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    error_workflow_id: Id | None = None
    execution_timeout: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] | None = None
    breaker: BreakerSettings = msgspec.field(default_factory=BreakerSettings)


def parse_workflow_settings(raw: object) -> WorkflowSettings:
    return msgspec.convert(raw or {}, WorkflowSettings, strict=False)
