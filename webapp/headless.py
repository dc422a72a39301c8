"""Running workflows without the browser: ``patchwire run`` and ``patchwire executions show``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import make_engine, make_sessionmaker
from engine.events import MemorySink, publish_all
from engine.migrate import upgrade_async
from engine.models import TERMINAL_STATUSES, Execution, NodeRun, Workflow
from engine.netguard import outbound_client, parse_networks
from engine.publisher import sink_from_url
from engine.queue import queue_from_url
from engine.settings import Settings
from engine.worker import WorkerServices, build_worker, credentials_vault
from nodes import registry
from nodes.credentials import credential_registry
from webapp.executions.services import start

POLL_SECONDS = 0.2


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def execution_json(db: AsyncSession, execution_id: int) -> dict[str, Any] | None:
    execution = await db.get(Execution, execution_id)
    if execution is None:
        return None
    runs = await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)
                            .order_by(NodeRun.started_at, NodeRun.id))
    return {
        "id": execution.id, "workflow_id": execution.workflow_id, "status": execution.status,
        "trigger": execution.trigger, "input": execution.input, "output": execution.output,
        "error": execution.error, "created_at": _iso(execution.created_at),
        "started_at": _iso(execution.started_at), "finished_at": _iso(execution.finished_at),
        "node_runs": [{
            "node_id": r.node_id, "node_name": r.node_name, "node_type": r.node_type, "attempt": r.attempt,
            "status": r.status, "output": r.output, "error": r.error, "logs": r.logs,
            "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at)} for r in runs],
    }


async def _workflow(db: AsyncSession, target: str, owner: str | None) -> Workflow:
    from webapp.cli import CLIError, _import_document, _owner

    if target.isdigit():
        workflow = await db.get(Workflow, int(target))
        if workflow is None or (owner and workflow.owner_id != await _owner(db, owner)):
            raise CLIError(f"no workflow {target}" + (f" owned by {owner}" if owner else ""))
        return workflow
    imported = await _import_document(db, Path(target), owner)
    return await db.get_one(Workflow, imported["workflow_id"])


async def run_headless(settings: Settings, target: str, owner: str | None, trigger_input: dict[str, Any],
                       wait: bool, timeout: float) -> dict[str, Any]:
    from engine.errors import GraphError
    from webapp.cli import CLIError

    await upgrade_async(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    queue = queue_from_url(settings.queue_url)
    await queue.connect()
    sink = None if settings.channels_url.startswith("memory") else sink_from_url(settings.channels_url)
    try:
        async with sessions() as db:
            workflow = await _workflow(db, target, owner)
            try:
                execution = await start(db, queue, registry, workflow, input=trigger_input, trigger="cli",
                                        timeout=settings.execution_timeout,
                                        announce=(lambda changes: publish_all(sink, changes)) if sink else None)
            except GraphError as exc:
                raise CLIError(f"workflow {workflow.id} cannot run: {exc}") from None
        if not wait:
            return {"execution_id": execution.id, "status": "queued"}
        return await _wait(settings, sessions, queue, execution.id, timeout)
    finally:
        if sink is not None:
            await sink.close()
        await queue.disconnect()
        await engine.dispose()


async def _wait(settings: Settings, sessions: async_sessionmaker[AsyncSession], queue: Any, execution_id: int,
                timeout: float) -> dict[str, Any]:
    """Poll the database until the execution ends; on the embedded queue, work it here meanwhile."""
    worker_task = None
    async with outbound_client(parse_networks(settings.http_allow_networks)) as http:
        if settings.embedded_queue:
            services = WorkerServices(sessions=sessions, sink=MemorySink(), registry=registry, http=http,
                                      execution_timeout=settings.execution_timeout, inline_wait=settings.inline_wait,
                                      vault=credentials_vault(settings, sessions, credential_registry(), http,
                                                              settings.provider_env))
            worker = build_worker(queue, services, concurrency=settings.worker_concurrency, in_process=True)
            worker_task = asyncio.create_task(worker.start())
        try:
            data = await _poll(sessions, execution_id, timeout)
        finally:
            if worker_task is not None:
                await worker.stop()
    return {"execution_id": execution_id, "status": data["status"], "output": data["output"],
            "error": data["error"]}


async def _poll(sessions: async_sessionmaker[AsyncSession], execution_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as db:
            data = await execution_json(db, execution_id)
        assert data is not None
        if data["status"] in TERMINAL_STATUSES or time.monotonic() > deadline:
            return data
        await asyncio.sleep(POLL_SECONDS)
