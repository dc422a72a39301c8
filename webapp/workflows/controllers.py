"""Workflow pages and the editor's partials. Thin: the rules live in ``WorkflowService``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from msgspec import Struct

from engine.config import config_from_form, parse_config
from engine.errors import ConfigError, GraphError, RegistryError
from engine.graph import ports, validate_graph
from engine.models import Node
from engine.netguard import Network, parse_networks
from engine.policy import NodeSettings, RetryPolicy, parse_settings, parse_workflow_settings, settings_from_form
from nodes import registry
from webapp.credentials.references import credential_fields, picker_choices, type_titles
from webapp.credentials.services import CredentialService, connectable
from webapp.errors import Invalid, wants_json
from webapp.executions.services import start
from webapp.forms import Form, is_htmx, multidict
from webapp.runtime import Runtime
from webapp.testing.services import TestingService
from webapp.workflows.activation import DEACTIVATED_NOTICE, trigger_states
from webapp.workflows.autosave import autosave_response, is_autosave
from webapp.workflows.importing import FORMATS, MAX_IMPORT_BYTES, MAX_IMPORT_NODES, prepare
from webapp.workflows.notices import address_notices
from webapp.workflows.services import DELETED_ELSEWHERE, WorkflowService
from webapp.workflows.unknown import unknown_type


class NameForm(Struct):
    name: str = ""


class RenameForm(Struct):
    name: str = ""
    version: int | None = None


class NewNodeForm(Struct):
    type: str = ""
    x: float = 0.0
    y: float = 0.0


class PositionForm(Struct):
    x: float = 0.0
    y: float = 0.0
    version: int | None = None
    """The node's version the editor saw; a stale one is refused with 409 (see ``StaleEdit``)."""


IMPORT_REPORT = "import_report"
"""Session key: the last import's summary and n8n report, shown once on the new workflow's editor page."""
IMPORT_BODY_LIMIT = 4 * MAX_IMPORT_BYTES
"""Bodies up to this size reach the handler, which refuses files over MAX_IMPORT_BYTES with the exact sizes."""
IMPORT_LIMITS = {"import_formats": FORMATS, "import_max_mib": MAX_IMPORT_BYTES // (1024 * 1024),
                 "import_max_nodes": MAX_IMPORT_NODES}


async def _import_bytes(form: Any) -> bytes:
    """The uploaded file's bytes (bounded by IMPORT_BODY_LIMIT), else the pasted text."""
    upload = form.get("file")
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
        return bytes(await upload.read())
    text = form.get("document")
    return text.encode() if isinstance(text, str) else b""


VERSION_HEADER = "X-Node-Version"
"""The node's version after a write: the editor sends it back with its next write of that node."""


def _expected_version(form: dict[str, list[str]]) -> int | None:
    text = (form.get("version") or [""])[-1].strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise Invalid("version must be a whole number.") from None


class ConnectionForm(Struct):
    source: str = ""
    source_port: str = "main"
    target: str = ""
    target_port: str = "main"


def node_view(node: Node) -> dict[str, Any]:
    """A node with its type; a type no longer registered shows as a placeholder the user can delete."""
    problems: list[str] = []
    try:
        node_type = registry.get(node.type_name, node.type_version)
        parse_config(node_type.Config, node.config)
    except RegistryError:
        node_type = unknown_type(node.type_name, node.type_version)
    except ConfigError as exc:  # e.g. a new HTTP Request without its URL: the canvas badge says so
        problems = [f"{field}: {message}" for field, message in exc.field_errors.items()]
    return {"node": node, "type": node_type, "outputs": ports(node_type, "outputs", parse_settings(node.settings)),
            "problems": problems}


