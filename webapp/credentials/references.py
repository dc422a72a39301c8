"""Credentials named in node configs: the editor's picker, the check on save, export and import.

A node type that uses credentials has a config field with ``extra={"widget": "credential"}`` holding a
credential id, and declares the credential types it accepts (``credential_types``). In the database a
node config holds the id; an exported workflow holds a *reference* instead — ``{"type": …, "name": …}``
— so a file never carries an id of this installation (nor, of course, a secret), and an import maps each
reference to the importing user's credential of that type and name (or leaves the field empty and
reports it missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import field_specs
from engine.contract import NodeType
from engine.credentials.registry import CredentialRegistry
from engine.errors import GraphError, RegistryError
from engine.graph import NodeSpec, Problem, WorkflowDocument
from engine.models import Credential
from engine.registry import Registry


@lru_cache(maxsize=1)
def credential_types() -> CredentialRegistry:
    from nodes.credentials import credential_registry

    return credential_registry()


def type_title(type_name: str) -> str:
    try:
        return credential_types().get(type_name).title
    except RegistryError:
        return type_name


def type_titles() -> dict[str, str]:
    return {t.type_name: t.title for t in credential_types().all()}


@lru_cache(maxsize=256)
def credential_fields(node_type: type[NodeType]) -> tuple[str, ...]:
    """The config fields of ``node_type`` that name a credential."""
    return tuple(spec.name for spec in field_specs(node_type.Config) if spec.kind == "credential")


def accepted_types(node_type: type[NodeType]) -> tuple[str, ...]:
    return tuple(getattr(node_type, "credential_types", ()) or ())


async def _owned(db: AsyncSession, owner_id: int, ids: Iterable[int]) -> dict[int, Credential]:
    wanted = {i for i in ids if isinstance(i, int)}
    if not wanted:
        return {}
    rows = await db.scalars(select(Credential).where(Credential.owner_id == owner_id, Credential.id.in_(wanted)))
    return {row.id: row for row in rows}


# --- the editor ------------------------------------------------------------------------------
async def picker_choices(db: AsyncSession, owner_id: int, node_type: type[NodeType]) -> dict[str, list[Credential]]:
    """The owner's credentials each credential field of the node's form offers (by field name)."""
    fields = credential_fields(node_type)
    accepted = accepted_types(node_type)
    if not fields:
        return {}
    rows = list(await db.scalars(select(Credential).where(
        Credential.owner_id == owner_id, Credential.type_name.in_(accepted)).order_by(Credential.name)))
    return {name: rows for name in fields}


def _mismatch(credential: Credential, accepted: tuple[str, ...]) -> str:
    accepts = ", ".join(type_title(t) for t in accepted) or "no credentials"
    return f"“{credential.name}” is a {type_title(credential.type_name)} credential; this node accepts: {accepts}."


async def credential_errors(db: AsyncSession, owner_id: int, node_type: type[NodeType],
                            config: Mapping[str, Any]) -> dict[str, str]:
    """Per-field errors for credential ids in a (parsed) node config: an id that is not the owner's reads
    exactly like one that does not exist, so nothing of another person's credential leaks."""
    fields = [name for name in credential_fields(node_type) if config.get(name) is not None]
    owned = await _owned(db, owner_id, (config[name] for name in fields))
    errors = {}
    for name in fields:
        credential = owned.get(config[name])
        if credential is None:
            errors[name] = f"Credential {config[name]} not found."
        elif credential.type_name not in accepted_types(node_type):
            errors[name] = _mismatch(credential, accepted_types(node_type))
    return errors


# --- export ----------------------------------------------------------------------------------
async def export_references(db: AsyncSession, owner_id: int, document: WorkflowDocument,
                            registry: Registry) -> WorkflowDocument:
    """The document with every credential id replaced by ``{"type", "name"}`` (an unknown id by ``None``)."""
    found = _credential_values(document.nodes, registry)
    if not found:
        return document
    owned = await _owned(db, owner_id, (value for _, _, value in found))
    configs: dict[str, dict[str, Any]] = {}
    for node, field, value in found:
        credential = owned.get(value) if isinstance(value, int) else None
        reference = {"type": credential.type_name, "name": credential.name} if credential else None
        configs.setdefault(node.id, dict(node.config))[field] = reference
    return _with_configs(document, configs)


