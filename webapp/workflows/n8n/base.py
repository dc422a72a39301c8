"""What every mapper works with: the node's parameters, the context, the result, and the registry
of mappers by n8n type (one small class per n8n node type, registered like our node types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from webapp.workflows.n8n.expressions import Translator
from webapp.workflows.n8n.report import Entry, ImportReport

PREFIXES = ("n8n-nodes-base.", "@n8n/n8n-nodes-base.")


class Params:
    """A node's parameters; every key a mapper does not read is reported as not mapped."""

    def __init__(self, raw: Any) -> None:
        self.raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.raw.get(key, default)

    def unread(self) -> list[str]:
        return [k for k, v in self.raw.items() if k not in self.read and v not in ({}, [], "", None)]


@dataclass
class Mapped:
    """Our node for one n8n node, and how its n8n outputs / inputs become our port names."""

    type: str
    config: dict[str, Any]
    version: int = 1
    outputs: dict[int, list[str]] = field(default_factory=lambda: {0: ["main"]})
    inputs: dict[int, str] = field(default_factory=lambda: {0: "main"})
    settings: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """The n8n node has no Patchwire equivalent; the message says why."""


@dataclass
class Context:
    node: str
    type_version: float
    params: Params
    tr: Translator
    report: ImportReport
    workflows: Mapping[str, int]
    credentials: Mapping[str, Any] = field(default_factory=dict)
    """The node's ``credentials`` (n8n credential type → ``{"id", "name"}``)."""

    def unmapped(self, message: str, parameter: str | None = None) -> None:
        self.report.unmapped.append(Entry(self.node, message, parameter))


class NodeMapper:
    """Maps one n8n node type (``n8n_types``: short names without ``n8n-nodes-base.``) to one of ours:
    ``map`` reads ``ctx.params``, reports what it cannot carry over, and returns ``Mapped`` or raises ``Skip``."""

    n8n_types: ClassVar[tuple[str, ...]] = ()
    """``"*Trigger"`` is the mapper for any trigger that has none of its own."""

    def map(self, ctx: Context) -> Mapped:
        raise NotImplementedError


MAPPERS: dict[str, NodeMapper] = {}
OTHER_TRIGGERS = {"webhook", "cron", "interval", "scheduleTrigger", "formTrigger"}


def register(cls: type[NodeMapper]) -> type[NodeMapper]:
    for n8n_type in cls.n8n_types:
        if n8n_type in MAPPERS:
            raise ValueError(f"two n8n mappers for {n8n_type!r}")
        MAPPERS[n8n_type] = cls()
    return cls


def mapper_for(short_type: str) -> NodeMapper | None:
    """The mapper of an n8n type; any trigger without its own mapper becomes a Manual Trigger (reported)."""
    if short_type in MAPPERS:
        return MAPPERS[short_type]
    if short_type in OTHER_TRIGGERS or short_type.endswith("Trigger"):
        return MAPPERS["*Trigger"]
    return None


def report_options(ctx: Context, options: Any, ignore: frozenset[str] | set[str] = frozenset()) -> None:
    for key, value in (options or {}).items():
        if key not in ignore and value not in ({}, [], "", None, False):
            ctx.unmapped(f"option {key!r} is not supported (ignored)", f"options.{key}")

def node_position(node: dict[str, Any]) -> tuple[float, float]:
    position = node.get("position")
    return (position[0], position[1]) if (isinstance(position, list) and len(position) >= 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in position[:2])) else (0, 0)
