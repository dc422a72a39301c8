"""The editor's test tools for one node: run up to it, run it alone, pin its output, see its data,
preview its expressions. Thin: the rules live in ``TestingService`` and ``engine/testruns.py``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from engine.errors import GraphError
from engine.testruns import Mode
from webapp.executions.services import ExecutionService
from webapp.forms import multidict
from webapp.runtime import Runtime
from webapp.testing.panes import COOKIE, VIEW_LABELS, VIEWS, Panes, chosen_view, data_view
from webapp.testing.services import TestingService
from webapp.workflows.controllers import VERSION_HEADER, _expected_version, _problems_by_node

TEST_LABELS = {"up_to": "Test run up to “{}”", "only": "Test run of “{}” alone", "all": "Run with pinned data"}
WATCH_LABELS = {"listen": "Request captured by Listen (runs the draft)", "webhook": "Webhook request (the published version)",
                "replay": "Replay of a logged request (runs the draft)"}


async def start_test_run(request: Request[Any, Any, Any], testing: TestingService, runtime: Runtime, workflow_id: int,
                         mode: Mode, node_id: str | None) -> Template:
    """Start a test run and answer with the run panel (badges of the nodes outside its scope go idle)."""
    try:
        execution, chosen = await testing.start(runtime.queue, workflow_id, mode, node_id, author_id=request.user.id,
                                                timeout=runtime.settings.execution_timeout, announce=runtime.announce)
    except GraphError as exc:
        graph = await testing.workflows.graph(workflow_id)
        return Template("executions/_run_refused.html", status_code=422, context={
            "problems": exc.problems, "graph": graph, "node_problems": _problems_by_node(exc.problems)})
    nodes = await testing.workflows.nodes(workflow_id)
    target = next((n.name for n in nodes if n.id == node_id), "")
    return Template("executions/_run_started.html", context={
        "execution": execution, "nodes": nodes, "plan": chosen, "test_label": TEST_LABELS[mode].format(target)})


class NodeTestingController(Controller):
    path = "/workflows/{workflow_id:int}/nodes/{node_id:str}"

    @post("/run-up-to")
    async def run_up_to(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                        runtime: NamedDependency[Runtime], workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        return await start_test_run(request, testing, runtime, workflow_id, "up_to", node_id)

    @post("/run-node")
    async def run_node(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                       runtime: NamedDependency[Runtime], workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        return await start_test_run(request, testing, runtime, workflow_id, "only", node_id)

    @post("/pin")
    async def pin(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                  workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        form = multidict(await request.form())
        node = await testing.pin(workflow_id, node_id, (form.get("data") or [""])[-1], _expected_version(form))
        return await _data(request, testing, workflow_id, node_id, headers={VERSION_HEADER: str(node.version)})

    @post("/unpin")
    async def unpin(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                    workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        form = multidict(await request.form())
        node = await testing.unpin(workflow_id, node_id, _expected_version(form))
        return await _data(request, testing, workflow_id, node_id, headers={VERSION_HEADER: str(node.version)})

    @get("/data")
    async def data(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                   workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        """The output pane's data (``?view=table|json|schema``; without it, the view chosen last)."""
        return await _data(request, testing, workflow_id, node_id)

    @get("/input")
    async def input(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                    workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        """The input pane's data: ``?view=`` as for ``/data``; ``?source=<node id>``: an earlier node's output."""
        view = _view(request, "input")
        data = await Panes(testing).input_data(workflow_id, node_id, request.query_params.get("source", ""))
        return Template("testing/_input_data.html", cookies=_remember(request, "input", view), context={
            "data": data, "view": view, "views": VIEWS, "view_labels": VIEW_LABELS, "data_view": data_view,
            "node": data.node})

    @get("/preview")
    async def preview(self, request: Request[Any, Any, Any], testing: NamedDependency[TestingService],
                      workflow_id: FromPath[int], node_id: FromPath[str]) -> Template:
        """``?_field=<name>&<name>=<text>``: htmx sends the input's own value under its name."""
        name = request.query_params.get("_field", "")
        source = request.query_params.get(name, "") if name else ""
        preview = await testing.preview(workflow_id, node_id, name, source)
        return Template("testing/_preview.html", context={"preview": preview})

    @get("/completions")
    async def completions(self, testing: NamedDependency[TestingService], workflow_id: FromPath[int],
                          node_id: FromPath[str]) -> dict[str, Any]:
        """JSON for the expression editor's autocomplete: the item's fields, the upstream nodes (names and
        fields), the variables, the sandbox's filters and functions (webapp/testing/completions.py)."""
        return (await testing.completions(workflow_id, node_id)).as_json()


class WatchController(Controller):
    """The canvas watches an execution it did not start itself (one a webhook request started while the editor
    listened): the same run panel as Run answers with, so the badges follow it live over the WebSocket."""

    path = "/workflows/{workflow_id:int}/executions/{execution_id:int}"

    @get("/watch")
    async def watch(self, testing: NamedDependency[TestingService], executions: NamedDependency[ExecutionService],
                    workflow_id: FromPath[int], execution_id: FromPath[int]) -> Template:
        execution = await executions.get(execution_id)
        if execution.workflow_id != workflow_id:
            raise NotFoundException()
        nodes = await testing.workflows.nodes(workflow_id)
        return Template("executions/_run_started.html", context={
            "execution": execution, "nodes": nodes, "plan": None,
            "test_label": WATCH_LABELS.get(execution.trigger, "")})


def _view(request: Request[Any, Any, Any], side: str) -> str:
    return chosen_view(request.query_params.get("view"), request.cookies.get(COOKIE.format(side)))


def _remember(request: Request[Any, Any, Any], side: str, view: str) -> list[Cookie]:
    """A view chosen explicitly (``?view=``) becomes the side's view from now on."""
    if request.query_params.get("view") != view:
        return []
    return [Cookie(key=COOKIE.format(side), value=view, path="/", samesite="lax", max_age=365 * 86400)]


async def _data(request: Request[Any, Any, Any], testing: TestingService, workflow_id: int, node_id: str,
                headers: dict[str, str] | None = None) -> Template:
    data = await testing.node_data(workflow_id, node_id)
    view = _view(request, "output")
    return Template("testing/_node_data.html", headers=headers or {}, cookies=_remember(request, "output", view),
                    context={"node": data.node, "run": data.run, "pinned": data.pinned, "oob": headers is not None,
                             "view": view, "views": VIEWS, "view_labels": VIEW_LABELS, "data_view": data_view})
