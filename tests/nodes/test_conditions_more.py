"""Conditions: the list type, regex with matches / not_matches, and the builder's rows (``from_form``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.errors import NodeError
from nodes.conditions import OPERATORS, Condition, condition_problems, matches


def check(condition: Condition, item: dict[str, Any]) -> bool:
    return asyncio.run(matches(None, condition, item, "conditions[0]"))  # type: ignore[arg-type]  # no expressions


@pytest.mark.parametrize(("operator", "value", "expected"), [
    ("contains", "vip", True), ("contains", "2", True), ("contains", "gold", False),
    ("not_contains", "gold", True), ("not_contains", "vip", False),
    ("length_equals", 3, True), ("length_gt", 2, True), ("length_gt", 3, False), ("length_lt", 4, True),
])
def test_list_operators(operator: str, value: Any, expected: bool) -> None:
    item = {"tags": ["vip", 2, True]}
    assert check(Condition("tags", operator, value, "list"), item) is expected


def test_list_emptiness_missing_fields_and_non_lists() -> None:
    assert check(Condition("tags", "is_empty", None, "list"), {"tags": []}) is True
    assert check(Condition("tags", "is_not_empty", None, "list"), {"tags": [1]}) is True
    assert check(Condition("tags", "contains", "a", "list"), {}) is False
    assert check(Condition("tags", "not_exists", None, "list"), {}) is True
    with pytest.raises(NodeError, match="cannot be read as a list"):
        check(Condition("tags", "contains", "a", "list"), {"tags": "a,b"})


def test_regex_matches_and_not_matches() -> None:
    assert check(Condition("code", "matches", "^A[0-9]+$", "string"), {"code": "A123"}) is True
    assert check(Condition("code", "not_matches", "^A[0-9]+$", "string"), {"code": "B1"}) is True
    assert check(Condition("code", "not_matches", "^A", "string"), {"code": "A1"}) is False


@pytest.mark.parametrize(("condition", "message"), [
    (Condition("t", "length_gt", "abc", "list"), "value: 'abc' is not a number"),
    (Condition("t", "length_gt", 1.5, "list"), "value: 1.5 is not a length"),
    (Condition("t", "not_matches", "([a", "string"), "value: not a valid regular expression"),
    (Condition("t", "matches", "x", "list"), "operator: 'matches' is not an operator for type list"),
    (Condition("t", "gt", "abc", "number"), "value: 'abc' is not a number"),
])
def test_problems_name_the_part(condition: Condition, message: str) -> None:
    (found,) = condition_problems([condition], "conditions")
    assert found.startswith(f"conditions[0].{message}"), found


def test_builder_rows_take_the_stored_shape() -> None:
    assert Condition.from_form({"field": " total ", "type": "number", "operator": "gte", "value": "1.5"}) == {
        "field": "total", "type": "number", "operator": "gte", "value": 1.5}
    assert Condition.from_form({"field": "n", "type": "number", "operator": "gt", "value": "abc"})["value"] == "abc"
    assert Condition.from_form({"field": "n", "type": "number", "operator": "gt", "value": ""})["value"] is None
    assert Condition.from_form({"field": "n", "type": "number", "operator": "gt", "value": "{{ item.x }}"})[
        "value"] == "{{ item.x }}"
    assert Condition.from_form({"field": "a", "type": "list", "operator": "length_lt", "value": "3"})["value"] == 3
    assert Condition.from_form({"field": "a", "type": "list", "operator": "contains", "value": "3"})["value"] == "3"
    assert "value" not in Condition.from_form({"field": "a", "type": "string", "operator": "exists", "value": "x"})
    assert Condition.from_form({"field": "a", "type": "string", "operator": "equals", "value": ""})["value"] == ""


def test_every_type_has_labels_for_its_operators() -> None:
    for names in OPERATORS.values():
        assert all(name in Condition.LABELS for name in (*names, *Condition.EXISTENCE))
