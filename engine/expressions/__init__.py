"""``{{ … }}`` expressions, evaluated in Jinja2's immutable sandbox under a budget.

A string that is exactly one expression (``"{{ item.price * 2 }}"``) yields the native
value; any other string containing ``{{`` renders to a string. The sandbox refuses access to
internals (``__class__``, ``mro``, …); every evaluation runs under a ``Budget`` checked before the
work (sizes, steps, time: ``budget.py``, ``sandbox.py``), and ``Expressions.render`` evaluates anything
beyond a plain lookup off the event loop (``offloop.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, Undefined, nodes
from jinja2.sandbox import SecurityError
from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

from engine.errors import ExpressionBudgetExceeded, ExpressionError
from engine.expressions.budget import DEFAULT_BUDGET, Budget, Meter, check_value, exceeded, start, stop
from engine.expressions.offloop import RUNS, EvaluationPool
from engine.expressions.sandbox import BudgetedSandbox, guarded_filters

MAX_RESULT_CHARS = DEFAULT_BUDGET.max_output_chars
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_env = BudgetedSandbox()


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


def evaluate(source: str, variables: dict[str, Any], *, field: str = "", budget: Budget = DEFAULT_BUDGET,
             deadline: float | None = None) -> Any:
    """Evaluate one string under ``budget`` (``deadline``: ``time.monotonic()`` by which the caller gives up);
    non-expression strings come back unchanged."""
    if not is_expression(source):
        return source
    token = start(Meter(budget, deadline))
    try:
        result = _run(source, variables)
    except ExpressionBudgetExceeded as exc:
        raise ExpressionBudgetExceeded(str(exc), expression=source, field=field) from None
    except SecurityError as exc:
        raise ExpressionError(f"Not allowed: {exc}", expression=source, field=field) from None
    except Exception as exc:  # any failure of user code is data on the node run, named by field
        raise ExpressionError(f"{type(exc).__name__}: {exc}", expression=source, field=field) from None
    finally:
        stop(token)
    if isinstance(result, Undefined):
        raise ExpressionError(f"Undefined: {result._undefined_message}", expression=source, field=field)
    return result


def _run(source: str, variables: dict[str, Any]) -> Any:
    compiled = _compile(source)
    if hasattr(compiled, "render"):
        return compiled.render(**variables)
    return check_value(compiled(**variables), "result too large")


def render_value(value: Any, variables: dict[str, Any], *, field: str = "", budget: Budget = DEFAULT_BUDGET,
                 deadline: float | None = None) -> Any:
    """Evaluate every expression string inside a JSON-like value."""
    if isinstance(value, str):
        return evaluate(value, variables, field=field, budget=budget, deadline=deadline)
    if isinstance(value, list):
        return [render_value(v, variables, field=field, budget=budget, deadline=deadline) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables, field=field, budget=budget, deadline=deadline) for k, v in value.items()}
    return value


_LOOKUP = (nodes.Output, nodes.TemplateData, nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Const)


@lru_cache(maxsize=4096)
def is_lookup(source: str) -> bool:
    """Whether a string only looks values up (``{{ item.name }}``, ``Hi {{ trigger["who"] }}``): no loop,
    filter, call or operator, so evaluating it costs next to nothing and it may run on the event loop."""
    if not is_expression(source):
        return True
    try:
        tree = _env.parse(source)
    except TemplateError:
        return True  # it fails at once when compiled
    return all(isinstance(node, _LOOKUP) for node in tree.find_all(nodes.Node))


def only_lookups(value: Any) -> bool:
    if isinstance(value, str):
        return is_lookup(value)
    if isinstance(value, list):
        return all(only_lookups(v) for v in value)
    if isinstance(value, dict):
        return all(only_lookups(v) for v in value.values())
    return True


class Expressions:
    """The expression evaluator a node gets on its context.

    Variables: ``item`` (the item being processed), ``items`` (all of the node's input items),
    ``trigger`` (the execution's input), ``nodes["Name"]`` (the output items of an earlier node,
    by name), ``now`` (UTC). Filter: ``value | jsonpath("$.a[*].b")`` → list of matches.

    Each evaluation runs under ``budget``; ``deadline`` (``time.monotonic()``) is when the caller gives up
    (the node's time limit), so an evaluation left running in the pool stops soon after it.
    """

    def __init__(self, trigger_input: dict[str, Any], *, items: list[dict[str, Any]] | None = None,
                 nodes: dict[str, list[dict[str, Any]]] | None = None, deadline: float | None = None,
                 budget: Budget = DEFAULT_BUDGET, pool: EvaluationPool = RUNS) -> None:
        self._base = {"trigger": trigger_input, "items": items or [], "nodes": nodes or {}}
        self.deadline, self.budget, self.pool = deadline, budget, pool

    async def render(self, value: Any, *, item: dict[str, Any], field: str) -> Any:
        """``value`` with its expressions evaluated: lookups here, anything more in the pool."""
        variables = {**self._base, "item": item, "now": datetime.now(UTC)}
        if only_lookups(value):
            return render_value(value, variables, field=field, budget=self.budget, deadline=self.deadline)
        return await self.pool.run(render_value, value, variables, field=field, budget=self.budget,
                                   deadline=self.deadline)


@lru_cache(maxsize=256)
def _jsonpath(path: str) -> Any:
    try:
        return jsonpath_parse(path)
    except (JsonPathParserError, JsonPathLexerError, ValueError) as exc:
        raise ValueError(f"invalid JSONPath {path!r}: {exc}") from None


MAX_JSONPATH_CHARS = 1_000
"""A JSONPath is parsed in Python (PLY), one long uninterruptible call: its length is bounded first."""


def jsonpath_filter(value: Any, path: str) -> list[Any]:
    """All matches of a JSONPath (jsonpath-ng syntax, e.g. ``$.orders[*].id``) in ``value``."""
    if isinstance(path, str) and len(path) > MAX_JSONPATH_CHARS:
        raise exceeded(f"JSONPath too long (limit {MAX_JSONPATH_CHARS:,} characters)")
    return [match.value for match in _jsonpath(path).find(value)]


_env.filters.update(guarded_filters({"jsonpath": jsonpath_filter}))


def sandbox_names() -> tuple[dict[str, Any], dict[str, Any]]:
    """The filters and the global functions an expression can use, by name (what the editor's
    autocomplete offers: webapp/testing/completions.py)."""
    return dict(_env.filters), {name: value for name, value in _env.globals.items() if callable(value)}


