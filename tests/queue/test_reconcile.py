"""The reconciler re-enqueues unfinished executions that the queue has lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from saq.job import Status

from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from engine.models import Execution, User, Workflow
from engine.queue import queue_from_url
from engine.worker import reconcile
from tests.factories import owner_workflow_version


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q.db'}"
    return request.getfixturevalue("redis_url")


async def test_lost_jobs_are_enqueued_again_and_only_once(queue_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    old = datetime.now(UTC) - timedelta(minutes=5)
    async with sessions.begin() as db:
        version = await owner_workflow_version(db, email="r@example.com")
        workflow = await db.get_one(Workflow, version.workflow_id)
        user = await db.get_one(User, workflow.owner_id)
        for status in ("queued", "running", "succeeded"):
            db.add(Execution(workflow_id=workflow.id, owner_id=user.id, version_id=version.id, status=status,
                             created_at=old))
        db.add(Execution(workflow_id=workflow.id, owner_id=user.id, version_id=version.id, status="queued"))
        db.add(Execution(workflow_id=workflow.id, owner_id=user.id, version_id=version.id, status="running",
                         created_at=old, lease_token="l" * 32, lease_until=time.time() + 60))
    queue = queue_from_url(queue_url)
    await queue.connect()
    try:
        restored = await reconcile(queue, sessions, job_timeout=60)
        assert restored == [1, 2], "unfinished and older than the grace period; not the finished, the new one, " \
                                   "or the one a live job holds the lease of"
        assert await queue.job("1") is not None and await queue.job("2") is not None
        assert await reconcile(queue, sessions, job_timeout=60) == [], "jobs that exist are left alone"
        given_up = await queue.job("2")
        await queue.finish(given_up, Status.FAILED, error="retries used up by crashed workers")
        assert await reconcile(queue, sessions, job_timeout=60) == [2], "a job SAQ gave up on is revived"
        revived = await queue.job("2")
        assert revived is not None and revived.status == Status.QUEUED
    finally:
        await queue.disconnect()
        await engine.dispose()
