"""``GET /workflows/{id}/nodes/{node_id}/options/{field}?q=``: the choices of a dynamic-options field
(engine/options.py), loaded by the node type for the owner, through the node's credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import field_specs
from engine.credentials.redaction import Redactor
from engine.models import Workflow
from engine.options import Choice, OptionsContext, OptionsError, load_options, offers_options
from engine.worker import credentials_vault
from nodes.credentials import credential_registry
from webapp.credentials.oauth import keyring
from webapp.runtime import Runtime
from webapp.workflows.services import WorkflowService

MAX_QUERY = 200


@dataclass
class OwnerWorkflows:
    """The owner's workflows by name (``WorkflowDirectory``), most recently changed first."""

    db: AsyncSession
    owner_id: int
    limit: int = 100

    async def search(self, query: str) -> list[Choice]:
        statement = select(Workflow.id, Workflow.name).where(Workflow.owner_id == self.owner_id)
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(Workflow.name.ilike(f"%{escaped}%", escape="\\"))
        rows = await self.db.execute(statement.order_by(Workflow.updated_at.desc(), Workflow.id.desc()).limit(self.limit))
        return [Choice(workflow_id, f"{name} (#{workflow_id})") for workflow_id, name in rows]


class NodeOptionsController(Controller):
    path = "/workflows/{workflow_id:int}/nodes/{node_id:str}/options"

    @get("/{field:str}")
    async def options(self, request: Request[Any, Any, Any], workflows: NamedDependency[WorkflowService],
                      runtime: NamedDependency[Runtime], workflow_id: FromPath[int], node_id: FromPath[str],
                      field: FromPath[str]) -> dict[str, Any]:
        node = await workflows.node(workflow_id, node_id)
        node_type = workflows.node_type(node)
        kinds = {spec.name: spec.kind for spec in field_specs(node_type.Config)}
        if not offers_options(node_type, field, kinds):
            raise NotFoundException()
        query = (request.query_params.get("q") or "")[:MAX_QUERY]
        vault = credentials_vault(runtime.settings, runtime.sessions, credential_registry(), runtime.http,
                                  ring=keyring(request.app.state, runtime))
        ctx = OptionsContext(owner_id=workflows.owner_id, workflow_id=workflow_id, http=runtime.http,
                             credentials=vault.for_run(workflows.owner_id, Redactor()),
                             workflows=OwnerWorkflows(workflows.db, workflows.owner_id))
        credential = node.config.get("credential") if isinstance(node.config.get("credential"), int) else None
        try:
            choices = await load_options(node_type(), ctx, field, credential, query)
        except OptionsError as exc:
            return {"choices": [], "error": str(exc)}
        return {"choices": [{"value": c.value, "label": c.label} for c in choices], "error": None}