class WorkflowController(Controller):
    path = "/workflows"

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                        credentials: NamedDependency[CredentialService]) -> Template:
        listed = await workflows.list()
        return Template("workflows/list.html", context={"workflows": listed, "user": request.user,
                                                        "reconnect": await credentials.reconnect_needed(),
                                                        "states": await trigger_states(workflows.db, workflows.owner_id,
                                                                                       [w.id for w in listed]),
                                                        "now": datetime.now(UTC), **IMPORT_LIMITS})

    @post("/import", request_max_body_size=IMPORT_BODY_LIMIT)
    async def import_workflow(self, request: Request[Any, Any, Any],
                              workflows: NamedDependency[WorkflowService]) -> Response[Any]:
        """A workflow file (field ``file``) or pasted JSON (field ``document``), Patchwire or n8n format
        (field ``format``: auto, patchwire, n8n), becomes a new workflow; nothing is created on any problem."""
        form = await request.form()
        try:
            prepared = prepare(await _import_bytes(form), str(form.get("format") or "auto"),
                               workflows=await workflows.names())
            workflow, missing = await workflows.import_with_credentials(prepared.document)
        except GraphError as exc:
            if is_htmx(request) and not wants_json(request):
                return Template("workflows/_import_problems.html", context={"problems": exc.problems},
                                status_code=422)
            raise
        summary = {"workflow_id": workflow.id, "format": prepared.format, "nodes": len(prepared.document.nodes),
                   "connections": len(prepared.document.connections),
                   "report": prepared.report.to_dict() if prepared.report else None,
                   "missing_credentials": [m.to_dict() for m in missing]}
        url = f"/workflows/{workflow.id}"
        if wants_json(request):
            return Response({**summary, "url": url}, status_code=201)
        request.set_session({**(request.session or {}), IMPORT_REPORT: summary})
        if is_htmx(request):
            return Response("", status_code=200, headers={"HX-Redirect": url})
        return Redirect(url, status_code=303)

    @post("/")
    async def create(self, workflows: NamedDependency[WorkflowService], data: Annotated[NameForm, Form]) -> Redirect:
        workflow = await workflows.create(data.name or "Untitled workflow")
        return Redirect(f"/workflows/{workflow.id}", status_code=303)

    @post("/{workflow_id:int}/rename")
    async def rename(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                     workflow_id: FromPath[int], data: Annotated[NameForm, Form]) -> Template | Redirect:
        workflow = await workflows.rename(workflow_id, data.name)
        if is_htmx(request):
            return Template("workflows/_row.html", context={
                "workflow": workflow, "now": datetime.now(UTC),
                "states": await trigger_states(workflows.db, workflows.owner_id, [workflow.id])})
        return Redirect("/workflows", status_code=303)

    @delete("/{workflow_id:int}", status_code=200)
    async def remove(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Response[str]:
        await workflows.delete(workflow_id)
        return Response("", status_code=200)

    @get("/{workflow_id:int}")
    async def editor(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                     credentials: NamedDependency[CredentialService], workflow_id: FromPath[int]) -> Template:
        workflow = await workflows.get(workflow_id)
        reconnect = (await credentials.reconnect_needed([workflow_id])).get(workflow_id, [])
        nodes = await workflows.nodes(workflow_id)
        connections = await workflows.connections(workflow_id)
        imported = (request.session or {}).get(IMPORT_REPORT)
        if imported and imported.get("workflow_id") == workflow_id:  # shown once, right after the import
            request.set_session({k: v for k, v in request.session.items() if k != IMPORT_REPORT})
        else:
            imported = None
        restored, kept = request.query_params.get("restored"), request.query_params.get("kept")
        return Template("workflows/editor.html", context={"imported": imported, **IMPORT_LIMITS,
            "published": await workflows.published(workflow_id),
            "restored": restored if restored and restored.isdigit() else None,
            "kept": kept if kept and kept.isdigit() else None,
            "workflow": workflow, "nodes": [node_view(n) for n in nodes], "palette": registry.latest_types(),
            "node_types": {t.type_name: {"inputs": list(t.inputs), "outputs": list(t.outputs)} for t in registry},
            "paused": workflow.paused_until is not None and workflow.paused_until > datetime.now(UTC),
            "connection_list": [{"source": c.source_node_id, "source_port": c.source_port,
                                 "target": c.target_node_id, "target_port": c.target_port} for c in connections],
            "reconnect": [(c, connectable(t) if (t := credentials.type_of(c)) else False) for c in reconnect],
            "state": (await trigger_states(workflows.db, workflows.owner_id, [workflow_id])).get(workflow_id),
            "user": request.user})

    # versions ------------------------------------------------------------------------------
    @post("/{workflow_id:int}/publish")
    async def publish(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                      workflow_id: FromPath[int]) -> Template:
        was_active = (await workflows.get(workflow_id)).active
        version = await workflows.publish(workflow_id, request.user.id)
        workflow = await workflows.get(workflow_id)
        notice = DEACTIVATED_NOTICE if was_active and not workflow.active else None
        return Template("workflows/_publish_state.html", context={
            "workflow": workflow, "published": version, "just_published": True, "oob_switch": True,
            "notice": notice})

    @get("/{workflow_id:int}/versions")
    async def history(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Template:
        return Template("workflows/_history.html", context={
            "workflow": await workflows.get(workflow_id), "entries": await workflows.history(workflow_id)})

    @post("/{workflow_id:int}/versions/{number:int}/restore")
    async def restore(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                      workflow_id: FromPath[int], number: FromPath[int]) -> Response[str] | Redirect:
        _, kept = await workflows.restore(workflow_id, number, request.user.id)
        target = f"/workflows/{workflow_id}?restored={number}" + (f"&kept={kept}" if kept else "")
        if is_htmx(request):
            return Response("", status_code=200, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)

    @get("/{workflow_id:int}/export")
    async def export(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Response[bytes]:
        document = await workflows.export(workflow_id)
        filename = f"workflow-{workflow_id}.json"
        return Response(msgspec.json.format(msgspec.json.encode(document)), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    # workflow settings ---------------------------------------------------------------------
    @get("/{workflow_id:int}/settings")
    async def settings_panel(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Template:
        return await _settings_panel(workflows, await workflows.get(workflow_id), {})

    @post("/{workflow_id:int}/settings")
    async def save_settings(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                            workflow_id: FromPath[int]) -> Template:
        form = multidict(await request.form())
        raw = workflow_settings_from_form(form)
        try:
            workflow = await workflows.update_settings(workflow_id, raw)
        except ConfigError as exc:
            workflow = await workflows.get(workflow_id)
            return await _settings_panel(workflows, workflow, exc.field_errors, raw=raw, status_code=422)
        return await _settings_panel(workflows, workflow, {}, saved=True)

    @post("/{workflow_id:int}/resume")
    async def resume(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Template:
        workflow = await workflows.resume(workflow_id)
        return await _settings_panel(workflows, workflow, {}, saved=True)

    # nodes -------------------------------------------------------------------------------
    @post("/{workflow_id:int}/nodes")
    async def add_node(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                       data: Annotated[NewNodeForm, Form]) -> Template:
        node = await workflows.add_node(workflow_id, data.type, data.x, data.y)
        return Template("nodes/_canvas_node.html", context=node_view(node), status_code=201)

    @get("/{workflow_id:int}/nodes/{node_id:str}")
    async def node_panel(self, workflows: NamedDependency[WorkflowService], runtime: NamedDependency[Runtime],
                         workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        node = await workflows.node(workflow_id, node_id)
        return _panel(node, node.config, {}, choices=await _choices(workflows, node), allow=_allowed(runtime))

    @post("/{workflow_id:int}/nodes/{node_id:str}")
    async def save_node(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                        runtime: NamedDependency[Runtime], workflow_id: FromPath[int],
                        node_id: FromPath[str]) -> Template | Response[dict[str, Any]]:
        form = multidict(await request.form())
        expected = _expected_version(form)
        node = await (workflows.node(workflow_id, node_id) if expected is None else workflows.ensure_node_exists(
            workflow_id, node_id, DELETED_ELSEWHERE))
        name = (form.get("name") or [""])[-1]
        raw, errors = config_from_form(workflows.node_type(node).Config, form)
        raw_settings = settings_from_form(form)
        try:
            if errors:
                await workflows.node_for_write(workflow_id, node_id, expected)  # a stale tab learns that first
                raise ConfigError(errors)
            node = await workflows.update_node(workflow_id, node_id, name, raw, raw_settings, expected, loaded=node)
        except ConfigError as exc:
            node = await workflows.node(workflow_id, node_id)  # reloaded: a failed commit expired it
            if is_autosave(request):  # the browser keeps what was typed and shows the errors in place
                return autosave_response(request, node, exc.field_errors, [], VERSION_HEADER)
            # What the person typed is shown again with the errors; the stored config is unchanged.
            return _panel(node, {**node.config, **raw}, exc.field_errors, name=name, status_code=422,
                          settings=raw_settings, choices=await _choices(workflows, node), allow=_allowed(runtime))
        if is_autosave(request):
            return autosave_response(request, node, {}, list(workflows.outputs(node)), VERSION_HEADER)
        response = _panel(node, node.config, {}, saved=True, choices=await _choices(workflows, node),
                          allow=_allowed(runtime))
        # the canvas adds or removes the node's error output to match its settings
        response.headers["HX-Trigger"] = json.dumps({"pw-ports": {"node": node.id, "outputs": list(workflows.outputs(node))}})
        response.headers[VERSION_HEADER] = str(node.version)
        return response

    @post("/{workflow_id:int}/nodes/{node_id:str}/name")
    async def rename_node(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                          node_id: FromPath[str], data: Annotated[RenameForm, Form]) -> Template:
        node = await workflows.rename_node(workflow_id, node_id, data.name, data.version)
        return Template("nodes/_name.html", context={"node": node}, headers={VERSION_HEADER: str(node.version)})

    @post("/{workflow_id:int}/nodes/{node_id:str}/position")
    async def move_node(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int], node_id: FromPath[str],
                        data: Annotated[PositionForm, Form]) -> Response[str]:
        node = await workflows.move_node(workflow_id, node_id, data.x, data.y, data.version)
        return Response("", status_code=204, headers={VERSION_HEADER: str(node.version)})

    @delete("/{workflow_id:int}/nodes/{node_id:str}", status_code=204)
    async def delete_node(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                          node_id: FromPath[str], version: FromQuery[int | None] = None) -> None:
        await workflows.delete_node(workflow_id, node_id, version)

    # connections ---------------------------------------------------------------------------
    @post("/{workflow_id:int}/connections")
    async def add_connection(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                             data: Annotated[ConnectionForm, Form]) -> Response[str]:
        await workflows.add_connection(workflow_id, data.source, data.source_port, data.target, data.target_port)
        return Response("", status_code=201)

    @post("/{workflow_id:int}/connections/delete")
    async def delete_connection(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int],
                                data: Annotated[ConnectionForm, Form]) -> Response[str]:
        await workflows.delete_connection(workflow_id, data.source, data.source_port, data.target, data.target_port)
        return Response("", status_code=204)

    # running -------------------------------------------------------------------------------
    @post("/{workflow_id:int}/run")
    async def run(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService], runtime: NamedDependency[Runtime],
                  workflow_id: FromPath[int]) -> Template:
        workflow = await workflows.get(workflow_id)
        testing, chosen = TestingService(workflows), None
        try:
            if await testing.has_pins(workflow_id):  # the editor's Run uses pinned test data (engine/testruns.py)
                execution, chosen = await testing.start(runtime.queue, workflow_id, "all", None,
                                                        author_id=request.user.id,
                                                        timeout=runtime.settings.execution_timeout,
                                                        announce=runtime.announce)
            else:
                execution = await start(workflows.db, runtime.queue, registry, workflow, author_id=request.user.id,
                                        timeout=runtime.settings.execution_timeout, announce=runtime.announce)
        except GraphError as exc:
            graph = await workflows.graph(workflow_id)
            return Template("executions/_run_refused.html", status_code=422, context={
                "problems": exc.problems, "graph": graph,
                "node_problems": _problems_by_node(exc.problems)})
        nodes = await workflows.nodes(workflow_id)
        return Template("executions/_run_started.html", context={
            "execution": execution, "nodes": nodes, "plan": chosen,
            "test_label": "Run with pinned data" if chosen is not None else ""})

    @get("/{workflow_id:int}/problems")
    async def problems(self, workflows: NamedDependency[WorkflowService], workflow_id: FromPath[int]) -> Template:
        graph = await workflows.graph(workflow_id)
        problems = validate_graph(graph, registry)
        return Template("executions/_run_refused.html", context={
            "problems": problems, "graph": graph, "node_problems": _problems_by_node(problems)})


def workflow_settings_from_form(form: dict[str, list[str]]) -> dict[str, Any]:
    def last(name: str) -> str:
        return (form.get(name) or [""])[-1].strip()

    breaker: dict[str, Any] = {"enabled": bool(last("breaker.enabled"))}
    for name in ("failure_ratio", "min_executions", "window_seconds", "cooldown_seconds"):
        if value := last(f"breaker.{name}"):
            breaker[name] = value
    raw: dict[str, Any] = {"breaker": breaker}
    if value := last("error_workflow_id"):
        raw["error_workflow_id"] = value
    if value := last("execution_timeout"):
        raw["execution_timeout"] = value
    return raw


async def _settings_panel(workflows: WorkflowService, workflow: Any, errors: dict[str, str], *,
                          raw: dict[str, Any] | None = None, saved: bool = False, status_code: int = 200) -> Template:
    settings = parse_workflow_settings(workflow.settings)
    view = {**msgspec.structs.asdict(settings), "breaker": msgspec.structs.asdict(settings.breaker)}
    if raw is not None:
        view = {**view, **raw, "breaker": {**view["breaker"], **raw.get("breaker", {})}}
    others = [w for w in await workflows.list() if w.id != workflow.id]
    return Template("workflows/_settings.html", status_code=status_code, context={
        "workflow": workflow, "settings": view, "others": others, "errors": errors, "saved": saved,
        "paused": workflow.paused_until is not None and workflow.paused_until > datetime.now(UTC)})


def _problems_by_node(problems: list[Any]) -> dict[str, list[str]]:
    by_node: dict[str, list[str]] = {}
    for problem in problems:
        if problem.node_id:
            by_node.setdefault(problem.node_id, []).append(problem.message)
    return by_node


async def _choices(workflows: WorkflowService, node: Node) -> dict[str, Any]:
    """The owner's credentials the node's credential picker offers (none for a node type without one)."""
    node_type = node_view(node)["type"]
    return await picker_choices(workflows.db, workflows.owner_id, node_type) if credential_fields(node_type) else {}


def _allowed(runtime: Runtime) -> tuple[Network, ...]:
    """The networks outbound requests may reach although not public (checked at startup, so valid here)."""
    return parse_networks(runtime.settings.http_allow_networks)


def _panel(node: Node, config: dict[str, Any], errors: dict[str, str], *, name: str | None = None,
           saved: bool = False, status_code: int = 200, settings: dict[str, Any] | None = None,
           choices: dict[str, Any] | None = None, allow: tuple[Network, ...] = ()) -> Template:
    return Template("nodes/_panel.html", status_code=status_code, context={
        "notices": address_notices(config, allow),
        "credential_choices": choices or {}, "credential_titles": type_titles() if choices else {},
        **node_view(node), "config": config, "errors": errors, "name": node.name if name is None else name,
        "saved": saved, "settings": _settings_view(node.settings if settings is None else settings)})


def _settings_view(raw: dict[str, Any]) -> dict[str, Any]:
    """Settings as the form shows them: stored values over defaults (raw text after an error)."""
    defaults = {**msgspec.structs.asdict(NodeSettings()), "retry": msgspec.structs.asdict(RetryPolicy())}
    return {**defaults, **raw, "retry": {**defaults["retry"], **(raw.get("retry") or {})}}


