"""Workflows, nodes and connections — every query scoped to the owner here, not in controllers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.exceptions import NotFoundException
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from engine.config import config_to_dict, default_config, parse_config
from engine.contract import NodeType
from engine.errors import ConfigError, RegistryError
from engine.executions import export_document, load_graph
from engine.graph import (
    NO_TRIGGER,
    UNCONNECTED_INPUT,
    Graph,
    GraphError,
    Problem,
    WorkflowDocument,
    port_problem,
    ports,
    validate_graph,
    would_close_cycle,
)
from engine.models import Connection, Node, Workflow, WorkflowNote
from engine.policy import ERROR_PORT, WorkflowSettings, check_settings, parse_settings
from engine.registry import Registry
from webapp.errors import Conflict, Invalid

MAX_NAME = 200


def new_node_id() -> str:
    return uuid.uuid4().hex


def clean_name(name: str, what: str = "Name") -> str:
    name = " ".join(name.split())
    if not name:
        raise Invalid(f"{what} must not be empty.")
    if len(name) > MAX_NAME:
        raise Invalid(f"{what} is too long (at most {MAX_NAME} characters).")
    return name


@dataclass
class WorkflowService:
    db: AsyncSession
    owner_id: int
    registry: Registry

    # workflows -----------------------------------------------------------------------------
    async def list(self) -> list[Workflow]:
        rows = await self.db.scalars(select(Workflow).where(Workflow.owner_id == self.owner_id)
                                     .order_by(Workflow.updated_at.desc(), Workflow.id.desc()))
        return list(rows)

    async def get(self, workflow_id: int) -> Workflow:
        workflow = await self.db.scalar(select(Workflow).where(Workflow.id == workflow_id,
                                                               Workflow.owner_id == self.owner_id))
        if workflow is None:
            raise NotFoundException()
        return workflow

    async def create(self, name: str) -> Workflow:
        workflow = Workflow(owner_id=self.owner_id, name=clean_name(name))
        self.db.add(workflow)
        await self.db.commit()
        return workflow

    async def rename(self, workflow_id: int, name: str) -> Workflow:
        workflow = await self.get(workflow_id)
        workflow.name = clean_name(name)
        await self.db.commit()
        return workflow

    async def update_settings(self, workflow_id: int, raw: dict[str, Any]) -> Workflow:
        """Validate the workflow's settings (error workflow must be the owner's); ``ConfigError`` per field."""
        workflow = await self.get(workflow_id)
        try:
            settings = msgspec.convert(raw, WorkflowSettings, strict=False)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$.")
            raise ConfigError({path.rstrip("`") or "settings": message.replace("`", "")}) from None
        if settings.error_workflow_id is not None:
            if settings.error_workflow_id == workflow_id:
                raise ConfigError({"error_workflow_id": "A workflow cannot be its own error workflow."})
            await self.get(settings.error_workflow_id)  # 404 unless it is the owner's
        workflow.settings = msgspec.to_builtins(settings)
        await self.db.commit()
        return workflow

    async def resume(self, workflow_id: int) -> Workflow:
        """Close the circuit breaker by hand."""
        workflow = await self.get(workflow_id)
        workflow.paused_until = None
        await self.db.commit()
        return workflow

    async def delete(self, workflow_id: int) -> None:
        workflow = await self.get(workflow_id)
        await self.db.delete(workflow)
        await self.db.commit()

    # nodes ---------------------------------------------------------------------------------
    async def nodes(self, workflow_id: int) -> list[Node]:
        await self.get(workflow_id)
        return list(await self.db.scalars(select(Node).where(Node.workflow_id == workflow_id)
                                          .order_by(Node.created_at, Node.id)))

    async def connections(self, workflow_id: int) -> list[Connection]:
        await self.get(workflow_id)
        return list(await self.db.scalars(select(Connection).where(Connection.workflow_id == workflow_id)
                                          .order_by(Connection.id)))

    async def node(self, workflow_id: int, node_id: str) -> Node:
        node = await self.db.scalar(select(Node).join(Workflow).where(
            Node.id == node_id, Node.workflow_id == workflow_id, Workflow.owner_id == self.owner_id))
        if node is None:
            raise NotFoundException()
        return node

    def node_type(self, node: Node) -> type[NodeType]:
        return self.registry.get(node.type_name, node.type_version)

    async def add_node(self, workflow_id: int, type_name: str, x: float, y: float) -> Node:
        await self.get(workflow_id)
        try:
            node_type = self.registry.latest(type_name)
        except RegistryError as exc:
            raise Invalid(str(exc).capitalize() + ".") from None
        name = await self._free_name(workflow_id, node_type.title)
        node = Node(id=new_node_id(), workflow_id=workflow_id, type_name=node_type.type_name,
                    type_version=node_type.version, name=name, config=default_config(node_type.Config),
                    pos_x=_coordinate(x), pos_y=_coordinate(y))
        self.db.add(node)
        await self.db.commit()
        return node

    async def _free_name(self, workflow_id: int, base: str) -> str:
        taken = set(await self.db.scalars(select(Node.name).where(Node.workflow_id == workflow_id)))
        if base not in taken:
            return base
        return next(f"{base} {i}" for i in range(2, len(taken) + 3) if f"{base} {i}" not in taken)

    async def move_node(self, workflow_id: int, node_id: str, x: float, y: float) -> Node:
        node = await self.node(workflow_id, node_id)
        node.pos_x, node.pos_y = _coordinate(x), _coordinate(y)
        await self._commit_node()
        return node

    async def update_node(self, workflow_id: int, node_id: str, name: str, raw_config: dict[str, Any],
                          raw_settings: dict[str, Any] | None = None) -> Node:
        """Validate first; on any error nothing is written and ``ConfigError`` names the fields."""
        node = await self.node(workflow_id, node_id)
        settings, errors = check_settings(raw_settings if raw_settings is not None else node.settings)
        if settings is not None and settings.on_error != "error_output" and await self._uses_error_port(node):
            errors["settings.on_error"] = "Remove the connections from this node's error output first."
        try:
            name = clean_name(name, "Name")
        except Invalid as exc:
            errors["name"] = str(exc.detail)
        try:
            config = parse_config(self.node_type(node).Config, raw_config)
        except ConfigError as exc:
            errors.update(exc.field_errors)
        if errors:
            raise ConfigError(errors)
        node.name, node.config = name, config_to_dict(config)
        node.settings = msgspec.to_builtins(settings)
        await self._commit_node()
        return node

    async def rename_node(self, workflow_id: int, node_id: str, name: str) -> Node:
        """Rename only; names are unique within a workflow (expressions address nodes by name)."""
        node = await self.node(workflow_id, node_id)
        name = clean_name(name)
        taken = await self.db.scalar(select(Node.id).where(
            Node.workflow_id == workflow_id, Node.name == name, Node.id != node_id).limit(1))
        if taken is not None:
            raise Invalid(f"Another node in this workflow is already named “{name}”. Node names must be unique.")
        node.name = name
        await self._commit_node()
        return node

    async def _uses_error_port(self, node: Node) -> bool:
        found = await self.db.scalar(select(Connection.id).where(
            Connection.source_node_id == node.id, Connection.source_port == ERROR_PORT).limit(1))
        return found is not None

    def outputs(self, node: Node) -> tuple[str, ...]:
        return ports(self.node_type(node), "outputs", parse_settings(node.settings))

    async def _commit_node(self) -> None:
        try:
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise ConfigError({"name": "Another node in this workflow already has this name."}) from None
        except StaleDataError:
            await self.db.rollback()
            raise Conflict("This node was changed elsewhere. Reload to see the latest version.") from None

    async def delete_node(self, workflow_id: int, node_id: str) -> None:
        node = await self.node(workflow_id, node_id)
        await self.db.execute(delete(Connection).where(
            (Connection.source_node_id == node.id) | (Connection.target_node_id == node.id)))
        await self.db.delete(node)
        await self.db.commit()

    # connections ---------------------------------------------------------------------------
    async def add_connection(self, workflow_id: int, source: str, source_port: str,
                             target: str, target_port: str) -> Connection:
        src, dst = await self.node(workflow_id, source), await self.node(workflow_id, target)
        self._check_port(src, source_port, "outputs")
        self._check_port(dst, target_port, "inputs")
        edges = [(c.source_node_id, c.target_node_id) for c in await self.connections(workflow_id)]
        if would_close_cycle(edges, source, target):
            raise Invalid(f"Connecting {src.name} → {dst.name} would create a cycle; workflows must not loop back.")
        conn = Connection(workflow_id=workflow_id, source_node_id=source, source_port=source_port,
                          target_node_id=target, target_port=target_port)
        self.db.add(conn)
        names = (src.name, dst.name)  # read before a failed commit expires the rows
        try:
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise Conflict(f"{names[0]} and {names[1]} are already connected this way.") from None
        return conn

    def _check_port(self, node: Node, port: str, side: str) -> None:
        if message := port_problem(node.name, self.node_type(node), port, side, parse_settings(node.settings)):
            raise Invalid(message)

    async def delete_connection(self, workflow_id: int, source: str, source_port: str,
                                target: str, target_port: str) -> None:
        await self.get(workflow_id)
        await self.db.execute(delete(Connection).where(
            Connection.workflow_id == workflow_id, Connection.source_node_id == source,
            Connection.source_port == source_port, Connection.target_node_id == target,
            Connection.target_port == target_port))
        await self.db.commit()

    # import / export -----------------------------------------------------------------------
    async def graph(self, workflow_id: int) -> Graph:
        await self.get(workflow_id)
        return await load_graph(self.db, workflow_id)

    async def export(self, workflow_id: int) -> WorkflowDocument:
        return await export_document(self.db, await self.get(workflow_id))

    async def import_document(self, document: WorkflowDocument) -> Workflow:
        """Create a new workflow from a validated document, with fresh node ids."""

        # a half-built workflow (no trigger yet, a Merge input still open) can be imported, not run
        problems = [p for p in validate_graph(document.graph, self.registry)
                    if p.code not in (NO_TRIGGER, UNCONNECTED_INPUT)]
        try:
            name = clean_name(document.name)
        except Invalid as exc:
            problems.append(Problem(str(exc.detail)))
        if problems:
            raise GraphError(problems)
        workflow = Workflow(owner_id=self.owner_id, name=name)
        self.db.add(workflow)
        await self.db.flush()
        ids = {n.id: new_node_id() for n in document.nodes}
        for spec in document.nodes:
            self.db.add(Node(id=ids[spec.id], workflow_id=workflow.id, type_name=spec.type, type_version=spec.version,
                             name=spec.name, config=spec.config, settings=msgspec.to_builtins(spec.settings),
                             pos_x=spec.position.x, pos_y=spec.position.y))
        await self.db.flush()
        for c in document.connections:
            self.db.add(Connection(workflow_id=workflow.id, source_node_id=ids[c.source], source_port=c.source_port,
                                   target_node_id=ids[c.target], target_port=c.target_port))
        for note in document.notes:
            self.db.add(WorkflowNote(workflow_id=workflow.id, text=note.text, pos_x=note.position.x,
                                     pos_y=note.position.y, width=note.width, height=note.height))
        await self.db.commit()
        return workflow


def _coordinate(value: float) -> float:
    if not -1e6 <= value <= 1e6:
        raise Invalid("Position is out of range.")
    return round(value, 1)


