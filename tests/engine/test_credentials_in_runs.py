"""Credentials at run time: a node gets its credential through ``ctx.credentials`` in the real
``run_execution`` job, on SQLite and PostgreSQL — the owner's and of an accepted type only, refused with a
clear message otherwise — and the secret it puts into its output, log and error is stored and published
as "[redacted]", also by a sub-workflow and the workflow calling it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.credentials.redaction import REDACTED
from engine.credentials.sealing import Key, KeyRing
from engine.credentials.store import create_credential, get_credential, mark_status
from engine.credentials.vault import Vault
from engine.database import make_engine, make_sessionmaker
from engine.errors import NodeError
from engine.events import MemorySink
from engine.migrate import upgrade_async
from engine.models import Credential, Execution, ExecutionEvent, NodeRun, Workflow, WorkflowVersion, utcnow
from engine.registry import Registry
from engine.worker import WorkerServices, run_execution
from nodes import NODE_TYPES
from nodes.credentials import credential_registry
from tests.factories import owner_workflow_version

SECRET = "tok-8c1d5e2f9a7b"
OTHER_SECRET = "tok-of-someone-else-42"
PASSWORD = "basic-pass-6e3a"


class UseConfig(msgspec.Struct, forbid_unknown_fields=True):
    credential: Annotated[int | None, msgspec.Meta(title="Credential", extra={"widget": "credential"})] = None
    fail: bool = False
    access_token: bool = False
    guess: int | None = None
    """An id in a plain number field (not a credential field): the node tries it instead."""


class UseCredential(NodeType):
    """Opens its bearer credential for every item and leaks the token into its output, its log, its
    error message and the error's data (no real node does; redaction must catch each)."""

    type_name = "use_credential"
    title = "Use credential (test)"
    Config = UseConfig
    credential_types: ClassVar[tuple[str, ...]] = ("http_bearer",)

    async def run(self, ctx: NodeContext, config: UseConfig, items: list[Item]) -> NodeResult:
        assert ctx.credentials is not None
        if config.guess is not None:
            await ctx.credentials.get(config.guess, accept=self.credential_types)
        assert config.credential is not None
        if config.access_token:
            return NodeResult.main([{"token": await ctx.credentials.access_token(config.credential)}])
        first = await ctx.credentials.get(config.credential, accept=self.credential_types)
        out = []
        for item in items:
            credential = await ctx.credentials.get(config.credential, accept=self.credential_types)
            token = credential.secret["token"]
            ctx.logger.info("calling the API with %s", token)
            if config.fail:
                raise NodeError(f"the API refused {token}", data={"sent": f"Bearer {token}"})
            out.append({**item, "token": token, "cached": credential is first})
        return NodeResult.main(out)


registry = Registry([*NODE_TYPES, UseCredential])


@dataclass
class Setup:
    sessions: async_sessionmaker[AsyncSession]
    ring: KeyRing
    ctx: dict[str, Any]
    owner_id: int
    stranger_id: int
    credentials: dict[str, int]

    async def run(self, nodes: list[dict[str, Any]], owner_id: int | None = None) -> int:
        """Store a trigger → ``nodes`` chain as a version, run it in the worker's job; the execution id."""
        version = await self.version(nodes, owner_id or self.owner_id)
        async with self.sessions.begin() as db:
            workflow = await db.get_one(Workflow, version[1])
            execution = Execution(workflow_id=workflow.id, owner_id=workflow.owner_id, version_id=version[0],
                                  status="queued", input={"n": 1})
            db.add(execution)
            await db.flush()
            execution_id = execution.id
        await run_execution(self.ctx, execution_id=execution_id)
        return execution_id

    async def version(self, nodes: list[dict[str, Any]], owner_id: int, *, published: bool = False) -> tuple[int, int]:
        chain = [{"id": "t", "type": "manual_trigger", "name": "Start"}, *nodes]
        graph = {"nodes": chain, "connections": [{"source": a["id"], "target": b["id"]} for a, b in pairwise(chain)]}
        async with self.sessions.begin() as db:
            workflow = Workflow(owner_id=owner_id, name=f"w{os.urandom(4).hex()}")
            db.add(workflow)
            await db.flush()
            version = WorkflowVersion(workflow_id=workflow.id, number=1, graph=graph,
                                      published_at=utcnow() if published else None)
            db.add(version)
            await db.flush()
            return version.id, workflow.id

    async def rows(self, execution_id: int) -> tuple[Execution, list[NodeRun], list[ExecutionEvent]]:
        async with self.sessions() as db:
            execution = await db.get_one(Execution, execution_id)
            runs = list((await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id)
                                          .order_by(NodeRun.id))).all())
            events = list((await db.scalars(select(ExecutionEvent).where(ExecutionEvent.execution_id == execution_id)
                                            .order_by(ExecutionEvent.seq))).all())
        return execution, runs, events

    async def stored_text(self, execution_id: int) -> str:
        execution, runs, events = await self.rows(execution_id)
        data = [execution.output, execution.error,
                [[r.input, r.output, r.error, r.logs] for r in runs], [e.data for e in events]]
        return msgspec.json.encode(data).decode()

    async def failure(self, execution_id: int) -> str:
        execution, _, _ = await self.rows(execution_id)
        assert execution.status == "failed", execution.status
        return str((execution.error or {}).get("message"))


