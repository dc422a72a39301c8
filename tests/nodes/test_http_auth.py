"""The HTTP Request node with stored credentials: through the real run loop, the real vault (sealed rows in
SQLite) and the guarded HTTP client, against a loopback API that checks each kind of authentication."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.credentials import Key, KeyRing, create_credential, open_credential
from engine.credentials.redaction import Redactor
from engine.credentials.vault import Vault
from engine.database import make_engine, make_sessionmaker
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.migrate import upgrade_async
from engine.models import Credential, Workflow
from engine.netguard import outbound_client, parse_networks
from engine.runner import Run, execute
from engine.store import MemoryRunStore, NodeRunRecord
from nodes import registry
from nodes.credentials import credential_registry
from tests.factories import owner_workflow_version
from tests.nodes.auth_server import AuthServer, serve


@pytest.fixture
def api() -> Iterator[AuthServer]:
    yield from serve(AuthServer())


@dataclass
class World:
    """One owner with a workflow, the key ring, the vault and the database they share."""

    sessions: async_sessionmaker[AsyncSession]
    ring: KeyRing
    vault: Vault
    owner_id: int
    workflow_id: int

    async def credential(self, type_name: str, public: dict[str, Any], secret: dict[str, Any], *,
                         expires_in: float | None = None, owner_id: int | None = None) -> int:
        async with self.sessions.begin() as db:
            row = await create_credential(db, self.ring, credential_registry(), owner_id=owner_id or self.owner_id,
                                          type_name=type_name, name=f"{type_name} {os.urandom(3).hex()}",
                                          public=public, secret=secret)
            if expires_in is not None:
                expires = datetime.now(UTC) + timedelta(seconds=expires_in)
                await db.execute(update(Credential).where(Credential.id == row.id).values(expires_at=expires))
            return row.id

    async def secret_of(self, credential_id: int) -> dict[str, Any]:
        async with self.sessions() as db:
            return (await open_credential(db, self.ring, self.owner_id, credential_id)).secret

    async def run(self, credential_id: int | None, url: str, **config: Any) -> tuple[Any, NodeRunRecord]:
        """Manual Trigger → HTTP Request; the outcome and the HTTP node's last attempt."""
        graph = Graph(nodes=[NodeSpec(id="t", type="manual_trigger", name="Start", version=1, config={}),
                             NodeSpec(id="h", type="http_request", name="Call", version=1,
                                      config={"url": url, "credential": credential_id, **config})],
                      connections=[ConnectionSpec(source="t", target="h", source_port="main", target_port="main")])
        store, redactor = MemoryRunStore(), Redactor()
        run = Run(1, self.workflow_id, graph, registry, store, MemorySink(), self.vault.http, owner_id=self.owner_id,
                  credentials=self.vault.for_run(self.owner_id, redactor), redactor=redactor)
        outcome = await execute(run)
        return outcome, store.attempts(1, "h")[-1]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as db:
        version = await owner_workflow_version(db, email="auth@example.com", name="Auth")
        owner_id = (await db.get_one(Workflow, version.workflow_id)).owner_id
    ring = KeyRing((Key("k1", os.urandom(32)),), source="test")
    async with outbound_client(allow=parse_networks("127.0.0.0/8")) as http:
        yield World(sessions, ring, Vault(sessions, ring, credential_registry(), http, {}), owner_id,
                    version.workflow_id)
    await engine.dispose()


def dumped(*values: Any) -> str:
    return json.dumps([v for v in values], default=str)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


GENERIC = ["http_header", "http_bearer", "http_basic"]


