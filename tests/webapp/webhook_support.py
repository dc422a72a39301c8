"""Helpers of the webhook tests: build Webhook → Set in the editor, activate it, find its URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.models import Node, Webhook, WebhookRequest, Workflow
from tests.webapp.conftest import Browser

WEBHOOK_DEFAULTS = {"name": "Webhook", "methods": "POST", "authentication": "none", "response_mode": "last_node",
                    "response_data": "first_item", "response_timeout": "20", "rate_limit": "0",
                    "signature_header": "X-Signature", "signature_encoding": "hex"}


def build(browser: Browser, *, set_value: str = "{{ item.body.name }}", **config: Any) -> tuple[int, str, str]:
    """A workflow Webhook → Set (``greeting`` = ``set_value``); returns (workflow id, webhook node id, set node id)."""
    wid = browser.create_workflow("Hook flow")
    hook = browser.add_node(wid, "webhook_trigger")
    step = browser.add_node(wid, "set", x=200)
    assert browser.connect(wid, hook, step).status_code in (200, 201)
    response = browser.configure(wid, hook, {**WEBHOOK_DEFAULTS, **config})
    assert response.status_code == 200, response.text
    response = browser.configure(wid, step, {"name": "Greet", "fields.name": ["greeting"], "fields.value": [set_value],
                                             "keep_existing": ""})
    assert response.status_code == 200, response.text
    return wid, hook, step


def slow_build(browser: Browser, db_call: Any, seconds: str = "1") -> tuple[int, str]:
    """Webhook (time limit 0.2 s) → Set → Delay(``seconds``), activated: the answer is a 202 while it runs;
    returns (workflow id, webhook node id)."""
    wid, hook, step = build(browser, response_timeout="0.2")
    pause = browser.add_node(wid, "delay", x=400)
    browser.connect(wid, step, pause)
    assert browser.configure(wid, pause, {"name": "Pause", "seconds": seconds}).status_code == 200
    activate(browser, db_call, wid)
    return wid, hook


def activate(browser: Browser, db_call: Any, workflow_id: int) -> None:
    """Activate through the editor's switch (publishes the draft and starts its triggers)."""
    response = browser.post(f"/workflows/{workflow_id}/activate")
    assert response.status_code == 200, response.text
    assert db_call(lambda db: db.get(Workflow, workflow_id)).active


def deactivate(browser: Browser, workflow_id: int) -> None:
    assert browser.post(f"/workflows/{workflow_id}/deactivate").status_code == 200


def webhook_of(db_call: Any, node_id: str) -> Webhook:
    return db_call(lambda db: db.scalar(select(Webhook).where(Webhook.node_id == node_id)))


def url_of(db_call: Any, node_id: str) -> str:
    return f"/webhook/{webhook_of(db_call, node_id).token}"


def logged(db_call: Any, node_id: str) -> list[WebhookRequest]:
    async def run(db: Any) -> list[WebhookRequest]:
        webhook = await db.scalar(select(Webhook).where(Webhook.node_id == node_id))
        return list(await db.scalars(select(WebhookRequest).where(WebhookRequest.webhook_id == webhook.id)
                                     .order_by(WebhookRequest.id)))

    return db_call(run)


def node_row(db_call: Any, node_id: str) -> Node:
    return db_call(lambda db: db.get(Node, node_id))
