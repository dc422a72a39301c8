"""Redaction of secret values in run data before it is stored, published or logged.

A ``Redactor`` belongs to one run (and the sub-workflow runs it calls). The vault adds every secret
value it opens for the run; the run loop passes what it stores and publishes — node run rows (input,
output, error, logs), events, execution changes, the execution's output and error — through
``redact``, which replaces each occurrence of a secret inside a string (dict keys included) with
``"[redacted]"``.

Only exact occurrences are recognised: a secret the node transformed (base64, split, reversed,
percent-encoded) is not. Values shorter than ``MIN_SECRET_CHARS`` are not registered (they would
turn ordinary words and numbers into "[redacted]").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from engine.store import Transition

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4


class Redactor:
    """The secret values of one run, and ``redact`` for anything JSON-like that may carry them."""

    __slots__ = ("_secrets", "_text", "_json")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._text: re.Pattern[str] | None = None
        self._json: re.Pattern[bytes] | None = None
        self.add(*secrets)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:  # never the values
        return f"Redactor({len(self._secrets)} secret values)"

    def add(self, *values: Any) -> None:
        """Register secret values: strings of at least ``MIN_SECRET_CHARS`` characters; the strings
        inside dicts and lists are walked (a credential's secret fields); anything else is ignored."""
        new = {v for v in _strings(values) if len(v) >= MIN_SECRET_CHARS} - self._secrets
        if not new:
            return
        self._secrets |= new
        ordered = sorted(self._secrets, key=len, reverse=True)  # longest first: a secret inside another
        self._text = re.compile("|".join(map(re.escape, ordered)))
        escaped = {msgspec.json.encode(s)[1:-1] for s in ordered}  # how each looks inside encoded JSON
        self._json = re.compile(b"|".join(re.escape(e) for e in sorted(escaped, key=len, reverse=True)))

    def redact(self, value: Any) -> Any:
        """``value`` with every secret occurrence replaced; the same object when there is none.

        Containers holding a secret are copied, never changed in place: the items a node passes on
        stay as they were. A JSON encoding of the value is searched first (in C), so a value without
        a secret costs one encode."""
        if self._text is None:
            return value
        if isinstance(value, str):
            return self._text.sub(REDACTED, value)
        if not self._may_hold(value):
            return value
        return self._walk(value)

    def redact_text(self, text: str) -> str:
        return text if self._text is None else self._text.sub(REDACTED, text)

    def _may_hold(self, value: Any) -> bool:
        assert self._json is not None
        try:
            encoded = msgspec.json.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError):
            return True  # not JSON (an object in an error's data): walk it
        return self._json.search(encoded) is not None

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            assert self._text is not None
            return self._text.sub(REDACTED, value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._walk(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        try:  # a struct, a dataclass, a date… in an error's data: as the store would encode it
            return self._walk(msgspec.to_builtins(value))
        except TypeError:
            return value  # not JSON at all: the store could not keep it either


def redact_transition(redactor: Redactor, transition: Transition) -> None:
    """Redact one commit of a run in place, before it is stored and published: the node run rows (the
    run loop's copies: their input, output, error and logs are replaced, never changed in place),
    the events' summaries, the execution changes' errors and the execution's output and error."""
    for record in transition.runs:
        record.input = redactor.redact(record.input)
        record.output = redactor.redact(record.output)
        record.error = redactor.redact(record.error)
        record.logs = redactor.redact(record.logs)
    transition.events[:] = [_struct(redactor, e) for e in transition.events]
    transition.changes[:] = [_struct(redactor, c) for c in transition.changes]
    state = transition.execution
    if state is not None:
        state.output, state.error = redactor.redact(state.output), redactor.redact(state.error)


def _struct(redactor: Redactor, struct: Any) -> Any:
    """An event or execution change with its free-text fields redacted (the same object if clean)."""
    changes = {}
    for name in _TEXT_FIELDS:
        value = getattr(struct, name, None)
        if isinstance(value, str) and (clean := redactor.redact_text(value)) != value:
            changes[name] = clean
    return msgspec.structs.replace(struct, **changes) if changes else struct


_TEXT_FIELDS = ("summary", "error", "node_name", "node", "failed_node", "workflow_name")
"""Strings of ``Event`` and ``ExecutionChange`` that can carry run data (the rest are ids, statuses, times)."""


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from _strings(value.values())
        elif isinstance(value, (list, tuple, set)):
            yield from _strings(value)