def static_credential(api: AuthServer, type_name: str, *, wrong: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Public and secret fields of a credential for ``api`` (with a wrong secret if asked)."""
    bad = "wrong-secret-6b1f0d"
    return {
        "http_header": ({"header_name": "X-Api-Key"}, {"value": bad if wrong else api.api_key}),
        "http_bearer": ({}, {"token": bad if wrong else api.bearer}),
        "http_basic": ({"username": api.username}, {"password": bad if wrong else api.password}),
    }[type_name]


PATH = {"http_header": "/header", "http_bearer": "/bearer", "http_basic": "/basic"}


@pytest.mark.parametrize("type_name", GENERIC)
async def test_each_generic_type_authenticates_and_overrides_a_typed_header(world: World, api: AuthServer,
                                                                            type_name: str) -> None:
    public, secret = static_credential(api, type_name)
    credential_id = await world.credential(type_name, public, secret)
    # The user also typed a header of the same name (another spelling): the credential's value is sent.
    typed = {"http_header": "x-api-key", "http_bearer": "authorization", "http_basic": "Authorization"}[type_name]
    outcome, record = await world.run(credential_id, f"{api.url}{PATH[type_name]}",
                                      headers=[{"name": typed, "value": "typed-by-hand"}])
    assert outcome.status == "succeeded", outcome.error
    assert record.output["main"][0]["status"] == 200
    [request] = api.received(PATH[type_name])
    sent = {"http_header": request["headers"].get("x-api-key"),
            "http_bearer": request["headers"].get("authorization"),
            "http_basic": request["headers"].get("authorization")}[type_name]
    assert sent == {"http_header": api.api_key, "http_bearer": f"Bearer {api.bearer}",
                    "http_basic": basic(api.username, api.password)}[type_name]
    assert "typed-by-hand" not in json.dumps(request["headers"]), "the typed header is replaced, not sent twice"
    assert record.logs, "the node logged its request"
    text = dumped(record.output, record.logs, record.input)
    for value in secret.values():
        assert value not in text
    assert "authorization" not in text.lower() and "x-api-key" not in text.lower(), "the request is not echoed"


@pytest.mark.parametrize("type_name", GENERIC)
async def test_a_wrong_secret_fails_with_the_servers_401_and_without_the_secret(world: World, api: AuthServer,
                                                                                type_name: str) -> None:
    public, secret = static_credential(api, type_name, wrong=True)
    credential_id = await world.credential(type_name, public, secret)
    outcome, record = await world.run(credential_id, f"{api.url}{PATH[type_name]}")
    assert outcome.status == "failed"
    assert record.status == "failed"
    assert record.error["message"] == f"GET {api.url}{PATH[type_name]} returned HTTP 401"
    assert record.error["data"]["status"] == 401 and record.error["data"]["body"]["error"] == "unauthorized"
    assert len(api.received(PATH[type_name])) == 1, "a static secret is not retried after a 401"
    text = dumped(record.error, record.logs, outcome.error)
    assert "wrong-secret-6b1f0d" not in text
    assert basic(api.username, "wrong-secret-6b1f0d").split()[1] not in text


async def test_an_api_that_echoes_the_request_does_not_put_the_secret_in_the_output(world: World,
                                                                                    api: AuthServer) -> None:
    """The server quotes every header it got (including Authorization: Basic base64(user:password), which is
    not the password as stored): the output shows neither."""
    credential_id = await world.credential("http_basic", {"username": api.username}, {"password": api.password})
    outcome, record = await world.run(credential_id, f"{api.url}/echo")
    assert outcome.status == "succeeded", outcome.error
    echoed = record.output["main"][0]["body"]["headers"]
    assert echoed["authorization"] == "[redacted]"
    text = dumped(record.output)
    assert api.password not in text and basic(api.username, api.password).split()[1] not in text


def oauth2(api: AuthServer, token: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    public = {"authorize_url": f"{api.url}/authorize", "token_url": f"{api.url}/token", "scopes": "read",
              "client_id": api.client_id, "account": "ada@example.com"}
    secret = {"client_secret": api.client_secret, "access_token": token["access_token"],
              "refresh_token": token["refresh_token"], "token_type": "Bearer"}
    return public, secret


async def test_an_oauth2_token_about_to_expire_is_refreshed_before_the_request(world: World,
                                                                               api: AuthServer) -> None:
    first = api.issue()
    credential_id = await world.credential("oauth2", *oauth2(api, first), expires_in=20)  # < 60 s left
    outcome, record = await world.run(credential_id, f"{api.url}/oauth")
    assert outcome.status == "succeeded", outcome.error
    assert [g["grant_type"] for g in api.grants] == ["refresh_token"], "one refresh, before the request"
    assert api.grants[0]["refresh_token"] == first["refresh_token"]
    [request] = api.received("/oauth")  # no 401 first: the request already carried the new token
    stored = await world.secret_of(credential_id)
    assert stored["access_token"] != first["access_token"] and stored["refresh_token"] != first["refresh_token"]
    assert request["headers"]["authorization"] == f"Bearer {stored['access_token']}"
    text = dumped(record.output, record.logs)
    assert stored["access_token"] not in text and first["access_token"] not in text


async def test_a_valid_oauth2_token_is_used_without_a_refresh(world: World, api: AuthServer) -> None:
    token = api.issue()
    credential_id = await world.credential("oauth2", *oauth2(api, token), expires_in=3600)
    outcome, _ = await world.run(credential_id, f"{api.url}/oauth")
    assert outcome.status == "succeeded", outcome.error
    assert api.grants == []
    [request] = api.received("/oauth")
    assert request["headers"]["authorization"] == f"Bearer {token['access_token']}"


async def test_a_401_with_an_oauth2_credential_gets_one_refresh_and_one_retry(world: World, api: AuthServer) -> None:
    token = api.issue()
    credential_id = await world.credential("oauth2", *oauth2(api, token), expires_in=3600)
    api.revoke_access_tokens()  # the API no longer takes the token, though its expiry is an hour away
    outcome, record = await world.run(credential_id, f"{api.url}/oauth")
    assert outcome.status == "succeeded", outcome.error
    assert [g["grant_type"] for g in api.grants] == ["refresh_token"]
    first, second = api.received("/oauth")
    stored = await world.secret_of(credential_id)
    assert first["headers"]["authorization"] == f"Bearer {token['access_token']}"
    assert second["headers"]["authorization"] == f"Bearer {stored['access_token']}" != first["headers"]["authorization"]
    assert any("401" in line["message"] for line in record.logs), record.logs


async def test_a_second_401_after_the_refresh_is_the_nodes_error(world: World, api: AuthServer) -> None:
    token = api.issue()
    credential_id = await world.credential("oauth2", *oauth2(api, token), expires_in=3600)
    api.revoke_access_tokens()
    api.access_tokens = _Refusing()  # every token it issues from now on is refused too
    outcome, record = await world.run(credential_id, f"{api.url}/oauth")
    assert outcome.status == "failed"
    assert record.error["message"] == f"GET {api.url}/oauth returned HTTP 401"
    assert len(api.received("/oauth")) == 2, "exactly one retry"
    assert len(api.grants) == 1, "exactly one refresh"
    stored = await world.secret_of(credential_id)
    assert stored["access_token"] not in dumped(record.error, record.logs)


class _Refusing(set[str]):
    """A token set that forgets every token added to it."""

    def add(self, element: str) -> None:
        return None


async def test_client_credentials_fetches_its_token(world: World, api: AuthServer) -> None:
    public = {"token_url": f"{api.url}/token", "scopes": "read", "client_id": api.client_id}
    credential_id = await world.credential("oauth2_client_credentials", public,
                                           {"client_secret": api.client_secret})
    outcome, _ = await world.run(credential_id, f"{api.url}/oauth")
    assert outcome.status == "succeeded", outcome.error
    assert [g["grant_type"] for g in api.grants] == ["client_credentials"]
    [request] = api.received("/oauth")
    assert request["headers"]["authorization"] == f"Bearer {(await world.secret_of(credential_id))['access_token']}"


async def test_a_credential_of_another_owner_or_type_is_refused_before_any_request(world: World,
                                                                                   api: AuthServer) -> None:
    async with world.sessions.begin() as db:
        other = await owner_workflow_version(db, email="other@example.com", name="Other")
        other_owner = (await db.get_one(Workflow, other.workflow_id)).owner_id
    theirs = await world.credential("http_bearer", {}, {"token": api.bearer}, owner_id=other_owner)
    outcome, record = await world.run(theirs, f"{api.url}/bearer")
    assert outcome.status == "failed"
    assert record.error["message"] == f"credential {theirs} not found"
    telegram = await world.credential("telegram_bot", {}, {"bot_token": "123456789:AAEdefGHIjklMNOpqrSTUvwx"})
    outcome, record = await world.run(telegram, f"{api.url}/bearer")
    assert outcome.status == "failed"
    assert "telegram_bot" in record.error["message"] and "http_bearer" in record.error["message"]
    assert api.received("/bearer") == []
