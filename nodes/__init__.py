"""The explicit registry of node types. Add a node type here, once."""

from __future__ import annotations

from engine.registry import Registry
from nodes.delay import Delay
from nodes.http_request import HttpRequest
from nodes.if_ import If
from nodes.manual_trigger import ManualTrigger
from nodes.set import Set

NODE_TYPES = (ManualTrigger, Set, HttpRequest, If, Delay)

registry = Registry(NODE_TYPES)
