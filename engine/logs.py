"""Structured logs: every record emitted while a worker runs an execution carries its id (and the node's).

The ids live in two context variables. The job sets ``execution_id`` (``engine.worker.run_execution``),
the run loop sets it again for a sub-workflow's run and sets ``node_id`` at the start of each node's own
task (``engine.runner``) — one ``ContextVar.set`` each, nothing else on the hot path: the ids are read
only when a record is actually emitted (``RunContextFilter``). Tasks copy the context when they are
created, so a node's task, the heartbeat and anything they start see the ids of the run that started them.

``configure_logging`` (called by the CLI entry points) writes JSON lines to stderr when it is not a
terminal, and readable lines on a terminal; ``PATCHWIRE_LOG_FORMAT=json|text`` forces one.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import IO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

execution_id_var: ContextVar[int | None] = ContextVar("patchwire_execution_id", default=None)
node_id_var: ContextVar[str | None] = ContextVar("patchwire_node_id", default=None)

QUIET_LOGGERS = ("alembic.runtime.plugins",)
"""Loggers whose INFO lines say nothing to an operator (alembic lists its seven plugins on every start)."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RunContextFilter(logging.Filter):
    """Copies the run's ids onto each record as it is emitted (absent outside a run, so JSON lines stay short)."""

    def filter(self, record: logging.LogRecord) -> bool:
        execution_id = execution_id_var.get()
        if execution_id is not None:
            record.execution_id = execution_id
            node_id = node_id_var.get()
            if node_id is not None:
                record.node_id = node_id
        return True


_SECRET_URL_PARTS = (
    # Telegram's Bot API puts the bot's token in the path: https://api.telegram.org/bot<token>/getMe
    (re.compile(r"/bot[0-9]+:[A-Za-z0-9_-]+"), "/bot[redacted]"),
    # user:password@host
    (re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@"), "[redacted]@"),
    # ?api_key=…&access_token=…
    (re.compile(r"(?i)([?&](?:[a-z_-]*(?:key|token|secret|password|signature|sig)[a-z_-]*)=)[^&#\s\"']+"), r"\1[redacted]"),
)
HTTP_CLIENT_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2")


def mask_url_secrets(text: str) -> str:
    """The secret-bearing parts of URLs in ``text`` replaced by ``[redacted]``."""
    for pattern, replacement in _SECRET_URL_PARTS:
        text = pattern.sub(replacement, text)
    return text


class SecretURLFilter(logging.Filter):
    """HTTP clients log every request's URL at INFO; some APIs carry a secret in it (Telegram's bot token in the
    path, API keys in the query). A run's node logs are redacted with the run's secrets (engine/nodelogs.py);
    this catches the rest — a credential's *Test* in the web process, a token request — in the process log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in HTTP_CLIENT_LOGGERS:
            message = record.getMessage()
            masked = mask_url_secrets(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with ``[execution 7 node ab12…]`` appended inside a run."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        execution_id = getattr(record, "execution_id", None)
        if execution_id is None:
            return line
        node_id = getattr(record, "node_id", None)
        where = f"execution {execution_id}" + (f" node {node_id}" if node_id else "")
        first, newline, rest = line.partition("\n")  # keep a traceback below the line it belongs to
        return f"{first} [{where}]{newline}{rest}"


def json_formatter() -> JsonFormatter:
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the run's ids,
    any ``extra=`` fields, and ``exc_info`` with the traceback."""
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=[*RESERVED_ATTRS, "color_message"])  # uvicorn's ANSI copy of the message


def wants_json(log_format: str, stream: IO[str]) -> bool:
    if log_format in ("json", "text"):
        return log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def configure_logging(log_format: str = "auto", level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one on ``stream`` (stderr) in the chosen format."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter() if wants_json(log_format, stream) else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RunContextFilter())
    handler.addFilter(SecretURLFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
