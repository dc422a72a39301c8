"""OAuth credentials at run time, through ``ctx.credentials`` in the real ``run_execution`` job against the
provider fakes (tests/fakes), on SQLite and PostgreSQL: a token close to its expiry is refreshed once
during the run and the next node uses the new one; every token the run saw is stored as "[redacted]"; a
dead grant fails the node and the next run says the credential needs to be reconnected.

Needs the OAuth part (engine/credentials/oauth_refresh.py) and the fakes: skipped where they are not merged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import pytest
from sqlalchemy import select

pytest.importorskip("engine.credentials.oauth_refresh")
pytest.importorskip("tests.fakes")

from engine.contract import Item, NodeContext, NodeResult, NodeType  # noqa: E402
from engine.credentials import REDACTED, Vault  # noqa: E402
from engine.credentials.oauth_refresh import OAuthServices  # noqa: E402
from engine.events import MemorySink  # noqa: E402
from engine.migrate import upgrade_async  # noqa: E402
from engine.models import Execution, ExecutionEvent, NodeRun, Workflow, WorkflowVersion  # noqa: E402
from engine.registry import Registry  # noqa: E402
from engine.worker import WorkerServices, run_execution  # noqa: E402
from nodes import NODE_TYPES  # noqa: E402
from tests import credential_factories as factories  # noqa: E402
from tests.engine.oauth_support import connected, oauth_services, set_expiry_in  # noqa: E402
from tests.fakes import FakeProviders  # noqa: E402


class TokenConfig(msgspec.Struct, forbid_unknown_fields=True):
    credential: Annotated[int | None, msgspec.Meta(extra={"widget": "credential"})] = None


class TakeToken(NodeType):
    """Opens its Google credential, asks for a fresh access token, opens it again, and leaks all three
    into its output (as no real node does). What it saw is also kept in ``SEEN`` for the test."""

    type_name = "take_token"
    title = "Take token (test)"
    Config = TokenConfig
    credential_types: ClassVar[tuple[str, ...]] = ("google",)

    async def run(self, ctx: NodeContext, config: TokenConfig, items: list[Item]) -> NodeResult:
        assert ctx.credentials is not None and config.credential is not None
        opened = (await ctx.credentials.get(config.credential, accept=self.credential_types)).secret
        token = await ctx.credentials.access_token(config.credential)
        reopened = (await ctx.credentials.get(config.credential, accept=self.credential_types)).secret
        seen = {"opened": opened["access_token"], "token": token, "reopened": reopened["access_token"],
                "refresh_token": reopened.get("refresh_token")}
        SEEN[ctx.node_id] = seen
        return NodeResult.main([{**item, ctx.node_id: seen} for item in items])


SEEN: dict[str, dict[str, Any]] = {}


registry = Registry([*NODE_TYPES, TakeToken])


@dataclass
class Setup:
    deps: OAuthServices
    ctx: dict[str, Any]

    async def run(self, owner_id: int, credential_id: int) -> int:
        nodes = [{"id": "t", "type": "manual_trigger", "name": "Start"},
                 {"id": "a", "type": "take_token", "name": "A", "config": {"credential": credential_id}},
                 {"id": "b", "type": "take_token", "name": "B", "config": {"credential": credential_id}}]
        graph = {"nodes": nodes, "connections": [{"source": "t", "target": "a"}, {"source": "a", "target": "b"}]}
        async with self.deps.sessions.begin() as db:
            workflow = Workflow(owner_id=owner_id, name=f"tokens {credential_id}")
            db.add(workflow)
            await db.flush()
            version = WorkflowVersion(workflow_id=workflow.id, number=1, graph=graph)
            db.add(version)
            await db.flush()
            execution = Execution(workflow_id=workflow.id, owner_id=owner_id, version_id=version.id, status="queued")
            db.add(execution)
            await db.flush()
            execution_id = execution.id
        await run_execution(self.ctx, execution_id=execution_id)
        return execution_id

    async def stored(self, execution_id: int) -> tuple[Execution, str]:
        async with self.deps.sessions() as db:
            execution = await db.get_one(Execution, execution_id)
            runs = (await db.scalars(select(NodeRun).where(NodeRun.execution_id == execution_id))).all()
            events = (await db.scalars(select(ExecutionEvent.data).where(ExecutionEvent.execution_id == execution_id))).all()
        text = msgspec.json.encode([execution.output, execution.error, [[r.input, r.output, r.error, r.logs] for r in runs],
                                    list(events)]).decode()
        return execution, text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path, fake_providers: FakeProviders) -> AsyncIterator[Setup]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    async with oauth_services(url, factories.ring("k1"), fake_providers) as deps:
        vault = Vault(deps.sessions, deps.ring, deps.registry, deps.http, deps.env)
        services = WorkerServices(sessions=deps.sessions, sink=MemorySink(), registry=registry, http=deps.http,
                                  vault=vault)
        yield Setup(deps, {"services": services})
        await services.store.close()


async def test_a_token_refreshed_during_the_run_is_the_one_the_next_node_uses(setup: Setup,
                                                                             fake_providers: FakeProviders) -> None:
    owner_id, credential_id = await connected(setup.deps, fake_providers, "google", "google")
    await set_expiry_in(setup.deps.sessions, credential_id, 20)  # within a node's 60 s: refreshed ahead
    SEEN.clear()
    execution_id = await setup.run(owner_id, credential_id)

    execution, text = await setup.stored(execution_id)
    assert execution.status == "succeeded", execution.error
    a, b = SEEN["a"], SEEN["b"]
    assert a["token"] != a["opened"], "A's token was refreshed ahead of its expiry"
    assert a["reopened"] == a["token"], "after the refresh, the credential is read again (new revision)"
    assert b["opened"] == b["token"] == a["token"], "B uses the token A's refresh stored"
    assert fake_providers.google.refresh_grants == 1
    redacted = {"opened": REDACTED, "token": REDACTED, "reopened": REDACTED, "refresh_token": REDACTED}
    assert execution.output == {"B": [{"a": redacted, "b": redacted}]}
    for value in {*a.values(), *b.values()} - {None}:
        assert value not in text


async def test_a_dead_grant_fails_the_node_and_the_next_run_asks_for_a_reconnect(setup: Setup,
                                                                                 fake_providers: FakeProviders) -> None:
    owner_id, credential_id = await connected(setup.deps, fake_providers, "google", "google")
    fake_providers.google.revoke_all()
    await set_expiry_in(setup.deps.sessions, credential_id, 5)

    first, _ = await setup.stored(await setup.run(owner_id, credential_id))
    assert first.status == "failed" and first.error["type"] == "CredentialNeedsReconnect", first.error
    second, _ = await setup.stored(await setup.run(owner_id, credential_id))
    assert second.status == "failed"
    assert second.error["message"].startswith("credential “")
    assert "needs to be reconnected" in second.error["message"]
    assert second.error["type"] == "CredentialRefused"
