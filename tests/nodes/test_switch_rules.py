"""Switch version 2: rules that are condition sets (and / or) with output names; version 1 unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from engine.config import config_from_form, parse_config
from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import ConfigError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import NODE_TYPES
from nodes import registry as real_registry
from nodes.switch import Switch
from nodes.switch_v2 import SwitchV2, SwitchV2Config, port_labels


class EmitConfig(msgspec.Struct):
    items: list[dict[str, Any]] = []


class Emit(NodeType):
    type_name = "emit"
    title = "Emit"
    Config = EmitConfig

    async def run(self, ctx: NodeContext, config: EmitConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main([dict(i) for i in config.items])


registry = Registry([*NODE_TYPES, Emit])
ITEMS = [{"id": 1, "kind": "a", "total": 5}, {"id": 2, "kind": "b", "total": 500},
         {"id": 3, "kind": "a", "total": 900}, {"id": 4, "kind": "c", "total": 1}]


def cond(field: str, operator: str, value: Any = None, type_: str = "string") -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value, "type": type_}


def rule(*conditions: dict[str, Any], combine: str = "and", output: str = "") -> dict[str, Any]:
    return {"conditions": list(conditions), "combine": combine, "output": output}


async def run_switch(config: dict[str, Any], items: list[Item] | None = None, version: int = 2) -> Any:
    nodes = [NodeSpec(id="t", type="manual_trigger", name="t"),
             NodeSpec(id="e", type="emit", name="e", config={"items": items or ITEMS}),
             NodeSpec(id="sw", type="switch", name="sw", version=version, config=config)]
    edges = [ConnectionSpec(source="t", target="e"), ConnectionSpec(source="e", target="sw")]
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, Graph(nodes=nodes, connections=edges), registry, store, sink, http,
                                    trigger_input={}))
    output = store.attempts(1, "sw")[-1].output if store.attempts(1, "sw") else None
    return outcome, {port: [i["id"] for i in items] for port, items in (output or {}).items()}


A_AND_BIG = rule(cond("kind", "equals", "a"), cond("total", "gte", 100, "number"), output="big a")
B_OR_SMALL = rule(cond("kind", "equals", "b"), cond("total", "lt", 10, "number"), combine="or", output="b or small")


def test_version_2_is_the_latest_and_version_1_stays_registered() -> None:
    assert real_registry.latest("switch") is SwitchV2
    assert real_registry.get("switch", 1) is Switch


async def test_and_rules_and_or_rules_first_match() -> None:
    outcome, routes = await run_switch({"mode": "first_match", "rules": [A_AND_BIG, B_OR_SMALL]})
    assert outcome.status == "succeeded", outcome.error
    assert routes == {"0": [3], "1": [1, 2, 4]}


async def test_all_matches_sends_an_item_by_every_matching_rule() -> None:
    rules = [rule(cond("kind", "equals", "a")), rule(cond("total", "gt", 100, "number"), cond("kind", "equals", "a")),
             rule(cond("id", "equals", 99, "number"), cond("id", "equals", 4, "number"), combine="or")]
    outcome, routes = await run_switch({"mode": "all_matches", "rules": rules})
    assert outcome.status == "succeeded", outcome.error
    assert routes == {"0": [1, 3], "1": [3], "2": [4], "fallback": [2]}


async def test_a_missing_field_does_not_match_and_goes_to_fallback() -> None:
    outcome, routes = await run_switch({"rules": [rule(cond("nope", "equals", "x"), cond("kind", "equals", "a"),
                                                       combine="or")]})
    assert outcome.status == "succeeded"
    assert routes == {"0": [1, 3], "fallback": [2, 4]}


async def test_version_1_configs_still_run_unchanged() -> None:
    config = {"mode": "first_match", "rules": [cond("kind", "equals", "a"), cond("total", "gte", 100, "number")]}
    outcome, routes = await run_switch(config, version=1)
    assert outcome.status == "succeeded", outcome.error
    assert routes == {"0": [1, 3], "1": [2], "fallback": [4]}
    with pytest.raises(ConfigError):  # a v1 config is not silently read as v2 (nor the reverse)
        parse_config(SwitchV2Config, config)


async def test_a_run_time_error_names_the_rule_and_the_condition() -> None:
    rules = [rule(cond("kind", "equals", "zzz")), rule(cond("kind", "equals", "a"), cond("total", "gt", 1, "number"))]
    outcome, _ = await run_switch({"rules": rules}, [{"id": 1, "kind": "a", "total": "lots"}])
    assert outcome.status == "failed"
    assert "rules[1].conditions[1]" in outcome.error["message"] and "'lots'" in outcome.error["message"]


def test_save_time_problems_name_the_rule_and_the_condition() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(SwitchV2Config, {"rules": [A_AND_BIG, rule(cond("kind", "equals", "b"), cond("", "exists")),
                                                rule()]})
    message = exc.value.field_errors["rules"]
    assert "rules[1].conditions[1].field: required" in message
    assert "rules[2].conditions: add at least one condition" in message
    assert "rules[0]" not in message
    with pytest.raises(ConfigError) as exc:
        parse_config(SwitchV2Config, {"rules": [A_AND_BIG] * 5})
    assert "At most 4 rules" in exc.value.field_errors["rules"]
    with pytest.raises(ConfigError) as exc:
        parse_config(SwitchV2Config, {"rules": [rule(cond("a", "exists"), output="x" * 61)]})
    assert "rules[0].output: at most 60 characters" in exc.value.field_errors["rules"]


def test_output_names_are_the_port_labels() -> None:
    assert port_labels({"rules": [A_AND_BIG, rule(cond("a", "exists")), B_OR_SMALL], "fallback_output": "rest"}) == {
        "0": "big a", "2": "b or small", "fallback": "rest"}
    assert port_labels({"rules": "garbage"}) == {}
    assert port_labels(None) == {}


def test_the_form_assembles_rules_of_rows() -> None:
    form = {"mode": ["all_matches"], "rules.builder": ["1"],
            "rules.rule": ["0", "n1-x"], "rules.combine": ["or", "and"], "rules.output": [" VIP ", ""],
            "rules.group": ["0", "n1-x", "0"],
            "rules.field": ["tier", "total", "kind"], "rules.type": ["string", "number", "string"],
            "rules.operator": ["equals", "gt", "exists"], "rules.value": ["gold", "100", ""],
            "fallback_output": ["others"]}
    raw, errors = config_from_form(SwitchV2Config, form)
    assert errors == {}
    assert raw == {"mode": "all_matches", "fallback_output": "others", "rules": [
        {"conditions": [{"field": "tier", "operator": "equals", "value": "gold", "type": "string"},
                        {"field": "kind", "operator": "exists", "type": "string"}],
         "combine": "or", "output": "VIP"},
        {"conditions": [{"field": "total", "operator": "gt", "value": 100, "type": "number"}],
         "combine": "and", "output": ""}]}
    assert parse_config(SwitchV2Config, raw).rules[1].conditions[0].value == 100
