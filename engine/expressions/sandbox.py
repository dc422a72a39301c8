"""Jinja's immutable sandbox, taught the budget (engine/expressions/budget.py).

What it adds to ``ImmutableSandboxedEnvironment``, all checked before the operation runs:

* operators ``*``, ``**``, ``+``, ``%``: integer sizes, repetition lengths, string sizes, ``%`` widths;
* ``~`` (concatenation), list / tuple / dict literals and every printed value: their printed size;
* every call (functions, methods, macros) and every loop iteration: one step each, and the deadline;
* methods that can make much from little (``ljust``, ``center``, ``zfill``, ``expandtabs``, ``replace``,
  ``join``, ``translate``, ``to_bytes``, ``dict.fromkeys``, ``strftime``, ``format``): their result size;
* the filters that can (``center``, ``indent``, ``wordwrap``, ``format``, ``join``, ``replace``,
  ``batch``, ``slice``, ``tojson``), and the globals: ``range`` is bounded, ``lipsum`` is gone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

from engine.expressions import budget
from engine.expressions.budget import (
    bounded_list,
    check_int,
    check_items,
    check_size,
    check_value,
    current,
    exceeded,
    power_bits,
    printed_size,
)

MAX_JSON_INDENT = 16

# ---------------------------------------------------------------------------------------------
# Widths in format strings.

_PERCENT_SPEC = re.compile(r"%(\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def _percent_widths(template: str, values: Any) -> int:
    """The sum of the widths and precisions a ``%`` formatting asks for (``*`` takes them from ``values``)."""
    positional = iter(values if isinstance(values, tuple) else (values,))
    total = 0
    for spec in _PERCENT_SPEC.finditer(template):
        keyed, width, precision, conversion = spec.groups()
        if conversion == "%":
            continue
        for number in (width, precision):
            if number == "*":
                number = next(positional, 0)
            total += int(number) if isinstance(number, (int, str)) and str(number).isdigit() else 0
        if not keyed:
            next(positional, None)
    return total


def check_percent(template: Any, values: Any) -> None:
    """``template % values`` for strings: widths and the printed size of the result."""
    if not isinstance(template, (str, bytes)):
        return
    text = template if isinstance(template, str) else template.decode("latin-1")
    widths = _percent_widths(text, values)
    check_items(widths, "format width")
    limit = current().budget.max_value_chars
    if len(text) + widths + printed_size(values, limit) > limit:
        raise exceeded(f"formatted string too large (over {limit:,} characters)")


class _BudgetedFormatting:
    """``str.format``: each field's width and precision count against the budget."""

    _widths = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._widths += sum(int(digits) for digits in re.findall(r"\d+", format_spec))
        check_items(self._widths, "format width")
        check_value(value)
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _Formatter(_BudgetedFormatting, SandboxedFormatter):
    pass


class _EscapeFormatter(_BudgetedFormatting, SandboxedEscapeFormatter):
    pass


# ---------------------------------------------------------------------------------------------
# Methods that can make much from little, guarded by name (the receiver's type is checked too).

Guard = Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]


def _text(receiver: Any) -> bool:
    return isinstance(receiver, (str, bytes))


