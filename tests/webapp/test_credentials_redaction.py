"""What the execution page and its downloads show of a run whose node leaked its credential's secret: only
"[redacted]" — through the in-process worker and its vault, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.credentials import REDACTED, create_credential, load_keyring
from engine.errors import NodeError
from engine.models import User
from nodes.credentials import credential_registry
from tests.webapp.conftest import Browser

SECRET = "xoxb-7d2c9e41-secret"


class LeakConfig(msgspec.Struct, forbid_unknown_fields=True):
    credential: Annotated[int | None, msgspec.Meta(title="Credential", extra={"widget": "credential"})] = None
    fail: Annotated[bool, msgspec.Meta(title="Fail")] = False


class LeakCredential(NodeType):
    """Puts its credential's token into its output, its log and (failing) its error and the error's data."""

    type_name = "test_leak_credential"
    title = "Leak credential (test)"
    category = "Logic"
    Config = LeakConfig
    credential_types: ClassVar[tuple[str, ...]] = ("http_bearer",)

    async def run(self, ctx: NodeContext, config: LeakConfig, items: list[Item]) -> NodeResult:
        assert ctx.credentials is not None and config.credential is not None
        token = (await ctx.credentials.get(config.credential, accept=self.credential_types)).secret["token"]
        ctx.logger.warning("using %s", token)
        if config.fail:
            raise NodeError(f"refused {token}", data={"token": token})
        return NodeResult.main([{"token": token, "header": f"Bearer {token}"}])


@pytest.fixture
def leak_node() -> Iterator[None]:
    from nodes import registry

    registry.register(LeakCredential)
    try:
        yield
    finally:
        registry.unregister(LeakCredential)


def bearer_credential(client: TestClient[Any], email: str) -> int:
    """A bearer credential of the user, sealed with the app's own key ring (its key file)."""
    ring = load_keyring(client.app.state.runtime.settings)

    async def create() -> int:
        async with client.app.state.runtime.sessions.begin() as db:
            owner = await db.scalar(select(User.id).where(User.email == email))
            row = await create_credential(db, ring, credential_registry(), owner_id=owner, type_name="http_bearer",
                                          name="Slack bot", public={}, secret={"token": SECRET})
            return row.id

    return client.blocking_portal.call(create)


def run_leak(browser: Browser, credential_id: int, *, fail: bool) -> tuple[int, str]:
    wid = browser.create_workflow("Leaky")
    trigger, leak = browser.add_node(wid, "manual_trigger"), browser.add_node(wid, "test_leak_credential", 240)
    config = {"name": "Leak", "credential": str(credential_id), **({"fail": "on"} if fail else {})}
    assert browser.configure(wid, leak, config).status_code == 200
    assert browser.connect(wid, trigger, leak).status_code == 201
    response = browser.post(f"/workflows/{wid}/run")
    assert response.status_code == 200, response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1)), leak


def pages(browser: Browser, execution_id: int, node_id: str) -> str:
    urls = [f"/executions/{execution_id}", f"/executions/{execution_id}?node={node_id}",
            f"/executions/{execution_id}/nodes/{node_id}", f"/executions/{execution_id}/data/output",
            *(f"/executions/{execution_id}/nodes/{node_id}/attempts/1/{part}" for part in ("input", "output", "error", "logs")),
            f"/executions/{execution_id}/live"]
    shown = []
    for url in urls:
        response = browser.get(url, headers={"hx-request": "true"} if url.endswith("/live") else {})
        assert response.status_code == 200, (url, response.status_code)
        shown.append(response.text)
    return "\n".join(shown)


def test_the_execution_page_and_downloads_show_the_leaked_output_redacted(client: TestClient[Any], browser: Browser,
                                                                          leak_node: None) -> None:
    browser.register("leak@example.com")
    execution_id, node_id = run_leak(browser, bearer_credential(client, "leak@example.com"), fail=False)
    assert browser.wait_for_execution(execution_id) == "succeeded"
    shown = pages(browser, execution_id, node_id)
    assert REDACTED in shown and f"Bearer {REDACTED}" in shown
    assert SECRET not in shown


def test_the_error_the_page_shows_is_redacted(client: TestClient[Any], browser: Browser, leak_node: None) -> None:
    browser.register("fail@example.com")
    execution_id, node_id = run_leak(browser, bearer_credential(client, "fail@example.com"), fail=True)
    assert browser.wait_for_execution(execution_id) == "failed"
    shown = pages(browser, execution_id, node_id)
    assert f"refused {REDACTED}" in shown
    assert SECRET not in shown
    listing = browser.get("/executions/").text + browser.get("/executions/failed").text
    assert SECRET not in listing
