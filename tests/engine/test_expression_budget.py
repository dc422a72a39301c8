"""The expression budget: every way an expression can make much from little is refused before the work,
with an error that names the limit, quickly; ordinary expressions are unaffected."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from engine.errors import ExpressionBudgetExceeded
from engine.expressions import evaluate
from engine.expressions.budget import Budget

VARS = {"item": {"n": 3, "name": "Ada", "tags": ["a", "b"]}, "items": [], "nodes": {}, "trigger": {},
        "now": datetime(2026, 1, 2, tzinfo=UTC)}

HOSTILE = [
    # powers of powers, big products
    ("{{ (9**999)**999 }}", "power result too large (over 10,000 bits)"),
    ("{{ 10**1000**1000 }}", "power result too large"),
    ("{{ (2**5000) * (2**5000) * (2**5000) }}", "product too large (over 10,000 bits)"),
    # repetition, padding and format widths
    ("{{ 'ab' * 10**6 }}", "repetition too large (limit 100,000)"),
    ("{{ [item] * 100000 }}", "repetition too large (over 1,000,000 characters)"),
    ("{{ '%100000000d' % 1 }}", "format width too large (limit 100,000)"),
    ("{{ '%*d' % (100000000, 1) }}", "format width too large"),
    ("{{ '%.100000000f' % 1.5 }}", "format width too large"),
    ("{{ ('%99999d' * 50) % (range(50) | list | first,) * 50 }}", "format width too large"),
    ("{{ '{:>100000000}'.format(1) }}", "format width too large"),
    ("{{ '{:{w}}'.format(1, w=100000000) }}", "format width too large"),
    ("{{ '{x:>99999}{x:>99999}'.format_map({'x': 1}) }}", "format width too large"),
    ("{{ 'x' | center(10**8) }}", "padding width too large"),
    ("{{ 'x'.ljust(10**8) }}", "padding width too large"),
    ("{{ 'x'.rjust(10**8) }}", "padding width too large"),
    ("{{ 'x'.zfill(10**8) }}", "padding width too large"),
    ("{{ 'x'.center(10**8) }}", "padding width too large"),
    ("{{ ('a\\n' * 50000) | indent(1000) }}", "indented string too large"),
    ("{{ ('a ' * 50000) | wordwrap(1, wrapstring='x' * 100) }}", "wrapped string too large"),
    ("{{ ('%099999d' * 20) | format(*range(20)) }}", "format width too large"),
    ("{% set a = ['x' * 100000] * 9 %}{{ '%s %s' % (a, a) }}", "value too large (over 1,000,000 characters)"),
    ("{{ ('\\t' * 1000).expandtabs(10**6) }}", "expanded string too large"),
    ("{{ ('a' * 1000).replace('', 'b' * 10000) }}", "replaced string too large"),
    ("{{ ('a' * 1000) | replace('a', 'b' * 10000) }}", "replaced string too large"),
    ("{{ ('x' * 100000).join(['a'] * 1000) }}", "joined string too large"),
    ("{{ (['x' * 100000] * 9) | join('y' * 100000) }}", "joined string too large"),
    ("{{ ('abc' * 1000).translate({97: 'x' * 100000}) }}", "translated string too large"),
    ("{{ (1).to_bytes(10**9, 'big') }}", "bytes too long"),
    ("{{ dict.fromkeys(range(100000), 'x' * 1000) }}", "dict too large"),
    ("{{ now.strftime('%99999Y' * 100) }}", "date format width too large"),
    ("{{ [1] | tojson(indent=100000) }}", "tojson indent too large (limit 16)"),
    ("{{ item | jsonpath('$' + '.a' * 1000) }}", "JSONPath too long (limit 1,000 characters)"),
    # range, batch, slice
    ("{{ range(10**9) | list }}", "range length too large (limit 100,000)"),
    ("{{ [1] | batch(10**9, 0) | list }}", "batch size too large"),
    ("{{ [1] | slice(10**9) | list }}", "slice count too large"),
    # loops, recursion, doubling, shared references, output
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ 1 }}",
     "too many steps (loop iterations, calls, operators and items filtered; limit 100,000)"),
    ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "too many steps"),
    ("{% set ns = namespace(s='x' * 100000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
     "{{ ns.s | length }}", "concatenation too large (over 1,000,000 characters)"),
    ("{% set ns = namespace(l=['x' * 1000]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"
     "{{ ns.l | length }}", "concatenation too large"),
    ("{% set a = ['x' * 100000] %}{% set a = [a, a] %}{% set a = [a, a] %}{% set a = [a, a] %}{% set a = [a, a] %}"
     "{{ a | string | length }}", "value too large (over 1,000,000 characters)"),
    ("{% set s = 'x' * 1000 %}{% for i in range(2000) %}{{ s }}{% endfor %}",
     "output too long (over 1,000,000 characters)"),
    ("{% set s = range(100000) | list %}{% for i in range(1000) %}{% set t = s | sort %}{% endfor %}{{ 1 }}",
     "too many steps"),
    ("{% set s = 'x' * 100000 %}{% for i in range(1000) %}{% set t = s | upper %}{% endfor %}{{ 1 }}",
     "too much work (characters and items made or read; limit 2,000,000)"),
]


@pytest.mark.parametrize(("source", "limit"), HOSTILE, ids=[source[:50] for source, _ in HOSTILE])
def test_hostile_expressions_are_refused_naming_the_limit(source: str, limit: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionBudgetExceeded) as refused:
        evaluate(source, dict(VARS), field="f")
    assert time.monotonic() - started < 10.0  # bounded; the slowest (100,000 macro steps) takes about 1 s
    message = str(refused.value)
    assert message.startswith("expression exceeded its budget: ") and limit in message, message
    assert refused.value.field == "f" and refused.value.expression == source


def test_helper_globals_that_make_large_output_are_gone() -> None:
    with pytest.raises(Exception, match="'lipsum' is undefined"):
        evaluate("{{ lipsum(10**6) }}", dict(VARS))


ORDINARY = [
    ("{{ 2 ** 1000 }}", 2**1000),
    ("{{ (2 ** 4000) * (2 ** 4000) > 0 }}", True),
    ("{{ ('ab' * 1000) | length }}", 2000),
    ("{{ '%5d|%-4s|%.2f' % (42, 'x', 3.14159) }}", "   42|x   |3.14"),
    ("{{ '{:>6}'.format('ab') }}", "    ab"),
    ("{{ 'ab' | center(6) }}", "  ab  "),
    ("{{ 'x'.zfill(4) }}", "000x"),
    ("{{ item.tags | join(', ') }}", "a, b"),
    ("{{ range(1000) | sum }}", 499500),
    ("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}{{ 'ok' }}", "ok"),
    ("{{ [item.n, item.name] }}", [3, "Ada"]),
    ("{{ {'a': item.n} }}", {"a": 3}),
    ("{{ now.strftime('%Y-%m-%d') }}", "2026-01-02"),
    ("{{ [1, 2, 3, 4] | batch(2) | list }}", [[1, 2], [3, 4]]),
    ("{{ 'a-b' | replace('-', '+') }}", "a+b"),
]


@pytest.mark.parametrize(("source", "expected"), ORDINARY)
def test_ordinary_expressions_fit_the_budget(source: str, expected: object) -> None:
    assert evaluate(source, dict(VARS)) == expected


def test_an_evaluation_stops_at_its_callers_deadline() -> None:
    """The node's time limit reaches into the evaluation: past it, the next step stops the work."""
    source = "{% for i in range(100000) %}{{ i }}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(ExpressionBudgetExceeded, match="its time limit was reached"):
        evaluate(source, dict(VARS), deadline=time.monotonic() - 1)
    assert time.monotonic() - started < 2.0


def test_an_evaluation_stops_after_its_own_seconds() -> None:
    budget = Budget(max_seconds=0.0)
    with pytest.raises(ExpressionBudgetExceeded, match="ran longer than 0 s"):
        evaluate("{% for i in range(10) %}{{ i }}{% endfor %}", dict(VARS), budget=budget)
