"""Workflows, nodes and connections — every query scoped to the owner here, not in controllers.

Every change of a workflow's nodes or connections calls ``touch_draft`` in its transaction: the
draft revision is how starting an execution knows the draft is unchanged since it was last pinned.
"""

from __future__ import annotations

import json
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
from engine.executions import (
    export_document,
    graph_from_json,
    graph_to_json,
    load_graph,
    publish,
    published_versions,
    touch_draft,
)
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
from engine.models import Connection, Execution, Node, User, Workflow, WorkflowNote, WorkflowVersion, utcnow
from engine.policy import ERROR_PORT, WorkflowSettings, check_settings, parse_settings
from engine.registry import Registry
from engine.triggers.activation import after_publish
from webapp.credentials.references import (
    MissingCredential,
    credential_errors,
    export_references,
    resolve_references,
)
from webapp.errors import Conflict, Invalid, StaleEdit, WouldCycle
from webapp.webhooks.services import ensure_webhook, sync_workflow_webhooks, webhook_config_errors
from webapp.workflows.importing import MAX_WORKFLOW_NAME, imported_names

MAX_NAME = MAX_WORKFLOW_NAME
DELETED_ELSEWHERE = "This node was deleted in another tab or by someone else."


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

    async def names(self) -> dict[str, int]:
        """The owner's workflow ids by name, for names only one of their workflows has."""
        rows = (await self.db.execute(select(Workflow.name, Workflow.id).where(Workflow.owner_id == self.owner_id))).all()
        counts: dict[str, int] = {}
        for name, _ in rows:
            counts[name] = counts.get(name, 0) + 1
        return {name: workflow_id for name, workflow_id in rows if counts[name] == 1}

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
        # Its executions first: they pin its versions (ON DELETE RESTRICT), so the cascade alone failed.
        await self.db.execute(delete(Execution).where(Execution.workflow_id == workflow_id))
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

    async def node_for_write(self, workflow_id: int, node_id: str, expected_version: int | None) -> Node:
        """The node a write from the editor is about. ``expected_version``: the version the editor saw
        (``None``: not checked, e.g. an API client that wants last-write-wins). A node that is gone or
        has moved on since is a ``StaleEdit`` (409), never a silent overwrite."""
        if expected_version is None:
            return await self.node(workflow_id, node_id)
        node = await self.ensure_node_exists(workflow_id, node_id, DELETED_ELSEWHERE)
        if node.version != expected_version:
            raise StaleEdit(f"“{node.name}” was changed in another tab or by someone else since this page loaded "
                            f"(version {expected_version}, now {node.version}).", [], node_id=node_id,
                            current_version=node.version)
        return node

    async def ensure_node_exists(self, workflow_id: int, node_id: str,
                                 message: str = "A node of this connection was deleted in another tab or by someone "
                                                "else.") -> Node:
        """For a write from the editor: a node of the owner's workflow deleted elsewhere is a conflict, not a 404."""
        await self.get(workflow_id)
        node = await self.db.scalar(select(Node).where(Node.id == node_id, Node.workflow_id == workflow_id))
        if node is None:
            raise StaleEdit(message, [], node_id=node_id)
        return node

    def node_type(self, node: Node) -> type[NodeType]:
        return self.registry.get(node.type_name, node.type_version)

    async def add_node(self, workflow_id: int, type_name: str, x: float, y: float) -> Node:
        workflow = await self.get(workflow_id)
        try:
            node_type = self.registry.latest(type_name)
        except RegistryError as exc:
            raise Invalid(str(exc).capitalize() + ".") from None
        name = await self._free_name(workflow_id, node_type.title)
        node = Node(id=new_node_id(), workflow_id=workflow_id, type_name=node_type.type_name,
                    type_version=node_type.version, name=name, config=default_config(node_type.Config),
                    pos_x=_coordinate(x), pos_y=_coordinate(y))
        self.db.add(node)
        if node_type.trigger_kind == "webhook":  # its URL exists from the start (webapp/webhooks/)
            await ensure_webhook(self.db, workflow, node)
        await touch_draft(self.db, workflow_id)
        await self.db.commit()
        return node

    async def _free_name(self, workflow_id: int, base: str) -> str:
        taken = set(await self.db.scalars(select(Node.name).where(Node.workflow_id == workflow_id)))
        if base not in taken:
            return base
        return next(f"{base} {i}" for i in range(2, len(taken) + 3) if f"{base} {i}" not in taken)

    async def move_node(self, workflow_id: int, node_id: str, x: float, y: float,
                        expected_version: int | None = None) -> Node:
        try:
            node = await self.node_for_write(workflow_id, node_id, expected_version)
        except StaleEdit as exc:
            if exc.current_version is not None:
                current = await self.node(workflow_id, node_id)
                exc.changes = [f"Its position is now ({current.pos_x:g}, {current.pos_y:g}); "
                               f"this tab moved it to ({x:g}, {y:g})."]
            raise
        node.pos_x, node.pos_y = _coordinate(x), _coordinate(y)
        await self._commit_node(workflow_id)
        return node

    async def update_node(self, workflow_id: int, node_id: str, name: str, raw_config: dict[str, Any],
                          raw_settings: dict[str, Any] | None = None, expected_version: int | None = None,
                          loaded: Node | None = None) -> Node:
        """Validate first; on any error nothing is written and ``ConfigError`` names the fields.
        ``loaded``: the node as the caller already read it (owner-scoped) in this session, to skip reading it again."""
        try:
            if loaded is not None and loaded.id == node_id and expected_version in (None, loaded.version):
                node = loaded
            else:
                node = await self.node_for_write(workflow_id, node_id, expected_version)
        except StaleEdit as exc:
            if exc.current_version is not None:
                current = await self.node(workflow_id, node_id)
                exc.changes = _differences(current, name, self._normalised(current, raw_config), raw_settings)
            raise
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
        else:
            errors.update(await self._reference_errors(node, config_to_dict(config)))
        if errors:
            raise ConfigError(errors)
        node.name, node.config = name, config_to_dict(config)
        node.settings = msgspec.to_builtins(settings)
        if self.node_type(node).trigger_kind == "webhook":
            await ensure_webhook(self.db, await self.get(workflow_id), node)
        await self._commit_node(workflow_id)
        return node

    async def _reference_errors(self, node: Node, config: dict[str, Any]) -> dict[str, str]:
        """A credential id must be the owner's, of a type the node accepts; a webhook's custom path is unique and its
        credential of the type its authentication reads."""
        errors = await credential_errors(self.db, self.owner_id, self.node_type(node), config)
        if self.node_type(node).trigger_kind == "webhook":
            errors.update(await webhook_config_errors(self.db, node.id, config))
        return errors

    async def rename_node(self, workflow_id: int, node_id: str, name: str, expected_version: int | None = None) -> Node:
        """Rename only; names are unique within a workflow (expressions address nodes by name)."""
        try:
            node = await self.node_for_write(workflow_id, node_id, expected_version)
        except StaleEdit as exc:
            if exc.current_version is not None:
                current = await self.node(workflow_id, node_id)
                exc.changes = [f"Its name is now “{current.name}”." if current.name != " ".join(name.split())
                               else "Its config, settings or position changed."]
            raise
        name = clean_name(name)
        taken = await self.db.scalar(select(Node.id).where(
            Node.workflow_id == workflow_id, Node.name == name, Node.id != node_id).limit(1))
        if taken is not None:
            raise Invalid(f"Another node in this workflow is already named “{name}”. Node names must be unique.")
        node.name = name
        await self._commit_node(workflow_id)
        return node

    async def _uses_error_port(self, node: Node) -> bool:
        found = await self.db.scalar(select(Connection.id).where(
            Connection.source_node_id == node.id, Connection.source_port == ERROR_PORT).limit(1))
        return found is not None

    def _normalised(self, node: Node, raw_config: dict[str, Any]) -> dict[str, Any]:
        """The submitted config as it would be stored (typed), so "5" and 5.0 compare equal; as typed when invalid."""
        try:
            parsed = config_to_dict(parse_config(self.node_type(node).Config, {**node.config, **raw_config}))
        except (ConfigError, RegistryError):
            return raw_config
        return {key: parsed.get(key, value) for key, value in raw_config.items()}

    def outputs(self, node: Node) -> tuple[str, ...]:
        return ports(self.node_type(node), "outputs", parse_settings(node.settings))

    async def _commit_node(self, workflow_id: int) -> None:
        try:
            await touch_draft(self.db, workflow_id)  # flushes the node first: its errors are caught here too
            await self.db.commit()
        except IntegrityError:
            await self.db.rollback()
            raise ConfigError({"name": "Another node in this workflow already has this name."}) from None
        except StaleDataError:
            await self.db.rollback()
            raise Conflict("This node was changed elsewhere. Reload to see the latest version.") from None

    async def delete_node(self, workflow_id: int, node_id: str, expected_version: int | None = None) -> None:
        try:
            node = await self.node_for_write(workflow_id, node_id, expected_version)
        except StaleEdit as exc:
            if exc.current_version is None:
                return  # already deleted elsewhere: what this tab wanted
            exc.changes = ["Deleting it would throw away those changes; reload to see them first."]
            raise
        await self.db.execute(delete(Connection).where(
            (Connection.source_node_id == node.id) | (Connection.target_node_id == node.id)))
        await self.db.delete(node)
        try:
            await touch_draft(self.db, workflow_id)
            await self.db.commit()
        except StaleDataError:
            await self.db.rollback()
            raise StaleEdit("This node was changed elsewhere while it was being deleted; reload to see it.", [],
                            node_id=node_id) from None

    # connections ---------------------------------------------------------------------------
    async def add_connection(self, workflow_id: int, source: str, source_port: str,
                             target: str, target_port: str) -> Connection:
        src, dst = await self.ensure_node_exists(workflow_id, source), await self.ensure_node_exists(workflow_id, target)
        self._check_port(src, source_port, "outputs")
        self._check_port(dst, target_port, "inputs")
        edges = [(c.source_node_id, c.target_node_id) for c in await self.connections(workflow_id)]
        if would_close_cycle(edges, source, target):
            raise WouldCycle(f"Connecting {src.name} → {dst.name} would create a cycle; workflows must not loop back.")
        conn = Connection(workflow_id=workflow_id, source_node_id=source, source_port=source_port,
                          target_node_id=target, target_port=target_port)
        self.db.add(conn)
        names = (src.name, dst.name)  # read before a failed commit expires the rows
        try:
            await touch_draft(self.db, workflow_id)
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
        await touch_draft(self.db, workflow_id)
        await self.db.commit()

    # versions --------------------------------------------------------------------------------
    async def publish(self, workflow_id: int, author_id: int) -> WorkflowVersion:
        """Snapshot the draft as the published version (``GraphError`` if it cannot run). While the workflow is
        active its triggers move to the new version; one without an automatic trigger deactivates it."""
        workflow = await self.get(workflow_id)
        version = await publish(self.db, workflow, self.registry, author_id)
        await after_publish(self.db, workflow, version, self.registry, now=utcnow())
        await self.db.commit()
        return version

    async def published(self, workflow_id: int) -> WorkflowVersion | None:
        await self.get(workflow_id)
        return await self.db.scalar(published_versions(select(WorkflowVersion), workflow_id))

    async def history(self, workflow_id: int) -> list[VersionEntry]:
        """Every version, newest first, with its author and what changed since the one before it."""
        await self.get(workflow_id)
        rows = (await self.db.execute(
            select(WorkflowVersion, User.email).outerjoin(User, User.id == WorkflowVersion.author_id)
            .where(WorkflowVersion.workflow_id == workflow_id).order_by(WorkflowVersion.number))).all()
        published = await self.published(workflow_id)
        entries, previous = [], None
        for version, email in rows:
            entries.append(VersionEntry(version, email, graph_changes(previous, version.graph),
                                        published is not None and version.id == published.id))
            previous = version.graph
        return entries[::-1]

    async def restore(self, workflow_id: int, number: int, author_id: int) -> tuple[WorkflowVersion, int | None]:
        """Make version ``number`` the draft. The draft it replaces is kept as a new version first (unless the
        newest version holds that graph), so restoring loses nothing; returns the restored version and the
        number of that safety copy."""
        workflow = await self.get(workflow_id)
        version = await self.db.scalar(select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.number == number))
        if version is None:
            raise NotFoundException(f"Version {number} of this workflow does not exist.")
        draft = graph_to_json(await load_graph(self.db, workflow_id))
        kept = None
        newest = await self.db.scalar(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
                                      .order_by(WorkflowVersion.number.desc()).limit(1))
        if newest is None or newest.graph != draft:
            kept = (newest.number if newest is not None else 0) + 1
            # no draft_revision: a snapshot taken here is not known to be runnable, so no start reuses it
            self.db.add(WorkflowVersion(workflow_id=workflow_id, number=kept, graph=draft, author_id=author_id))
        graph = graph_from_json(version.graph)
        await self.db.execute(delete(Connection).where(Connection.workflow_id == workflow_id))
        await self.db.execute(delete(Node).where(Node.workflow_id == workflow_id))
        for row in [o for o in self.db.sync_session.identity_map.values() if isinstance(o, Node | Connection)]:
            self.db.expunge(row)  # deleted above; the restored nodes come back with the same ids
        for spec in graph.nodes:
            self.db.add(Node(id=spec.id, workflow_id=workflow.id, type_name=spec.type, type_version=spec.version,
                             name=spec.name, config=spec.config, settings=msgspec.to_builtins(spec.settings),
                             pos_x=spec.position.x, pos_y=spec.position.y))
        await self.db.flush()
        for c in graph.connections:
            self.db.add(Connection(workflow_id=workflow_id, source_node_id=c.source, source_port=c.source_port,
                                   target_node_id=c.target, target_port=c.target_port))
        await touch_draft(self.db, workflow_id)
        await self.db.commit()
        return version, kept

    # import / export -----------------------------------------------------------------------
    async def graph(self, workflow_id: int) -> Graph:
        await self.get(workflow_id)
        return await load_graph(self.db, workflow_id)

    async def export(self, workflow_id: int) -> WorkflowDocument:
        """The draft as a document; credentials are named by type and name, never by id (references.py)."""
        document = await export_document(self.db, await self.get(workflow_id))
        return await export_references(self.db, self.owner_id, document, self.registry)

    async def import_document(self, document: WorkflowDocument) -> Workflow:
        """Create a new workflow from a validated document, with fresh node ids."""
        workflow, _ = await self.import_with_credentials(document)
        return workflow

    async def _free_import_name(self, name: str) -> str:
        """The name an imported workflow gets: its own, or a numbered ``(imported)`` one if the owner has it."""
        taken = set(await self.db.scalars(select(Workflow.name).where(Workflow.owner_id == self.owner_id)))
        return next(candidate for candidate in imported_names(name) if candidate not in taken)

    async def import_with_credentials(self, document: WorkflowDocument) -> tuple[Workflow, list[MissingCredential]]:
        """``import_document``, also saying which credential references the owner has no credential for
        (their fields are left empty); the others are mapped to the owner's credential ids."""
        document, missing = await resolve_references(self.db, self.owner_id, document, self.registry)

        # a half-built workflow (no trigger yet, a Merge input still open) can be imported, not run
        problems = [p for p in validate_graph(document.graph, self.registry)
                    if p.code not in (NO_TRIGGER, UNCONNECTED_INPUT)]
        try:
            name = clean_name(document.name)
        except Invalid as exc:
            problems.append(Problem(str(exc.detail)))
        if problems:
            raise GraphError(problems)
        workflow = Workflow(owner_id=self.owner_id, name=await self._free_import_name(name))
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
        await sync_workflow_webhooks(self.db, workflow)
        await touch_draft(self.db, workflow.id)
        await self.db.commit()
        return workflow, missing


