"""The worker's periodic OAuth pass: connections in use never silently die.

Every ``REFRESH_EVERY`` seconds a worker refreshes the OAuth credentials used in the last ``USED_WITHIN``
whose access token expires within ``DUE_WITHIN`` (through ``ensure_fresh``: the same per-credential lock as
a run's refresh, so workers running the pass at once spend one refresh). A credential whose grant turns out
dead is marked ``needs_reconnect`` and announced to the error workflow of every workflow that uses it, with
``{"credential": {id, name, type, status, message}, "workflow": {id, name, url}}`` as its input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from saq import Queue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.alerts import ERROR_TRIGGER
from engine.changes import Announce, announce_created
from engine.credentials.oauth_refresh import OAuthDeps, OAuthServices, ensure_fresh, is_client_credentials
from engine.credentials.registry import CredentialRegistry
from engine.credentials.sealing import KeyRing
from engine.credentials.store import workflows_using
from engine.errors import CredentialNeedsReconnect, GraphError, PatchwireError, WorkflowPaused
from engine.executions import create_execution, enqueue_execution
from engine.models import Credential, Execution, Workflow
from engine.policy import parse_workflow_settings
from engine.registry import Registry

REFRESH_EVERY = 60.0
DUE_WITHIN = timedelta(minutes=10)
USED_WITHIN = timedelta(days=7)
log = logging.getLogger("patchwire.credentials")


@dataclass
class RefreshReport:
    refreshed: list[int] = field(default_factory=list)
    needs_reconnect: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    """Not refreshed this time (provider down or slow, …): tried again on the next pass."""
    announced: list[int] = field(default_factory=list)
    """The error-workflow executions started for the credentials found dead."""


async def refresh_due(sessions: async_sessionmaker[AsyncSession], ring: KeyRing, registry: CredentialRegistry,
                      http: httpx.AsyncClient, env: Mapping[str, str], now: datetime) -> RefreshReport:
    """Refresh the OAuth credentials used since ``now - USED_WITHIN`` whose token expires before
    ``now + DUE_WITHIN``; one failure does not stop the others."""
    deps = OAuthServices(sessions, ring, registry, http, env)
    oauth_types = [cls.type_name for cls in registry if cls.oauth is not None or is_client_credentials(cls)]
    async with sessions() as session:
        due = list(await session.scalars(select(Credential.id).where(
            Credential.type_name.in_(oauth_types), Credential.status != "needs_reconnect",
            Credential.expires_at.is_not(None), Credential.expires_at < now + DUE_WITHIN,
            Credential.last_used_at >= now - USED_WITHIN).order_by(Credential.id)))
    report = RefreshReport()
    for credential_id in due:
        await _refresh_one(deps, credential_id, report)
    return report


async def _refresh_one(deps: OAuthDeps, credential_id: int, report: RefreshReport) -> None:
    try:
        await ensure_fresh(deps, credential_id, min_valid=DUE_WITHIN.total_seconds())
    except CredentialNeedsReconnect as exc:
        log.warning("credential %s: %s", credential_id, exc)
        report.needs_reconnect.append(credential_id)
    except PatchwireError as exc:
        log.warning("credential %s was not refreshed: %s", credential_id, exc)
        report.failed.append(credential_id)
    else:
        report.refreshed.append(credential_id)


async def announce_needs_reconnect(sessions: async_sessionmaker[AsyncSession], queue: Queue, registry: Registry,
                                   credential_id: int, *, job_timeout: int, heartbeat: int,
                                   announce: Announce | None = None) -> list[int]:
    """Start the error workflow of each workflow that uses the credential; returns the executions' ids."""
    async with sessions() as session:
        credential = await session.get_one(Credential, credential_id)
        using = await workflows_using(session, credential.owner_id, credential.id)
        started: list[tuple[Execution, str]] = []
        for workflow_id, _ in using:
            workflow = await session.get_one(Workflow, workflow_id)
            if (run := await _start_error_workflow(session, registry, credential, workflow)) is not None:
                started.append(run)
        await session.commit()
    for execution, _ in started:
        await enqueue_execution(queue, execution.id, timeout=job_timeout, heartbeat=heartbeat)
    await announce_created(announce, started)
    return [execution.id for execution, _ in started]


async def _start_error_workflow(session: AsyncSession, registry: Registry, credential: Credential,
                                workflow: Workflow) -> tuple[Execution, str] | None:
    target_id = parse_workflow_settings(workflow.settings).error_workflow_id
    target = await session.get(Workflow, target_id) if target_id is not None else None
    if target is None or target.owner_id != credential.owner_id:
        return None
    try:
        execution = await create_execution(session, target, registry, trigger=ERROR_TRIGGER,
                                           input=reconnect_input(credential, workflow))
    except (GraphError, WorkflowPaused) as exc:
        log.warning("error workflow %s cannot run: %s", target.id, exc)
        return None
    return execution, target.name


def reconnect_input(credential: Credential, workflow: Workflow) -> dict[str, Any]:
    return {
        "credential": {"id": credential.id, "name": credential.name, "type": credential.type_name,
                       "status": credential.status, "message": credential.status_message,
                       "url": f"/credentials/{credential.id}"},
        "workflow": {"id": workflow.id, "name": workflow.name, "url": f"/workflows/{workflow.id}"},
    }


async def refresh_pass(deps: OAuthDeps, queue: Queue, registry: Registry, *, job_timeout: int, heartbeat: int,
                       announce: Announce | None = None) -> RefreshReport:
    """One pass: ``refresh_due``, then the error workflows of the credentials found dead."""
    report = await refresh_due(deps.sessions, deps.ring, deps.registry, deps.http, deps.env, datetime.now(UTC))
    for credential_id in report.needs_reconnect:
        report.announced += await announce_needs_reconnect(deps.sessions, queue, registry, credential_id,
                                                           job_timeout=job_timeout, heartbeat=heartbeat,
                                                           announce=announce)
    return report


async def refresh_forever(deps: OAuthDeps, queue: Queue, registry: Registry, *, job_timeout: int, heartbeat: int,
                          announce: Announce | None = None, every: float = REFRESH_EVERY) -> None:
    """The worker's upkeep loop: ``refresh_pass`` now and every ``every`` seconds; a failed pass is logged."""
    while True:
        try:
            await refresh_pass(deps, queue, registry, job_timeout=job_timeout, heartbeat=heartbeat, announce=announce)
        except Exception:
            log.warning("OAuth refresh pass failed; trying again in %s s", every, exc_info=True)
        await asyncio.sleep(every)
