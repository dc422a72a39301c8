"""Converting a Set field's value to its declared type, as n8n's Set (v3.3+) converts an assignment.

``string``: text as is, anything else as JSON text; ``number``: numbers, or text that is a numeric
literal; ``boolean``: booleans, ``"true"``/``"false"`` (any case), ``0``/``1``; ``array`` / ``object``:
a list / an object, or JSON text of one. Anything else raises ``ValueError`` with the reason.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

FieldType = Literal["string", "number", "boolean", "array", "object"]
FIELD_TYPES: tuple[str, ...] = ("string", "number", "boolean", "array", "object")


def convert(value: Any, field_type: str) -> Any:
    """``value`` as ``field_type``; ``ValueError`` saying why it cannot be."""
    return _CONVERTERS[field_type](value)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "…"


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise ValueError(f"{_show(value)} is not a number")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int | float | str) and str(value).strip() in ("0", "1", "0.0", "1.0"):
        return float(str(value).strip()) == 1
    raise ValueError(f"{_show(value)} is not a boolean (true, false, 1 or 0)")


def _parsed(value: Any, kind: type, noun: str) -> Any:
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError(f"{_show(value)} is not {noun} (not valid JSON)") from None
        if isinstance(parsed, kind):
            return parsed
    raise ValueError(f"{_show(value)} is not {noun}")


_CONVERTERS = {
    "string": _string,
    "number": _number,
    "boolean": _boolean,
    "array": lambda value: _parsed(value, list, "an array"),
    "object": lambda value: _parsed(value, dict, "an object"),
}