def use(credential_id: int | None, **config: Any) -> dict[str, Any]:
    return {"id": "u", "type": "use_credential", "name": "Use", "config": {"credential": credential_id, **config}}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    ring = KeyRing((Key("k1", os.urandom(32)),), source="test")
    types = credential_registry()
    async with sessions.begin() as db:
        owner = (await db.get_one(Workflow, (await owner_workflow_version(db, email="o@example.com")).workflow_id)).owner_id
        stranger = (await db.get_one(Workflow, (await owner_workflow_version(db, email="s@example.com")).workflow_id)).owner_id
        made = {
            "bearer": await create_credential(db, ring, types, owner_id=owner, type_name="http_bearer", name="API",
                                              public={}, secret={"token": SECRET}),
            "basic": await create_credential(db, ring, types, owner_id=owner, type_name="http_basic", name="Basic",
                                             public={"username": "me"}, secret={"password": PASSWORD}),
            "stranger": await create_credential(db, ring, types, owner_id=stranger, type_name="http_bearer",
                                                name="Theirs", public={}, secret={"token": OTHER_SECRET}),
        }
        ids = {name: row.id for name, row in made.items()}
    async with httpx.AsyncClient() as http:
        vault = Vault(sessions, ring, types, http, env={})
        services = WorkerServices(sessions=sessions, sink=MemorySink(), registry=registry, http=http, vault=vault)
        yield Setup(sessions, ring, {"services": services}, owner, stranger, ids)
        await services.store.close()
    await engine.dispose()


def published(setup: Setup) -> list[Any]:
    sink = setup.ctx["services"].sink
    assert isinstance(sink, MemorySink)
    return [e.to_builtins() for e in sink.events] + [msgspec.to_builtins(c) for c in sink.changes]


async def test_the_secret_a_node_leaks_is_stored_and_published_redacted(setup: Setup) -> None:
    execution_id = await setup.run([use(setup.credentials["bearer"]),
                                    {"id": "s", "type": "set", "name": "After", "config": {"fields": []}}])
    execution, runs, _ = await setup.rows(execution_id)
    assert execution.status == "succeeded", execution.error
    used = next(r for r in runs if r.node_id == "u")
    assert used.output == {"main": [{"n": 1, "token": REDACTED, "cached": True}]}
    assert [e["message"] for e in used.logs or []] == [f"calling the API with {REDACTED}"]
    after = next(r for r in runs if r.node_id == "s")
    assert after.input == [{"n": 1, "token": REDACTED, "cached": True}]
    assert execution.output == {"After": [{"n": 1, "token": REDACTED, "cached": True}]}
    text = await setup.stored_text(execution_id)
    assert SECRET not in text and SECRET not in msgspec.json.encode(published(setup)).decode()


