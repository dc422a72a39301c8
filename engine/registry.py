"""The node-type registry: ``(type_name, version)`` → node type class."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.contract import NodeType
from engine.errors import RegistryError


class Registry:
    def __init__(self, types: Iterable[type[NodeType]] = ()) -> None:
        self._types: dict[tuple[str, int], type[NodeType]] = {}
        for node_type in types:
            self.register(node_type)

    def register(self, node_type: type[NodeType]) -> None:
        key = (node_type.type_name, node_type.version)
        if key in self._types:
            raise RegistryError(f"node type {key[0]!r} version {key[1]} is registered twice")
        self._types[key] = node_type

    def unregister(self, node_type: type[NodeType]) -> None:
        """Take a registered type out again (tests that add a node type of their own)."""
        self._types.pop((node_type.type_name, node_type.version), None)

    def get(self, type_name: str, version: int | None = None) -> type[NodeType]:
        if version is None:
            return self.latest(type_name)
        try:
            return self._types[(type_name, version)]
        except KeyError:
            raise RegistryError(f"unknown node type {type_name!r} version {version}") from None

    def latest(self, type_name: str) -> type[NodeType]:
        versions = [t for (name, _), t in self._types.items() if name == type_name]
        if not versions:
            raise RegistryError(f"unknown node type {type_name!r}")
        return max(versions, key=lambda t: t.version)

    def has(self, type_name: str, version: int) -> bool:
        return (type_name, version) in self._types

    def latest_types(self) -> list[type[NodeType]]:
        """The newest version of each type, ordered by category then title (for the palette)."""
        names = {name for name, _ in self._types}
        return sorted((self.latest(n) for n in names), key=lambda t: (t.category, t.title))

    def __iter__(self) -> Iterator[type[NodeType]]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)
