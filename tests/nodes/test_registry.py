"""Every node module is registered exactly once and has a config template that renders."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import Environment, FileSystemLoader

import nodes
from engine.config import default_config, field_specs
from engine.contract import NodeType
from engine.errors import RegistryError
from engine.registry import Registry
from nodes import NODE_TYPES, registry
from webapp.templating import pretty_json

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _node_classes_in_package() -> list[type[NodeType]]:
    found = []
    for info in pkgutil.iter_modules(nodes.__path__):
        module = importlib.import_module(f"nodes.{info.name}")
        found += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, NodeType) and obj is not NodeType and obj.__module__ == module.__name__]
    return found


def test_every_node_class_is_registered_once() -> None:
    classes = _node_classes_in_package()
    assert classes, "no node types found"
    registered = list(registry)
    for cls in classes:
        assert registered.count(cls) == 1, f"{cls.__name__} is not registered exactly once"
    assert len({(t.type_name, t.version) for t in NODE_TYPES}) == len(NODE_TYPES)


def test_duplicate_and_unknown_types_are_clear_errors() -> None:
    with pytest.raises(RegistryError, match="registered twice"):
        Registry([NODE_TYPES[0], NODE_TYPES[0]])
    with pytest.raises(RegistryError, match="unknown node type 'nope'"):
        registry.get("nope", 1)


@pytest.mark.parametrize("node_type", list(registry), ids=lambda t: f"{t.type_name}@{t.version}")
def test_config_template_renders(node_type: type[NodeType]) -> None:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters["pretty_json"] = pretty_json
    env.globals["field_specs"] = field_specs
    html = env.get_template(f"nodes/{node_type.type_name}/config.html").render(
        type=node_type, config=default_config(node_type.Config), errors={"__none__": ""},
        node=SimpleNamespace(workflow_id=1, id="n1"))  # the panel's node: dynamic options name its URL
    for spec in field_specs(node_type.Config):
        assert f'name="{spec.name}' in html, f"field {spec.name} missing from {node_type.type_name}'s form"
    assert node_type.title and node_type.description
