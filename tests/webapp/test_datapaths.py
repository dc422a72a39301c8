"""The expressions a dragged field inserts: they must reach the same value when the engine evaluates them."""

from __future__ import annotations

import pytest

from engine.expressions import render_value
from webapp.testing.datapaths import expression_for

DATA = [{"user": {"name": "Ada", "first name": "A", "items": [1, 2], "true": "yes"}, "x-id": 7, "list": [{"a": 1}]},
        {"user": {"name": "Bob"}}]


@pytest.mark.parametrize(("keys", "value"), [
    ([0, "user", "name"], "Ada"),
    ([0, "user", "first name"], "A"),
    ([0, "user", "items"], [1, 2]),
    ([0, "user", "items", 1], 2),
    ([0, "user", "true"], "yes"),
    ([0, "x-id"], 7),
    ([0, "list", 0, "a"], 1),
    ([0], DATA[0]),
])
def test_the_expression_of_a_path_reaches_its_value(keys: list[str | int], value: object) -> None:
    own = expression_for(keys)
    assert render_value("{{ " + own + " }}", {"item": DATA[0]}) == value
    earlier = expression_for(keys, "HTTP Request")
    assert earlier.startswith('nodes["HTTP Request"][0]')
    assert render_value("{{ " + earlier + " }}", {"nodes": {"HTTP Request": DATA}}) == value


def test_the_item_index_is_dropped_for_the_own_input_and_kept_for_an_earlier_node() -> None:
    assert expression_for([1, "user", "name"]) == "item.user.name"
    assert expression_for([1, "user", "name"], 'Say "hi"') == 'nodes["Say \\"hi\\""][1].user.name'
    assert expression_for([0, "items"]) == 'item["items"]'