def _differences(node: Node, name: str, raw_config: dict[str, Any], raw_settings: dict[str, Any] | None) -> list[str]:
    """What the stored node has that differs from what this tab submitted (field by field)."""
    changes = []
    if " ".join(name.split()) != node.name:
        changes.append(f"Its name is now “{node.name}”.")
    for key, value in node.config.items():
        if key in raw_config and _comparable(raw_config[key]) != _comparable(value):
            changes.append(f"Its field “{key}” is now {_short(value)}.")
    if raw_settings is not None and _comparable(raw_settings) != _comparable(node.settings):
        changes.append("Its settings (retries, timeout, on error) were changed.")
    return changes or ["Its position or settings changed (nothing in the fields you submitted)."]


def _comparable(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class VersionEntry:
    version: WorkflowVersion
    author: str | None
    changes: GraphChanges
    published: bool


@dataclass
class GraphChanges:
    added: list[str]
    removed: list[str]
    changed: list[str]
    moved: list[str]
    connections_added: int
    connections_removed: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved
                    or self.connections_added or self.connections_removed)


def graph_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> GraphChanges:
    """Nodes added / removed / changed (type, name, config or settings) / only moved, and connections
    added / removed, from one version's graph snapshot to the next (``before`` ``None``: the first)."""
    old = {n["id"]: n for n in (before or {}).get("nodes", [])}
    new = {n["id"]: n for n in after.get("nodes", [])}

    def essence(node: dict[str, Any]) -> Any:
        return {k: v for k, v in node.items() if k != "position"}

    def edges(graph: dict[str, Any] | None) -> set[tuple[Any, ...]]:
        return {(c["source"], c["source_port"], c["target"], c["target_port"]) for c in (graph or {}).get("connections", [])}

    both = [i for i in new if i in old]
    return GraphChanges(
        added=[new[i]["name"] for i in new if i not in old],
        removed=[old[i]["name"] for i in old if i not in new],
        changed=[new[i]["name"] for i in both if essence(new[i]) != essence(old[i])],
        moved=[new[i]["name"] for i in both if essence(new[i]) == essence(old[i])
               and new[i].get("position") != old[i].get("position")],
        connections_added=len(edges(after) - edges(before)),
        connections_removed=len(edges(before) - edges(after)),
    )


def _coordinate(value: float) -> float:
    if not -1e6 <= value <= 1e6:
        raise Invalid("Position is out of range.")
    return round(value, 1)


