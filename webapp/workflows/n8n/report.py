"""The import report: what was mapped, skipped, approximated, kept verbatim, dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entry:
    """One line of the report: about n8n node ``node`` (its name), maybe one of its parameters."""

    node: str
    message: str
    parameter: str | None = None


@dataclass
class MappedNode:
    node: str
    n8n_type: str
    patchwire_type: str


@dataclass
class ImportReport:
    """What an import did: nodes mapped, nodes skipped, parameters and expressions not translated."""

    source: str = "n8n"
    mapped: list[MappedNode] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    unmapped: list[Entry] = field(default_factory=list)
    expressions: list[Entry] = field(default_factory=list)
    connections: list[Entry] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.skipped or self.unmapped or self.expressions or self.connections)

    def lines(self) -> list[str]:
        """The report as readable lines (what was not imported as it was), for the command line."""
        sections = (("not imported", self.skipped), ("not mapped", self.unmapped),
                    ("expression kept verbatim", self.expressions), ("connection not imported", self.connections))
        return [f"{title}: {e.node}" + (f" [{e.parameter}]" if e.parameter else "") + f": {e.message}"
                for title, entries in sections for e in entries]

    def to_dict(self) -> dict[str, Any]:
        as_list = lambda entries: [vars(e) for e in entries]  # noqa: E731
        return {"source": self.source, "mapped": as_list(self.mapped), "skipped": as_list(self.skipped),
                "unmapped": as_list(self.unmapped), "expressions": as_list(self.expressions),
                "connections": as_list(self.connections)}


