"""The credential-type registry: ``(type_name, version)`` → credential type class (like engine/registry.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.credentials.types import CredentialType
from engine.errors import RegistryError


class CredentialRegistry:
    def __init__(self, types: Iterable[type[CredentialType]] = ()) -> None:
        self._types: dict[tuple[str, int], type[CredentialType]] = {}
        for credential_type in types:
            self.register(credential_type)

    def register(self, credential_type: type[CredentialType]) -> None:
        key = (credential_type.type_name, credential_type.version)
        if key in self._types:
            raise RegistryError(f"credential type {key[0]!r} version {key[1]} is registered twice")
        self._types[key] = credential_type

    def get(self, type_name: str, version: int | None = None) -> type[CredentialType]:
        if version is None:
            versions = [t for (name, _), t in self._types.items() if name == type_name]
            if not versions:
                raise RegistryError(f"unknown credential type {type_name!r}")
            return max(versions, key=lambda t: t.version)
        try:
            return self._types[(type_name, version)]
        except KeyError:
            raise RegistryError(f"unknown credential type {type_name!r} version {version}") from None

    def has(self, type_name: str) -> bool:
        return any(name == type_name for name, _ in self._types)

    def all(self) -> list[type[CredentialType]]:
        """The newest version of each type, by title (for the type chooser)."""
        names = {name for name, _ in self._types}
        return sorted((self.get(n) for n in names), key=lambda t: t.title.lower())

    def __iter__(self) -> Iterator[type[CredentialType]]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)
