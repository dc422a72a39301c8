"""Rows the engine-level tests need before any execution: an owner, a workflow and a pinned version."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.models import User, Workflow, WorkflowVersion


async def owner_workflow_version(db: AsyncSession, *, email: str, name: str = "w",
                                 graph: dict[str, Any] | None = None) -> WorkflowVersion:
    """Add a user, their workflow and its version 1 (flushed, so ids are set); the version."""
    user = User(email=email, password_hash="x")
    db.add(user)
    await db.flush()
    workflow = Workflow(owner_id=user.id, name=name)
    db.add(workflow)
    await db.flush()
    version = WorkflowVersion(workflow_id=workflow.id, number=1, graph=graph or {"nodes": [], "connections": []})
    db.add(version)
    await db.flush()
    return version