async def test_a_failing_node_s_error_its_data_and_the_execution_s_error_are_redacted(setup: Setup) -> None:
    execution_id = await setup.run([use(setup.credentials["bearer"], fail=True)])
    assert await setup.failure(execution_id) == f"the API refused {REDACTED}"
    _, runs, events = await setup.rows(execution_id)
    error = next(r for r in runs if r.node_id == "u").error or {}
    assert error["data"] == {"sent": f"Bearer {REDACTED}"}
    assert any(REDACTED in str(e.data.get("summary")) for e in events if e.data["type"] == "node.failed")
    assert SECRET not in await setup.stored_text(execution_id)
    assert SECRET not in msgspec.json.encode(published(setup)).decode()


async def test_another_owner_s_credential_is_not_found_like_a_missing_one(setup: Setup) -> None:
    theirs = setup.credentials["stranger"]
    assert await setup.failure(await setup.run([use(theirs)])) == f"credential {theirs} not found"
    assert await setup.failure(await setup.run([use(987654)])) == "credential 987654 not found"
    assert OTHER_SECRET not in await setup.stored_text(await setup.run([use(theirs)]))


async def test_a_credential_of_a_type_the_node_does_not_accept_is_refused(setup: Setup) -> None:
    basic = setup.credentials["basic"]
    message = await setup.failure(await setup.run([use(basic)]))
    assert message == f"credential “Basic” ({basic}) is a http_basic credential; this node accepts http_bearer"


async def test_a_credential_waiting_for_a_reconnect_fails_the_node_saying_so(setup: Setup) -> None:
    async with setup.sessions.begin() as db:
        await mark_status(db, setup.credentials["bearer"], "needs_reconnect", "the provider revoked the grant")
    message = await setup.failure(await setup.run([use(setup.credentials["bearer"])]))
    assert message == "credential “API” needs to be reconnected: the provider revoked the grant"


async def test_the_node_run_is_not_retried_when_the_credential_is_refused(setup: Setup) -> None:
    node = use(987654)
    node["settings"] = {"retry": {"max_attempts": 3, "initial_delay": 0, "retry_on": ["other"]}}
    execution_id = await setup.run([node])
    _, runs, _ = await setup.rows(execution_id)
    assert [r.attempt for r in runs if r.node_id == "u"] == [1]


async def test_a_run_records_when_it_used_the_credential(setup: Setup) -> None:
    async with setup.sessions() as db:
        assert (await get_credential(db, setup.owner_id, setup.credentials["bearer"])).last_used_at is None
    before = utcnow()
    await setup.run([use(setup.credentials["bearer"])])
    async with setup.sessions() as db:
        row = await get_credential(db, setup.owner_id, setup.credentials["bearer"])
        assert row.last_used_at is not None and row.last_used_at >= before.replace(microsecond=0)
        others = (await db.scalars(select(Credential.last_used_at).where(Credential.id != row.id))).all()
    assert others == [None, None]


async def test_a_sub_workflow_gets_the_credentials_and_both_executions_are_redacted(setup: Setup) -> None:
    _, child = await setup.version([use(setup.credentials["bearer"])], setup.owner_id, published=True)
    parent_id = await setup.run([{"id": "call", "type": "sub_workflow", "name": "Call",
                                  "config": {"workflow_id": child}}])
    parent, runs, _ = await setup.rows(parent_id)
    assert parent.status == "succeeded", parent.error
    call = next(r for r in runs if r.node_id == "call")
    assert call.output and call.output["main"][0]["token"] == REDACTED
    async with setup.sessions() as db:
        child_execution = await db.scalar(select(Execution.id).where(Execution.workflow_id == child))
    assert child_execution is not None
    assert SECRET not in await setup.stored_text(child_execution)
    assert SECRET not in await setup.stored_text(parent_id)


async def test_an_access_token_is_refused_for_a_type_that_keeps_none(setup: Setup) -> None:
    bearer = setup.credentials["bearer"]
    message = await setup.failure(await setup.run([use(bearer, access_token=True)]))
    assert message == f"credential “API” ({bearer}) is a http_bearer credential, which has no OAuth access token"


async def test_a_node_may_open_only_the_credentials_its_config_names(setup: Setup) -> None:
    bearer = setup.credentials["bearer"]
    execution_id = await setup.run([use(None, guess=bearer)])
    assert await setup.failure(execution_id) == f"“Use” may use only the credentials its config names, not credential {bearer}"
    assert SECRET not in await setup.stored_text(execution_id)
