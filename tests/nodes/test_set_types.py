"""Set's per-field types: values converted as n8n's Set (v3.3+) converts them, through the real run loop."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine.config import config_from_form, field_specs, parse_config
from engine.errors import ConfigError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import registry
from nodes.set import SetConfig


async def run_set(item: dict[str, Any], fields: dict[str, str], types: dict[str, str]) -> tuple[Any, Any]:
    config = {"fields": [{"name": k, "value": v} for k, v in fields.items()], "keep_existing": False, "types": types}
    graph = Graph(nodes=[NodeSpec(id="t", type="manual_trigger", name="t"),
                         NodeSpec(id="s", type="set", name="s", config=config)],
                  connections=[ConnectionSpec(source="t", target="s")])
    store = MemoryRunStore()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http, trigger_input=item))
    records = store.attempts(1, "s")
    return outcome, (records[-1].output["main"][0] if outcome.status == "succeeded" else None)


async def test_values_are_converted_to_their_types() -> None:
    item = {"total": "41.5", "flag": "TRUE", "tags": '["a", "b"]', "n": 3}
    fields = {"total": "{{ item.total }}", "count": "42", "flag": "{{ item.flag }}", "one": "1",
              "tags": "{{ item.tags }}", "meta": '{"a": {"b": null}}', "text": "{{ item.n }}", "plain": "{{ item.n }}"}
    types = {"total": "number", "count": "number", "flag": "boolean", "one": "boolean", "tags": "array",
             "meta": "object", "text": "string"}
    outcome, out = await run_set(item, fields, types)
    assert outcome.status == "succeeded", outcome.error
    assert out == {"total": 41.5, "count": 42, "flag": True, "one": True, "tags": ["a", "b"],
                   "meta": {"a": {"b": None}}, "text": "3", "plain": 3}


@pytest.mark.parametrize(("value", "type_", "message"), [
    ("abc", "number", "field 'x' should be number: \"abc\" is not a number"),
    ("", "number", "field 'x' should be number: \"\" is not a number"),
    ("yes", "boolean", "\"yes\" is not a boolean (true, false, 1 or 0)"),
    ('{"a": 1}', "array", "is not an array"),
    ("[1", "array", "is not an array (not valid JSON)"),
    ("[1]", "object", "\"[1]\" is not an object"),
])
async def test_a_value_that_cannot_be_converted_fails_the_node_with_the_reason(value: str, type_: str,
                                                                              message: str) -> None:
    outcome, _ = await run_set({}, {"x": value}, {"x": type_})
    assert outcome.status == "failed" and outcome.error["type"] == "NodeError"
    assert message in outcome.error["message"]


def test_types_must_name_a_field_and_a_known_type() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SetConfig, {"fields": [{"name": "a", "value": "1"}], "types": {"b": "number"}})
    assert caught.value.field_errors == {"types": "'b': not one of the fields above."}
    with pytest.raises(ConfigError) as caught:
        parse_config(SetConfig, {"fields": [{"name": "a", "value": "1"}], "types": {"a": "date"}})
    assert "types" in caught.value.field_errors
    assert parse_config(SetConfig, {"fields": [{"name": "a", "value": "1"}]}).types == {}


def test_the_form_has_a_json_field_for_the_types() -> None:
    spec = {s.name: s for s in field_specs(SetConfig)}["types"]
    assert spec.kind == "json" and spec.title == "Field types" and spec.default == {}
    raw, errors = config_from_form(SetConfig, {"types": ['{"count": "number"}']})
    assert errors == {} and raw["types"] == {"count": "number"}
    _, errors = config_from_form(SetConfig, {"types": ['{"count": ']})
    assert errors["types"].startswith("Not valid JSON")