def _padding(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _text(receiver) and args:
        check_items(args[0], "padding width")


def _expandtabs(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    size = args[0] if args else kwargs.get("tabsize", 8)
    if _text(receiver) and isinstance(size, int):
        tab = "\t" if isinstance(receiver, str) else b"\t"
        check_size(len(receiver) + receiver.count(tab) * size, "expanded string too large")  # type: ignore[arg-type]


def _replace(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _text(receiver) and len(args) >= 2:
        check_size(replaced_size(receiver, args[0], args[1]), "replaced string too large")


def replaced_size(text: Any, old: Any, new: Any) -> int:
    """The most characters ``text.replace(old, new)`` can have."""
    if not (hasattr(old, "__len__") and hasattr(new, "__len__")):
        return len(text)
    matches = len(text) + 1 if len(old) == 0 else len(text) // len(old)
    return len(text) + matches * len(new)


def _join(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    if not (_text(receiver) and len(args) == 1):
        return None
    parts = bounded_list(args[0], "items to join")
    check_size(joined_size(parts, len(receiver)), "joined string too large")
    return (parts,)


def joined_size(parts: list[Any], separator: int) -> int:
    limit = current().budget.max_value_chars
    return sum(printed_size(part, limit) for part in parts) + separator * max(len(parts) - 1, 0)


def _translate(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    table = args[0] if args else None
    if isinstance(receiver, str) and isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        check_size(len(receiver) * longest, "translated string too large")


def _to_bytes(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if isinstance(receiver, int):
        check_size(args[0] if args else kwargs.get("length", 1), "bytes too long")


def _fromkeys(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    if not (receiver is dict or isinstance(receiver, dict)) or not args:
        return None
    keys = bounded_list(args[0], "dict keys")
    limit = current().budget.max_value_chars
    value_size = printed_size(args[1], limit) if len(args) > 1 else 4
    check_size(len(keys) * value_size + printed_size(keys, limit), "dict too large")
    return (keys, *args[1:])


def _strftime(receiver: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and isinstance(args[0], str):
        check_items(sum(int(digits) for digits in re.findall(r"\d+", args[0])), "date format width")


_METHOD_GUARDS: dict[str, Guard] = {
    "ljust": _padding, "rjust": _padding, "center": _padding, "zfill": _padding, "expandtabs": _expandtabs,
    "replace": _replace, "join": _join, "translate": _translate, "to_bytes": _to_bytes, "fromkeys": _fromkeys,
    "strftime": _strftime,
}


# ---------------------------------------------------------------------------------------------
# Operators.


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an intercepted operator whose result would exceed the budget, before it runs."""
    check_int(left)
    check_int(right)
    if operator == "**":
        limit = current().budget.max_int_bits
        if power_bits(left, right) > limit:
            raise exceeded(f"power result too large (over {limit:,} bits)")
    elif operator == "*":
        _check_product(left, right)
    elif operator == "+" and not isinstance(left, (int, float)):
        limit = current().budget.max_value_chars
        check_size(printed_size(left, limit) + printed_size(right, limit), "concatenation too large")
    elif operator == "%":
        check_percent(left, right)


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        limit = current().budget.max_int_bits
        if left.bit_length() + right.bit_length() > limit:
            raise exceeded(f"product too large (over {limit:,} bits)")
        return
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(count, int) and count > 0:
            check_items(len(sequence) * count, "repetition")
            limit = current().budget.max_value_chars
            check_size(printed_size(sequence, limit) * count, "repetition too large")


# ---------------------------------------------------------------------------------------------
# Code generation: loops count their iterations; ``~`` and literals are checked.


class BudgetedCodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None,
                               lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "store":
            super().visit_Tuple(node, frame)
        else:
            self._checked(super().visit_Tuple, node, frame)

    def _checked(self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame) -> None:
        self.write("environment.checked_value(")
        visit(node, frame)
        self.write(")")


def checked_concat(values: Iterable[Any]) -> str:
    """``a ~ b ~ …``: every operand and the joined string within ``max_value_chars``."""
    current().step()
    texts = [value if isinstance(value, str) else str(check_value(value)) for value in values]
    check_size(sum(map(len, texts)), "concatenation too large")
    return "".join(texts)


def checked_output(pieces: Iterable[str]) -> str:
    """What a template (or a macro, a ``{% set %}`` block) renders, within ``max_output_chars``."""
    limit, total, kept = current().budget.max_output_chars, 0, []
    for piece in pieces:
        total += len(piece)
        if total > limit:
            raise exceeded(f"output too long (over {limit:,} characters)")
        kept.append(piece)
    return "".join(kept)


def bounded_range(*args: Any) -> range:
    """``range`` with at most ``max_items`` numbers."""
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = current().budget.max_items + 1
    check_items(length, "range length")
    return numbers


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The environment every expression is compiled in (one per process)."""

    code_generator_class = BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(checked_output)  # type: ignore[assignment]
    counted = staticmethod(budget.counted)
    checked_value = staticmethod(check_value)
    checked_concat = staticmethod(checked_concat)

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=check_value)
        self.globals.pop("lipsum", None)
        self.globals["range"] = bounded_range
        self.filters.update(guarded_filters(FILTERS))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        current().step()
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        meter = current()
        meter.step()
        receiver = getattr(obj, "__self__", None)
        if isinstance(receiver, (str, bytes, list, tuple, dict)):
            meter.charge(len(receiver))  # a method reads its receiver: text and container methods are O(n)
        guard = _METHOD_GUARDS.get(getattr(obj, "__name__", ""))
        if guard is not None and receiver is not None:
            args = guard(receiver, args, kwargs) or args
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """As Jinja's, with a formatter that counts widths (``'{:>100000000}'.format(1)`` is refused)."""
        if super().wrap_str_format(value) is None:
            return None
        receiver: str = value.__self__
        formatter = _EscapeFormatter(self, escape=receiver.escape) if isinstance(receiver, Markup) else _Formatter(self)
        map_form = value.__name__ == "format_map"

        def budgeted_format(*args: Any, **kwargs: Any) -> str:
            if map_form:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument and no keywords")
                args, kwargs = (), args[0]
            formatter._widths = 0  # per call: a stored `.format` may be called again
            return type(receiver)(formatter.vformat(receiver, args, kwargs))

        return functools.update_wrapper(budgeted_format, value)


# ---------------------------------------------------------------------------------------------
# Filters.


def _guarded(original: Callable[..., Any], check: Callable[..., Any] | None) -> Callable[..., Any]:
    """``original`` charging the size of its input as work, with ``check`` run first on its arguments (after
    the context Jinja passes, if any)."""
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0
    measure = printed_size if original.__name__ in _SERIALIZING else _length

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        meter = current()
        if len(args) > skip:
            if isinstance(args[skip], (list, tuple, dict, set)):
                meter.steps += len(args[skip])  # a filter over a container does Python work per item
            meter.charge(measure(args[skip], meter.budget.max_value_chars))
        meter.step()
        replaced = check(*args[skip:], **kwargs) if check is not None else None
        if replaced is not None:
            args = (*args[:skip], *replaced)
        return original(*args, **kwargs)

    return guarded


_SERIALIZING = frozenset({"do_tojson", "do_pprint", "soft_str", "escape", "do_forceescape", "do_xmlattr",
                          "do_urlencode", "jsonpath_filter"})
"""Filters (by function name) that read all of a nested value: charged its printed size, the others its length."""


def _length(value: Any, limit: int) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set)) else 1


def _center_filter(value: Any, width: Any = 80) -> None:
    check_items(width, "padding width")


def _indent_filter(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    text = str(check_value(value))
    prefix = len(width) if isinstance(width, str) else width
    check_items(prefix, "indent width")
    check_size(len(text) + (text.count("\n") + 1) * prefix, "indented string too large")


def _wordwrap_filter(value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None,
                     **kwargs: Any) -> None:
    text = str(check_value(value))
    check_size(len(text) + (len(text) + 1) * len(wrapstring or "\n"), "wrapped string too large")


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), kwargs or args)


def _join_filter(value: Any, d: Any = "", attribute: Any = None) -> tuple[Any, ...]:
    parts = bounded_list(value, "items to join")
    check_size(joined_size(parts, len(str(d))), "joined string too large")
    return (parts, d, attribute)


def _replace_filter(value: Any, old: Any, new: Any, count: Any = None) -> None:
    text = str(check_value(value))
    check_size(replaced_size(text, str(old), str(new)), "replaced string too large")


def _batch_filter(value: Any, linecount: Any, fill_with: Any = None) -> None:
    check_items(linecount, "batch size")


def _slice_filter(value: Any, slices: Any, fill_with: Any = None) -> None:
    check_items(slices, "slice count")


def _tojson_filter(value: Any, indent: Any = None) -> None:
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise exceeded(f"tojson indent too large (limit {MAX_JSON_INDENT})")


_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _center_filter, "indent": _indent_filter, "wordwrap": _wordwrap_filter, "format": _format_filter,
    "join": _join_filter, "replace": _replace_filter, "batch": _batch_filter, "slice": _slice_filter,
    "tojson": _tojson_filter,
}


_CONSTANT_TIME = frozenset({"length", "count", "first", "last", "default", "d", "attr", "random", "abs", "safe",
                            "round", "int", "float", "filesizeformat"})
"""Filters that do not read their whole input: they charge no work (they still count as a step)."""


def guarded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter counted as a step; those that read their input charge its size; the ones that can make
    much from little are checked first."""
    guarded = {}
    for name, original in filters.items():
        guarded[name] = _guarded(original, _FILTER_CHECKS.get(name))
        if name in _CONSTANT_TIME:
            guarded[name] = _stepped(original)
    return guarded


def _stepped(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def stepped(*args: Any, **kwargs: Any) -> Any:
        current().step()
        return original(*args, **kwargs)

    return stepped