def _credential_values(nodes: list[NodeSpec], registry: Registry) -> list[tuple[NodeSpec, str, Any]]:
    found = []
    for node in nodes:
        if not registry.has(node.type, node.version):
            continue
        for field in credential_fields(registry.get(node.type, node.version)):
            if node.config.get(field) is not None:
                found.append((node, field, node.config[field]))
    return found


def _with_configs(document: WorkflowDocument, configs: dict[str, dict[str, Any]]) -> WorkflowDocument:
    nodes = [msgspec.structs.replace(n, config=configs[n.id]) if n.id in configs else n for n in document.nodes]
    return msgspec.structs.replace(document, nodes=nodes)


# --- import ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MissingCredential:
    """A reference in an imported document that the importing user has no credential for."""

    node: str
    field: str
    type: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "field": self.field, "type": self.type, "type_title": type_title(self.type),
                "name": self.name}


async def resolve_references(db: AsyncSession, owner_id: int, document: WorkflowDocument,
                             registry: Registry) -> tuple[WorkflowDocument, list[MissingCredential]]:
    """Map each ``{"type", "name"}`` reference to the owner's credential of that type and name; a missing
    one leaves the field ``None`` and is reported. A bare id must be the owner's, of an accepted type
    (else ``GraphError``: a pasted node of someone else names nothing of theirs)."""
    found = _credential_values(document.nodes, registry)
    if not found:
        return document, []
    references = [(n, f, v) for n, f, v in found if isinstance(v, dict)]
    by_key = await _by_type_and_name(db, owner_id, references)
    owned = await _owned(db, owner_id, (v for _, _, v in found if isinstance(v, int) and not isinstance(v, bool)))
    configs: dict[str, dict[str, Any]] = {}
    missing: list[MissingCredential] = []
    problems: list[Problem] = []
    for node, field, value in found:
        node_type = registry.get(node.type, node.version)
        resolved, problem = _resolve_one(node, field, value, node_type, by_key, owned, missing)
        if problem:
            problems.append(Problem(problem, node.id, field))
        configs.setdefault(node.id, dict(node.config))[field] = resolved
    if problems:
        raise GraphError(problems)
    return _with_configs(document, configs), missing


def _resolve_one(node: NodeSpec, field: str, value: Any, node_type: type[NodeType],
                 by_key: dict[tuple[str, str], Credential], owned: dict[int, Credential],
                 missing: list[MissingCredential]) -> tuple[int | None, str | None]:
    where = f"Node “{node.name}”, field {field}"
    if isinstance(value, dict):
        if set(value) != {"type", "name"} or not all(isinstance(value[k], str) for k in ("type", "name")):
            return None, f"{where}: a credential reference is {{\"type\": …, \"name\": …}} (two strings)."
        if value["type"] not in accepted_types(node_type):
            accepts = ", ".join(accepted_types(node_type)) or "no credentials"
            return None, f"{where}: this node does not accept {value['type']!r} credentials (it accepts: {accepts})."
        credential = by_key.get((value["type"], value["name"]))
        if credential is None:
            missing.append(MissingCredential(node.name, field, value["type"], value["name"]))
            return None, None
        return credential.id, None
    if isinstance(value, int) and not isinstance(value, bool):
        credential = owned.get(value)
        if credential is None:
            return None, f"{where}: credential {value} not found (a workflow file names credentials by type and name)."
        if credential.type_name not in accepted_types(node_type):
            return None, f"{where}: {_mismatch(credential, accepted_types(node_type))}"
        return value, None
    return None, f"{where}: expected a credential id or a reference {{\"type\": …, \"name\": …}}."


async def _by_type_and_name(db: AsyncSession, owner_id: int,
                            references: list[tuple[NodeSpec, str, Any]]) -> dict[tuple[str, str], Credential]:
    names = {v.get("name") for _, _, v in references if isinstance(v.get("name"), str)}
    if not names:
        return {}
    rows = await db.scalars(select(Credential).where(Credential.owner_id == owner_id, Credential.name.in_(names)))
    return {(row.type_name, row.name): row for row in rows}
