"""Expressions run in a sandbox: injection payloads fail with a clear error and never run code."""

from __future__ import annotations

import time

import pytest

from engine.errors import ExpressionError
from engine.expressions import check_syntax, evaluate

VARS = {"item": {"n": 3, "name": "Ada", "tags": ["a", "b"]}, "trigger": {}}

INJECTIONS = [
    "{{ item.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ item|attr('__class__') }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ '{0.__class__}'.format(item) }}",
    "{{ '{x.__class__.__mro__}'.format_map({'x': item}) }}",
    "{{ item.update({'pwned': 1}) }}",
    "{{ item.tags.append('x') }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config }}",
    "{{ request.application.__globals__ }}",
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**10 }}",
    "{{ [0] * 10**8 }}",
    "{{ 9 ** 1000000 }}",
    "{{ item.n ** 99999 }}",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_payloads_fail_cleanly_and_quickly(payload: str) -> None:
    start = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        evaluate(payload, dict(VARS), field="f")
    assert time.monotonic() - start < 1.0
    assert info.value.field == "f" and info.value.expression == payload
    assert VARS["item"] == {"n": 3, "name": "Ada", "tags": ["a", "b"]}, "the item was not modified"


def test_ordinary_expressions_work() -> None:
    assert evaluate("{{ item.n * 2 }}", VARS) == 6
    assert evaluate("{{ item.name | upper }}!", VARS) == "ADA!"
    assert evaluate("{{ item.tags | join(',') }}", VARS) == "a,b"
    assert evaluate("plain text", VARS) == "plain text"
    assert evaluate("{{ 'ab' * 3 }}", VARS) == "ababab"


def test_syntax_errors_are_found_before_running() -> None:
    assert check_syntax("{{ item.n + }}") is not None
    assert check_syntax("{{ item.n }}") is None
    assert check_syntax("no expression") is None
