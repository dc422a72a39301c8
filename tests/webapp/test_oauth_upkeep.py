"""The worker's periodic OAuth pass, in a running app (embedded worker) against the provider fakes: a connection
in use and close to expiry is refreshed, an unused one is left alone, and a dead one is marked
``needs_reconnect`` and announced to the error workflow of each workflow that uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select, update

from engine.credentials.oauth_refresh import OAuthServices
from engine.credentials.oauth_upkeep import refresh_pass
from engine.models import Credential, Execution, Node
from engine.netguard import outbound_client, parse_networks
from nodes import registry
from nodes.credentials import credential_registry
from tests.fakes import FakeProviders
from tests.webapp.conftest import Browser
from tests.webapp.test_alerts import wait_for
from tests.webapp.test_oauth_connect import app_factory, call, client, consent, new_credential, oauth_env, start
from webapp.credentials.oauth import keyring

__all__ = ["app_factory", "client", "oauth_env"]  # the fixtures of test_oauth_connect, used here too


def connected(browser: Browser, client: TestClient[Any], fake: FakeProviders, type_name: str, name: str) -> int:
    credential_id = new_credential(client, "ada@example.com", type_name)
    call(client, lambda db: _rename(db, credential_id, name))
    browser.get(consent(fake, type_name, start(browser, credential_id)))
    return credential_id


async def _rename(db: Any, credential_id: int, name: str) -> None:
    await db.execute(update(Credential).where(Credential.id == credential_id).values(name=name))
    await db.commit()


def used_and_due(client: TestClient[Any], credential_id: int, *, used: bool = True) -> None:
    now = datetime.now(UTC)

    async def change(db: Any) -> None:
        await db.execute(update(Credential).where(Credential.id == credential_id).values(
            expires_at=now + timedelta(minutes=5), last_used_at=now - timedelta(hours=1) if used else None))
        await db.commit()
    call(client, change)


def workflow_using(browser: Browser, client: TestClient[Any], credential_id: int, error_workflow_id: int) -> int:
    workflow_id = browser.create_workflow("Mail digest")
    node_id = browser.add_node(workflow_id, "set")

    async def name_it(db: Any) -> None:  # as the credential picker saves it (the node's `credential` field)
        node = await db.get_one(Node, node_id)
        node.config = {**node.config, "credential": credential_id}
        await db.commit()
    call(client, name_it)
    saved = browser.post(f"/workflows/{workflow_id}/settings", {"error_workflow_id": str(error_workflow_id)})
    assert saved.status_code == 200, saved.text
    return workflow_id


def handler_workflow(browser: Browser) -> int:
    workflow_id = browser.create_workflow("When a connection dies")
    trigger = browser.add_node(workflow_id, "manual_trigger")
    note = browser.add_node(workflow_id, "set")
    browser.configure(workflow_id, note, {"name": "Note", "fields.name": ["alert"], "keep_existing": "on",
                                          "fields.value": ["{{ item.credential.name }}: {{ item.credential.status }}"]})
    browser.connect(workflow_id, trigger, note)
    return workflow_id


def run_pass(client: TestClient[Any]) -> Any:
    app = client.app
    runtime = app.state.runtime

    async def one_pass() -> Any:
        settings = runtime.settings
        async with outbound_client(parse_networks(settings.http_allow_networks)) as http:
            deps = OAuthServices(runtime.sessions, keyring(app.state, runtime), credential_registry(), http,
                                 settings.provider_env)
            return await refresh_pass(deps, runtime.queue, registry, job_timeout=60, heartbeat=5)
    return client.blocking_portal.call(one_pass)


def test_refresh_pass(browser: Browser, client: TestClient[Any], fake_providers: FakeProviders) -> None:
    browser.register("ada@example.com")
    handler = handler_workflow(browser)
    live = connected(browser, client, fake_providers, "google", "Gmail")
    idle = connected(browser, client, fake_providers, "notion", "Notes")
    dead = connected(browser, client, fake_providers, "slack", "Team chat")
    workflow_id = workflow_using(browser, client, dead, handler)
    used_and_due(client, live)
    used_and_due(client, idle, used=False)
    used_and_due(client, dead)
    fake_providers.slack.revoke_all()

    report = run_pass(client)

    assert (report.refreshed, report.needs_reconnect, report.failed) == ([live], [dead], [])
    assert fake_providers.google.refresh_grants == 1 and fake_providers.notion.refresh_grants == 0
    rows = {row.id: row for row in call(client, lambda db: db.scalars(select(Credential)))}
    assert rows[live].status == "ok" and rows[live].expires_at > datetime.now(UTC) + timedelta(minutes=30)
    assert rows[dead].status == "needs_reconnect" and "slack refused its grant" in rows[dead].status_message
    assert len(report.announced) == 1

    async def error_run(db: Any) -> Execution | None:
        return await db.get(Execution, report.announced[0])
    run = wait_for(lambda fn: call(client, fn), error_run, lambda row: row is not None and row.status == "succeeded")
    assert run.workflow_id == handler and run.trigger == "error_workflow"
    assert run.input["credential"]["id"] == dead and run.input["workflow"]["id"] == workflow_id
    assert run.output["Note"][0]["alert"] == "Team chat: needs_reconnect"

    again = run_pass(client)  # a dead connection is announced once, not on every pass
    assert again.needs_reconnect == [] and again.announced == []
