"""``{{ … }}`` expressions, evaluated in Jinja2's immutable sandbox.

A string that is exactly one expression (``"{{ item.price * 2 }}"``) yields the native
value; any other string containing ``{{`` renders to a string. The sandbox refuses access to
internals (``__class__``, ``mro``, …) and the result size is bounded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

from engine.errors import ExpressionError

MAX_RESULT_CHARS = 1_000_000
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


MAX_SEQUENCE_PRODUCT = 100_000
MAX_EXPONENT = 1_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus bounds on ``*`` and ``**``, which it does not intercept:
    ``'a' * 10**10`` would allocate gigabytes and ``9**9**9`` would spin a core."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent larger than {MAX_EXPONENT}")
        if operator == "*" and _sequence_too_long(left, right):
            raise SecurityError(f"repetition longer than {MAX_SEQUENCE_PRODUCT:,}")
        return super().call_binop(context, operator, left, right)


def _sequence_too_long(left: Any, right: Any) -> bool:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_SEQUENCE_PRODUCT:
            return True
    return False


_env = _Sandbox(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=1024)
def _compile_expression(source: str) -> Any:
    return _env.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _compile_template(source: str) -> Any:
    return _env.from_string(source)


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def check_syntax(source: str) -> str | None:
    """The syntax error of an expression string, or None when it parses."""
    if not is_expression(source):
        return None
    try:
        _compile(source)
    except TemplateError as exc:
        return exc.message or str(exc)
    return None


def _compile(source: str) -> Any:
    single = _SINGLE.match(source)
    if single and "{{" not in single["expr"] and "}}" not in single["expr"]:
        return _compile_expression(single["expr"])
    return _compile_template(source)


def evaluate(source: str, variables: dict[str, Any], *, field: str = "") -> Any:
    """Evaluate one string; non-expression strings come back unchanged."""
    if not is_expression(source):
        return source
    try:
        compiled = _compile(source)
        result = compiled(**variables) if not hasattr(compiled, "render") else compiled.render(**variables)
    except SecurityError as exc:
        raise ExpressionError(f"Not allowed: {exc}", expression=source, field=field) from None
    except Exception as exc:  # any failure of user code is data on the node run, named by field
        raise ExpressionError(f"{type(exc).__name__}: {exc}", expression=source, field=field) from None
    if isinstance(result, Undefined):
        raise ExpressionError(f"Undefined: {result._undefined_message}", expression=source, field=field)
    if isinstance(result, str) and len(result) > MAX_RESULT_CHARS:
        raise ExpressionError(f"Result longer than {MAX_RESULT_CHARS:,} characters", expression=source, field=field)
    return result


def render_value(value: Any, variables: dict[str, Any], *, field: str = "") -> Any:
    """Evaluate every expression string inside a JSON-like value."""
    if isinstance(value, str):
        return evaluate(value, variables, field=field)
    if isinstance(value, list):
        return [render_value(v, variables, field=field) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables, field=field) for k, v in value.items()}
    return value


class Expressions:
    """The expression evaluator a node gets on its context.

    Variables: ``item`` (the item being processed), ``items`` (all of the node's input items),
    ``trigger`` (the execution's input), ``nodes["Name"]`` (the output items of an earlier node,
    by name), ``now`` (UTC). Filter: ``value | jsonpath("$.a[*].b")`` → list of matches.
    """

    def __init__(self, trigger_input: dict[str, Any], *, items: list[dict[str, Any]] | None = None,
                 nodes: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self._base = {"trigger": trigger_input, "items": items or [], "nodes": nodes or {}}

    def render(self, value: Any, *, item: dict[str, Any], field: str) -> Any:
        variables = {**self._base, "item": item, "now": datetime.now(UTC)}
        return render_value(value, variables, field=field)


@lru_cache(maxsize=256)
def _jsonpath(path: str) -> Any:
    try:
        return jsonpath_parse(path)
    except (JsonPathParserError, JsonPathLexerError, ValueError) as exc:
        raise ValueError(f"invalid JSONPath {path!r}: {exc}") from None


def jsonpath_filter(value: Any, path: str) -> list[Any]:
    """All matches of a JSONPath (jsonpath-ng syntax, e.g. ``$.orders[*].id``) in ``value``."""
    return [match.value for match in _jsonpath(path).find(value)]


_env.filters["jsonpath"] = jsonpath_filter


