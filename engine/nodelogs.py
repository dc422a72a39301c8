"""What a node logs through ``ctx.logger`` during one attempt, kept with its node run.

Each attempt gets its own logger (not registered with ``logging``, so nothing accumulates) whose one
handler keeps the records as small dicts — ``{"at": epoch seconds, "level": "INFO", "message": …}`` —
and forwards them to the process logger ``patchwire.node`` (with ``execution_id``, ``node_id`` and
``attempt`` on the record) when that logger is enabled for their level. The list is stored on the
node run in the same commit as the attempt's outcome (engine/store.py ``NodeRunRecord.logs``).

Bounded per attempt: at most ``MAX_RECORDS`` records and ``MAX_TOTAL_CHARS`` characters of
messages, each message cut at ``MAX_MESSAGE_CHARS``. Past a limit, one last entry says how many
records were not kept, so a chatty node never bloats its row.

With a run's ``Redactor`` holding secrets, a record whose text holds one is rewritten before it is
kept or forwarded: its message (and formatted exception) with "[redacted]" in place of the secret.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.credentials.redaction import Redactor

MAX_RECORDS = 200
MAX_MESSAGE_CHARS = 4000
MAX_TOTAL_CHARS = 64_000
PROCESS_LOGGER = "patchwire.node"

_formatter = logging.Formatter()


class NodeLogs:
    """The records of one node attempt; ``entries`` is the list stored with its node run.

    Made for every attempt, so it is cheap: no ``logging.Handler`` (each takes a lock and registers a
    weak reference under logging's module lock) — the attempt's logger hands its records straight to
    ``emit``, and skips the caller lookup (no file or line is kept)."""

    def __init__(self, execution_id: int, node_id: str, node_name: str, attempt: int, *,
                 redactor: Redactor | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self._redactor = redactor
        self._ids = {"execution_id": execution_id, "node_id": node_id, "node_name": node_name, "attempt": attempt}
        self._chars = 0
        self._dropped: dict[str, Any] | None = None
        self.logger: logging.Logger = _AttemptLogger(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self._redactor:
            _redact(record, self._redactor)
        self._forward(record)
        message = _message(record)
        if self._dropped is not None or len(self.entries) >= MAX_RECORDS or self._chars + len(message) > MAX_TOTAL_CHARS:
            self._drop()
            return
        self._chars += len(message)
        self.entries.append({"at": round(record.created, 6), "level": record.levelname, "message": message})

    def _drop(self) -> None:
        if self._dropped is None:
            self._dropped = {"at": None, "level": "WARNING", "message": "", "dropped": 0}
            self.entries.append(self._dropped)
        self._dropped["dropped"] += 1
        count = self._dropped["dropped"]
        self._dropped["message"] = (f"… {count} later record{'s' if count != 1 else ''} not kept (a node run keeps "
                                    f"{MAX_RECORDS} records and {MAX_TOTAL_CHARS:,} characters)")

    def _forward(self, record: logging.LogRecord) -> None:
        process = logging.getLogger(PROCESS_LOGGER)
        if process.isEnabledFor(record.levelno):
            for key, value in self._ids.items():
                setattr(record, key, value)
            process.handle(record)


def _redact(record: logging.LogRecord, redactor: Redactor) -> None:
    """Rewrite a record whose text holds a secret: the redacted text becomes its whole message (the
    process log's handlers format it again, so no argument or exception of the original is left)."""
    text = _text(record)
    redacted = redactor.redact_text(text)
    if redacted != text:
        record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = redacted, None, None, None, None


def _text(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception as exc:  # a bad format string in node code must not fail the node
        text = f"{record.msg!r} (could not format the arguments: {type(exc).__name__})"
    if record.exc_info:
        text += "\n" + _formatter.formatException(record.exc_info)
    return text


def _message(record: logging.LogRecord) -> str:
    text = _text(record)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"… ({len(text) - MAX_MESSAGE_CHARS:,} more characters)"
    return text


class _AttemptLogger(logging.Logger):
    """``ctx.logger`` of one attempt: not registered with ``logging`` (nothing accumulates), no handlers."""

    def __init__(self, logs: NodeLogs) -> None:
        super().__init__(PROCESS_LOGGER, logging.DEBUG)
        self.propagate = False  # forwarded by ``NodeLogs.emit`` instead, only at the levels the process logs
        self._logs = logs

    def handle(self, record: logging.LogRecord) -> None:
        self._logs.emit(record)

    def findCaller(self, stack_info: bool = False, stacklevel: int = 1) -> tuple[str, int, str, str | None]:  # noqa: N802
        return "(node)", 0, "(node)", None
