"""Polls: the "something new appeared" half of the scheduler.

One poll of a due trigger, from any worker:

1. **claim** the row with a compare-and-set lease (``lease_token``, ``lease_until`` = now + timeout + margin),
   only if ``next_run_at`` is still the value the tick read and no live lease holds it;
2. **poll** outside any transaction: ``node_type.poll(ctx, config, state)`` under ``timeout``;
3. **commit** in one transaction, still holding the lease (checked by compare-and-set on the token): the
   new state, ``failures`` reset, ``next_run_at = now + interval``, the lease released, and — when the poll
   found items — one execution with them (``trigger="poll"``, ``input = {"items": [...]}``). Then enqueue.

A worker that dies between 2 and 3 committed nothing: the state did not advance, the lease runs out, and the
next poll finds the same items again (none lost, none repeated). A poll that raises or times out counts a
failure: ``failures += 1``, ``last_error``, ``next_run_at = now + backoff`` (``interval × 2^failures``, at
most an hour, never less than the interval); it is never disabled, and the next success resets the count.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.contract import PollContext, PollResult, PollTriggerType
from engine.credentials.redaction import Redactor
from engine.credentials.vault import for_node
from engine.errors import ConfigError, GraphError, RegistryError, WorkflowPaused
from engine.executions import create_execution
from engine.models import Execution, Trigger, Workflow, WorkflowVersion

if TYPE_CHECKING:
    from engine.credentials.vault import Vault
    from engine.triggers.scheduler import DueTrigger, Scheduler

log = logging.getLogger("patchwire.polling")
POLL_TRIGGER = "poll"
LEASE_MARGIN = 5.0
"""Seconds a poll's lease outlives its timeout: time to commit after a poll that used all of it."""
MAX_BACKOFF = 3600.0
DEFAULT_INTERVAL = 60.0
"""The back-off base of a trigger whose config cannot be read (so its interval is unknown)."""
MAX_ITEMS = 1000
"""Items one poll may start an execution with; a source that returns more is a failure (fix its query)."""


def backoff(interval: float, failures: int) -> float:
    """Seconds until the next poll after ``failures`` consecutive failures."""
    return max(interval, min(interval * 2 ** min(failures, 30), MAX_BACKOFF))


class PollFailed(Exception):
    """A poll that did not produce a usable result (its message is stored as ``last_error``)."""


