"""The home dashboard at ``/`` with its live partials, and the workflow overview page.

The home page is made of four partials — ``/home/counts``, ``/home/finished``, ``/home/workers``,
``/home/failures`` — each a GET that renders the current state of its part and nothing else. The page polls them
(``every 2s``) and also refreshes them on a ``pw:executions-changed`` event on ``<body>``, so a
push channel (the execution-change hub) can trigger a refresh without waiting for the next poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from saq import Queue
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.dashboard.home import HomeService, queue_facts
from webapp.dashboard.overview import OverviewService
from webapp.errors import wants_json
from webapp.forms import is_htmx
from webapp.runtime import Runtime


def provide_home(request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]) -> HomeService:
    return HomeService(db, request.user.id)


def provide_overviews(request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]) -> OverviewService:
    return OverviewService(db, request.user.id)


@dataclass(frozen=True)
class _Sources:
    home: HomeService
    queue: Queue
    now: datetime


async def _counts(sources: _Sources) -> dict[str, Any]:
    return {"counts": await sources.home.counts(sources.now)}


async def _workers(sources: _Sources) -> dict[str, Any]:
    return {"queue": await queue_facts(sources.queue)}


async def _finished(sources: _Sources) -> dict[str, Any]:
    return {"finished": await sources.home.recent_finished()}


async def _failures(sources: _Sources) -> dict[str, Any]:
    return {"failures": await sources.home.recent_failures(sources.now)}


PARTS: dict[str, Callable[[_Sources], Awaitable[dict[str, Any]]]] = {
    "counts": _counts, "finished": _finished, "workers": _workers, "failures": _failures}
"""The home page's partials: name → what it shows (template ``dashboard/_<name>.html``)."""


async def _everything(sources: _Sources) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for load in PARTS.values():
        context.update(await load(sources))
    return context


class DashboardController(Controller):
    dependencies = {"home": Provide(provide_home, sync_to_thread=False),
                    "overviews": Provide(provide_overviews, sync_to_thread=False)}

    @get("/")
    async def home(self, request: Request[Any, Any, Any], home: NamedDependency[HomeService],
                   runtime: NamedDependency[Runtime]) -> Template | Response[Any]:
        """The dashboard; ``Accept: application/json`` gets the same facts as JSON."""
        context = await _everything(_Sources(home, runtime.queue, datetime.now(UTC)))
        if wants_json(request):
            return Response({name: _jsonable(value) for name, value in context.items()})
        return Template("dashboard/home.html", context={**context, "user": request.user})

    @get("/home/{part:str}")
    async def home_part(self, request: Request[Any, Any, Any], home: NamedDependency[HomeService],
                        runtime: NamedDependency[Runtime], part: FromPath[str]) -> Template | Response[Any]:
        """One partial for htmx (polling, or a push that fires ``pw:executions-changed``); the whole
        page for a plain browser request; that part's facts as JSON for API clients."""
        load = PARTS.get(part)
        if load is None:
            raise NotFoundException()
        sources = _Sources(home, runtime.queue, datetime.now(UTC))
        if wants_json(request):
            return Response({name: _jsonable(value) for name, value in (await load(sources)).items()})
        if not is_htmx(request):
            return Template("dashboard/home.html", context={**await _everything(sources), "user": request.user})
        return Template(f"dashboard/_{part}.html", context=await load(sources))

    @get("/workflows/{workflow_id:int}/overview")
    async def overview(self, request: Request[Any, Any, Any], overviews: NamedDependency[OverviewService],
                       workflow_id: FromPath[int],
                       range_name: Annotated[str, QueryParameter(name="range")] = "day") -> Template | Response[Any]:
        """Charts of one workflow over the last day or week (``?range=day|week``); JSON for API clients,
        the ``#overview`` fragment for htmx (the range switch)."""
        overview = await overviews.overview(workflow_id, range_name, datetime.now(UTC))
        data = overview.to_dict()
        if wants_json(request):
            return Response(data)
        template = "dashboard/_overview.html" if _wants_fragment(request) else "dashboard/overview.html"
        return Template(template, context={"overview": overview, "data": data, "user": request.user})


def _wants_fragment(request: Request[Any, Any, Any]) -> bool:
    """An htmx swap wants the fragment; htmx restoring a pushed URL from history (the Back button)
    swaps the whole body and needs the page."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return asdict(value)
