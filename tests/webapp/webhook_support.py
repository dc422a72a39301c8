"""Helpers of the webhook tests: build Webhook → Set in the editor, activate it, find its URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from engine.models import Node, Trigger, Webhook, WebhookRequest, Workflow, WorkflowVersion
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


def activate(browser: Browser, db_call: Any, workflow_id: int) -> None:
    """Publish and mark active with one ``triggers`` row per webhook node of the published version (what
    engine/triggers/activation.py's ``activate`` does)."""
    assert browser.post(f"/workflows/{workflow_id}/publish").status_code == 200

    async def run(db: Any) -> None:
        version = await db.scalar(select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id,
                                                               WorkflowVersion.published_at.is_not(None))
                                  .order_by(WorkflowVersion.published_at.desc()).limit(1))
        workflow = await db.get(Workflow, workflow_id)
        workflow.active = True
        await db.execute(Trigger.__table__.delete().where(Trigger.workflow_id == workflow_id))
        for node in version.graph["nodes"]:
            if node["type"] == "webhook_trigger":
                db.add(Trigger(workflow_id=workflow_id, owner_id=workflow.owner_id, node_id=node["id"], kind="webhook",
                               version_id=version.id, node_type=node["type"], node_version=node["version"],
                               config=node["config"]))
        await db.commit()

    db_call(run)


def deactivate(db_call: Any, workflow_id: int) -> None:
    async def run(db: Any) -> None:
        await db.execute(update(Workflow).where(Workflow.id == workflow_id).values(active=False))
        await db.execute(Trigger.__table__.delete().where(Trigger.workflow_id == workflow_id))
        await db.commit()

    db_call(run)


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