class PollRunner:
    """Runs the due polls of one scheduler: awaited by ``tick``, in background tasks by ``run_forever``."""

    def __init__(self, scheduler: Scheduler, *, http: httpx.AsyncClient, vault: Vault | None, timeout: float) -> None:
        self.scheduler, self.http, self.vault, self.timeout = scheduler, http, vault, timeout
        self._tasks: dict[int, asyncio.Task[int]] = {}

    def start_in_background(self, due: list[DueTrigger]) -> None:
        for trigger in due:
            if trigger.id not in self._tasks:
                task = asyncio.create_task(self.run(trigger), name=f"poll-{trigger.id}")
                self._tasks[trigger.id] = task
                task.add_done_callback(lambda _t, key=trigger.id: self._tasks.pop(key, None))

    async def cancel(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, trigger: DueTrigger) -> int:
        """Claim, poll and commit one due poll trigger; the number of executions started (0 or 1). Raises
        nothing but cancellation: whatever fails is the trigger's recorded failure, or leaves it for later."""
        token = uuid.uuid4().hex
        try:
            if not await self._claim(trigger, token):
                return 0
        except Exception:  # the database is away: the next pass tries again
            log.warning("poll trigger %s could not be claimed", trigger.id, exc_info=True)
            return 0
        interval = DEFAULT_INTERVAL
        try:
            node_type, config = self.scheduler.node_and_config(trigger)
            if not isinstance(node_type, PollTriggerType):
                raise PollFailed(f"node type {trigger.node_type!r} is not a polling trigger")
            interval = float(node_type.interval(config))
            result = await self._poll(trigger, node_type, config)
            return await self._commit(trigger, token, result, interval)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(trigger, token))
            raise
        except (PollFailed, RegistryError, ConfigError) as exc:
            await self._fail(trigger, token, str(exc), interval)
        except Exception as exc:  # e.g. the commit failed: the state did not advance
            log.exception("poll trigger %s failed outside its source", trigger.id)
            await self._fail(trigger, token, f"{type(exc).__name__}: {exc}", interval)
        return 0

    async def _claim(self, trigger: DueTrigger, token: str) -> bool:
        now = self.scheduler.clock().timestamp()
        async with self.scheduler.sessions.begin() as session:
            result = await session.execute(
                update(Trigger).where(Trigger.id == trigger.id, Trigger.next_run_at == trigger.next_run_at,
                                      or_(Trigger.lease_until.is_(None), Trigger.lease_until < now))
                .values(lease_token=token, lease_until=now + self.timeout + LEASE_MARGIN)
                .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _poll(self, trigger: DueTrigger, node_type: PollTriggerType, config: Any) -> PollResult:
        ctx = PollContext(workflow_id=trigger.workflow_id, node_id=trigger.node_id,
                          node_name=await self._node_name(trigger), http=self.http, now=self.scheduler.clock(),
                          credentials=None)
        if self.vault is not None:
            ctx.credentials = for_node(self.vault.for_run(trigger.owner_id, Redactor()), config, ctx.node_name)
        try:
            result = await asyncio.wait_for(node_type.poll(ctx, config, trigger.state), self.timeout)
        except TimeoutError:
            raise PollFailed(f"the poll did not answer within {self.timeout:g} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the source's failure is the trigger's, shown on the workflow
            raise PollFailed(f"{type(exc).__name__}: {exc}"[:2000]) from exc
        return checked(result)

    async def _node_name(self, trigger: DueTrigger) -> str:
        async with self.scheduler.sessions() as session:
            version = await session.get(WorkflowVersion, trigger.version_id)
        for node in (version.graph.get("nodes", []) if version is not None else []):
            if node.get("id") == trigger.node_id:
                return str(node.get("name") or trigger.node_id)
        return trigger.node_id

    async def _commit(self, trigger: DueTrigger, token: str, result: PollResult, interval: float) -> int:
        now = self.scheduler.clock()
        async with self.scheduler.sessions() as session:
            advanced = await self._release_with(session, trigger, token, state=result.state, failures=0,
                                                last_error=None, last_error_at=None, last_run_at=now,
                                                next_run_at=now + timedelta(seconds=interval))
            if not advanced:
                log.warning("poll trigger %s lost its lease before the commit; nothing stored", trigger.id)
                return 0
            started = await self._start(session, trigger, result.items) if result.items else None
            if isinstance(started, str):  # rolled back: the state did not advance, the items come again
                await session.rollback()
                await self._fail(trigger, token, started, interval)
                return 0
            await session.commit()
        if started:
            await self.scheduler.enqueue([started])
            return 1
        return 0

    async def _start(self, session: AsyncSession, trigger: DueTrigger,
                     items: list[dict[str, Any]]) -> tuple[Execution, str] | str:
        """The execution of the new items, in the commit's transaction; or why none may start now."""
        workflow = await session.get_one(Workflow, trigger.workflow_id)
        try:
            execution = await create_execution(session, workflow, self.scheduler.registry, input={"items": items},
                                               trigger=POLL_TRIGGER, trigger_node=trigger.node_id)
        except (WorkflowPaused, GraphError) as exc:
            return f"new items found, but the workflow cannot start: {exc}"
        return execution, workflow.name

    async def _fail(self, trigger: DueTrigger, token: str, message: str, interval: float) -> None:
        now = self.scheduler.clock()
        failures = trigger.failures + 1
        log.warning("poll trigger %s (workflow %s) failed %d time(s): %s", trigger.id, trigger.workflow_id, failures,
                    message)
        try:
            async with self.scheduler.sessions() as session:
                await self._release_with(session, trigger, token, failures=Trigger.failures + 1,
                                         last_error=message[:2000], last_error_at=now,
                                         next_run_at=now + timedelta(seconds=backoff(interval, failures)))
                await session.commit()
        except Exception:  # the lease runs out by itself; the poll is retried then
            log.warning("could not record the failure of poll trigger %s", trigger.id, exc_info=True)

    async def _release(self, trigger: DueTrigger, token: str) -> None:
        try:
            async with self.scheduler.sessions() as session:
                await self._release_with(session, trigger, token)
                await session.commit()
        except Exception:  # it runs out by itself
            log.warning("could not release the lease of poll trigger %s", trigger.id, exc_info=True)

    async def _release_with(self, session: AsyncSession, trigger: DueTrigger, token: str, **values: Any) -> bool:
        """Update the row and drop the lease, if this poll still holds it (compare-and-set on ``token``)."""
        query = update(Trigger).where(Trigger.id == trigger.id, Trigger.lease_token == token)
        result = await session.execute(query.values(lease_token=None, lease_until=None,
                                                    updated_at=self.scheduler.clock(), **values)
                                       .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def checked(result: Any) -> PollResult:
    """The poll's result, or ``PollFailed`` saying what is wrong with it (items must be JSON objects)."""
    if not isinstance(result, PollResult):
        raise PollFailed(f"the poll returned {type(result).__name__}, not a PollResult")
    if not isinstance(result.state, dict):
        raise PollFailed("the poll's new state is not a JSON object")
    if len(result.items) > MAX_ITEMS:
        raise PollFailed(f"the poll found {len(result.items)} new items; at most {MAX_ITEMS} start one execution")
    if not all(isinstance(item, dict) for item in result.items):
        raise PollFailed("the poll returned items that are not JSON objects")
    try:
        msgspec.json.encode(result.state)
        msgspec.json.encode(result.items)
    except (TypeError, msgspec.EncodeError) as exc:
        raise PollFailed(f"the poll's items or state are not JSON: {exc}") from None
    return result

