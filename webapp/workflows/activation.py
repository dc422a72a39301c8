"""Activating and deactivating a workflow from the list and the editor, and what both show of its triggers:
the next run of its schedules and the error of a failing trigger (engine/triggers/activation.py does the work).

Owner-scoped like ``WorkflowService``: another user's workflow is a 404. Activation problems (an invalid draft,
no automatic trigger) are a 422 whose problems land in the page's flash area, as Publish's do
(``webapp/errors.py``, ``handle_activation_error``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.models import Node, Trigger, Workflow
from engine.triggers import ActivationError, activate, deactivate
from webapp.credentials.services import CredentialService
from webapp.errors import Conflict, wants_json
from webapp.workflows.services import WorkflowService

DEACTIVATED_NOTICE = ("Deactivated: the published version has no Webhook, Schedule or polling trigger any more. "
                      "Add one and activate the workflow again.")


@dataclass
class Failing:
    """A trigger whose last polls failed (backed off, never disabled silently)."""

    node_id: str
    node_name: str
    failures: int
    last_error: str
    last_error_at: datetime | None


@dataclass
class TriggerState:
    """What the list and the editor show of an active workflow's triggers."""

    next_run: datetime | None = None
    """The earliest next run of its schedule triggers (``None``: no schedule, or none due any more)."""
    failing: list[Failing] = field(default_factory=list)


async def trigger_states(db: AsyncSession, owner_id: int, workflow_ids: list[int]) -> dict[int, TriggerState]:
    """The trigger state of each of the owner's workflows given (absent: no trigger rows, i.e. inactive)."""
    if not workflow_ids:
        return {}
    rows = (await db.execute(
        select(Trigger, Node.name).outerjoin(Node, (Node.id == Trigger.node_id) & (Node.workflow_id == Trigger.workflow_id))
        .where(Trigger.owner_id == owner_id, Trigger.workflow_id.in_(workflow_ids))
        .order_by(Trigger.workflow_id, Trigger.id))).all()
    states: dict[int, TriggerState] = {}
    for trigger, node_name in rows:
        state = states.setdefault(trigger.workflow_id, TriggerState())
        if trigger.kind == "schedule" and trigger.next_run_at is not None \
                and (state.next_run is None or trigger.next_run_at < state.next_run):
            state.next_run = trigger.next_run_at
        if trigger.failures > 0:
            state.failing.append(Failing(trigger.node_id, node_name or trigger.node_id, trigger.failures,
                                         trigger.last_error or "unknown error", trigger.last_error_at))
    return states


@dataclass
class ActivationService:
    workflows: WorkflowService
    credentials: CredentialService

    @property
    def db(self) -> AsyncSession:
        return self.workflows.db

    async def activate(self, workflow_id: int, author_id: int) -> Workflow:
        """Publish the draft and start its triggers; ``ActivationError`` lists the problems (nothing changes)."""
        workflow = await self.workflows.get(workflow_id)
        try:
            await activate(self.db, workflow, self.workflows.registry, author_id=author_id, now=datetime.now(UTC))
            await self.db.commit()
        except ActivationError:
            await self.db.rollback()
            raise
        except IntegrityError:  # activated at the same moment in another tab: its rows won
            await self.db.rollback()
            raise Conflict(detail="This workflow was activated in another tab at the same moment. "
                                  "Reload the page.") from None
        return workflow

    async def deactivate(self, workflow_id: int) -> Workflow:
        workflow = await self.workflows.get(workflow_id)
        await deactivate(self.db, workflow, now=datetime.now(UTC))
        await self.db.commit()
        return workflow

    async def states(self, workflow_ids: list[int]) -> dict[int, TriggerState]:
        return await trigger_states(self.db, self.workflows.owner_id, workflow_ids)


class ActivationController(Controller):
    path = "/workflows"

    @post("/{workflow_id:int}/activate")
    async def activate(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                       credentials: NamedDependency[CredentialService], workflow_id: FromPath[int]) -> Response[Any]:
        service = ActivationService(workflows, credentials)
        return await _switched(request, service, await service.activate(workflow_id, request.user.id))

    @post("/{workflow_id:int}/deactivate")
    async def deactivate(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                         credentials: NamedDependency[CredentialService], workflow_id: FromPath[int]) -> Response[Any]:
        service = ActivationService(workflows, credentials)
        return await _switched(request, service, await service.deactivate(workflow_id))


async def _switched(request: Request[Any, Any, Any], service: ActivationService, workflow: Workflow) -> Response[Any]:
    """The list's row (``where=list``) or the editor's switch (with the publish state, out of band)."""
    states = await service.states([workflow.id])
    if wants_json(request):
        state = states.get(workflow.id, TriggerState())
        return Response({"id": workflow.id, "active": workflow.active,
                         "next_run": state.next_run.isoformat() if state.next_run else None,
                         "failing": [{"node_id": f.node_id, "error": f.last_error} for f in state.failing]})
    if request.query_params.get("where") == "list":
        return Template("workflows/_row.html", context={
            "workflow": workflow, "states": states, "now": datetime.now(UTC),
            "reconnect": await service.credentials.reconnect_needed([workflow.id])})
    return Template("workflows/_active_switch.html", context={
        "workflow": workflow, "published": await service.workflows.published(workflow.id), "oob_publish": True,
        "oob_banner": True, "state": states.get(workflow.id)})
