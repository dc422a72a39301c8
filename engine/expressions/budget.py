"""The budget of one expression evaluation: limits checked *before* the work they bound is done.

A big-int power or a huge string operation runs inside one C call that holds the GIL, so no thread,
timer or cancellation can stop it once started: the sizes are estimated from the operands first and
an operation whose result would exceed a limit is refused. Work spread over many small steps (loops,
calls, operators) is counted, and the count and the evaluation's deadline are checked at every step.

Every refusal is an ``ExpressionBudgetExceeded`` naming the limit that applied; it is never retried
(the same expression on the same data exceeds it again).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from engine.errors import ExpressionBudgetExceeded


@dataclass(frozen=True)
class Budget:
    """The limits of one evaluation (docs/security.md, "Expressions")."""

    max_int_bits: int = 10_000
    """Integers made by ``*`` and ``**`` (about 3,000 digits; Python refuses to print 4,300)."""
    max_items: int = 100_000
    """Repetition (``'ab' * n``, ``[x] * n``), ``range``, padding and format widths, ``batch`` / ``slice`` sizes."""
    max_value_chars: int = 1_000_000
    """Any string, list or dict built by the expression, measured as printed (estimated, shared parts counted each time)."""
    max_output_chars: int = 1_000_000
    """What a template renders, and the result handed back."""
    max_work: int = 2_000_000
    """Characters and items made or read by operators, methods, filters and output, summed over the evaluation."""
    max_steps: int = 100_000
    """Loop iterations, calls, operators and the items of containers given to filters, counted across nested
    loops and macros."""
    max_seconds: float = 5.0
    """Wall time of one evaluation, checked at every step (the node's own time limit may be shorter)."""


DEFAULT_BUDGET = Budget()


def exceeded(what: str) -> ExpressionBudgetExceeded:
    return ExpressionBudgetExceeded(f"expression exceeded its budget: {what}")


class Meter:
    """The running account of one evaluation: its steps and its deadline (``time.monotonic``)."""

    __slots__ = ("budget", "deadline", "steps", "timed_by_caller", "work")

    def __init__(self, budget: Budget, deadline: float | None = None) -> None:
        own = time.monotonic() + budget.max_seconds
        self.budget, self.steps, self.work = budget, 0, 0
        self.timed_by_caller = deadline is not None and deadline < own
        self.deadline = deadline if self.timed_by_caller and deadline is not None else own

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.budget.max_steps:
            raise exceeded(f"too many steps (loop iterations, calls, operators and items filtered; "
                           f"limit {self.budget.max_steps:,})")
        if time.monotonic() > self.deadline:
            if self.timed_by_caller:
                raise exceeded("its time limit was reached")
            raise exceeded(f"ran longer than {self.budget.max_seconds:g} s")


    def charge(self, size: int) -> None:
        """Count ``size`` characters or items about to be made or read."""
        self.work += size
        if self.work > self.budget.max_work:
            raise exceeded(f"too much work (characters and items made or read; limit {self.budget.max_work:,})")


_meter: ContextVar[Meter | None] = ContextVar("expression_meter", default=None)


def current() -> Meter:
    """The meter of the evaluation in progress; outside one (constant folding at compile time) a fresh one."""
    return _meter.get() or Meter(DEFAULT_BUDGET)


def start(meter: Meter) -> Any:
    return _meter.set(meter)


def stop(token: Any) -> None:
    _meter.reset(token)


def bounded_list(iterable: Iterable[Any], what: str) -> list[Any]:
    """The items of ``iterable`` as a list, refused past ``max_items`` (without reading further)."""
    limit = current().budget.max_items
    items = list(itertools.islice(iterable, limit + 1))
    check_items(len(items), what)
    return items


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's iterable, one step per iteration."""
    meter = current()
    for value in iterable:
        meter.step()
        yield value


# ---------------------------------------------------------------------------------------------
# Sizes, estimated without building anything.


def printed_size(value: Any, limit: int) -> int:
    """Characters ``value`` takes when printed (str or JSON), stopping as soon as it passes ``limit``.

    Walks containers (a list repeated by reference is counted once per reference: that is what
    printing it would cost)."""
    total, stack = 0, [value]
    while stack:
        current_value = stack.pop()
        total += _own_size(current_value)
        if isinstance(current_value, dict):
            total += len(current_value)
            stack.extend(current_value.keys())
            stack.extend(current_value.values())
        elif isinstance(current_value, (list, tuple, set, frozenset)):
            total += len(current_value)
            if total <= limit:
                stack.extend(current_value)
        if total > limit:
            return total
    return total


def _own_size(value: Any) -> int:
    if isinstance(value, (str, bytes)):
        return len(value) + 2
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 1
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return 2
    return 8


def check_value(value: Any, what: str = "value too large") -> Any:
    """``value`` if it is within ``max_value_chars`` when printed, else the budget error."""
    limit = current().budget.max_value_chars
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, (int, float, bool)) or value is None:
        return value
    else:
        size = printed_size(value, limit)
    if size > limit:
        raise exceeded(f"{what} (over {limit:,} characters)")
    current().charge(size)
    return value


def check_size(size: Any, what: str) -> None:
    """A result of ``size`` characters (estimated) about to be made: within ``max_value_chars``, and charged."""
    if not isinstance(size, int):
        return
    limit = current().budget.max_value_chars
    if size > limit:
        raise exceeded(f"{what} (over {limit:,} characters)")
    current().charge(size)


def check_int(value: Any) -> None:
    limit = current().budget.max_int_bits
    if isinstance(value, int) and value.bit_length() > limit:
        raise exceeded(f"integer too large (over {limit:,} bits)")


def check_items(count: Any, what: str) -> None:
    """A count of items or characters to be made (a width, a repetition, a range)."""
    limit = current().budget.max_items
    if isinstance(count, int) and count > limit:
        raise exceeded(f"{what} too large (limit {limit:,})")


def power_bits(base: Any, exponent: Any) -> float:
    """Bits of ``base ** exponent`` for ints (0 when the result is a float or cannot grow)."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0 or abs(base) < 2:
        return 0.0
    return math.log2(abs(base)) * exponent
