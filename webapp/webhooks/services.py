"""Webhook rows and their request log: every query here, scoped by webhook (the public route) or by owner
(the editor's endpoints).

``ensure_webhook`` gives a webhook node its address (an unguessable token, and the custom path of its
config); ``find_target`` is the public route's one read per request: the webhook, its workflow's state and the
config to use (the active trigger's, or the draft node's while someone listens).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import ConfigError
from engine.models import Credential, Node, Trigger, Webhook, WebhookRequest, Workflow, utcnow
from nodes.webhook_trigger import WebhookTrigger, clean_path
from webapp.webhooks.auth import credential_type_error

LOG_SIZE = 50
"""Requests kept per webhook (the newest)."""
PRUNE_EVERY = 10
"""The log is trimmed back to ``LOG_SIZE`` every this many requests of a webhook (per process)."""
WEBHOOK_TYPE = WebhookTrigger.type_name


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _configured_path(config: Any) -> str | None:
    raw = config.get("path") if isinstance(config, dict) else None
    return clean_path(raw if isinstance(raw, str) else None)


async def webhook_config_errors(session: AsyncSession, node_id: str, config: dict[str, Any]) -> dict[str, str]:
    """Form errors of a webhook node's (otherwise valid) config: a custom path another webhook has (paths are
    unique per instance), a credential of another type than the authentication reads."""
    errors = await _path_errors(session, node_id, config)
    credential_id, authentication = config.get("credential"), config.get("authentication", "none")
    if isinstance(credential_id, int) and authentication != "none":
        type_name = await session.scalar(select(Credential.type_name).where(Credential.id == credential_id))
        if type_name is not None and (error := credential_type_error(authentication, type_name)):
            errors["credential"] = error[:1].upper() + error[1:]
    return errors


def _holders(path: str, node_id: str) -> Any:
    """Other webhooks that hold ``path`` and still use it: their node exists, or is a running trigger."""
    in_use = or_(select(Node.id).where(Node.id == Webhook.node_id).exists(),
                 select(Trigger.id).where(Trigger.workflow_id == Webhook.workflow_id,
                                          Trigger.node_id == Webhook.node_id).exists())
    return select(Webhook.id).where(Webhook.path == path, Webhook.node_id != node_id, in_use)


async def _path_errors(session: AsyncSession, node_id: str, config: dict[str, Any]) -> dict[str, str]:
    path = _configured_path(config)
    if path is None:
        return {}
    if await session.scalar(_holders(path, node_id).limit(1)) is not None:
        return {"path": f"/webhook/{path} is already used by another webhook: choose another path."}
    return {}


async def ensure_webhook(session: AsyncSession, workflow: Workflow, node: Node) -> Webhook:
    """The webhook row of a webhook node, made if missing; its custom path follows the node's config.
    A path another webhook has is a ``ConfigError`` on ``path`` (nothing written). The caller commits."""
    if errors := await _path_errors(session, node.id, node.config):
        raise ConfigError(errors)
    path = _configured_path(node.config)
    if path is not None:  # a deleted node's webhook that nothing runs gives its path up
        await session.execute(update(Webhook).where(Webhook.path == path, Webhook.node_id != node.id)
                              .values(path=None))
    webhook = await session.scalar(select(Webhook).where(Webhook.node_id == node.id))
    if webhook is None:
        webhook = Webhook(workflow_id=workflow.id, owner_id=workflow.owner_id, node_id=node.id, token=new_token(),
                          path=path)
        session.add(webhook)
    elif webhook.path != path:
        webhook.path = path
    await session.flush()
    return webhook


async def sync_workflow_webhooks(session: AsyncSession, workflow: Workflow) -> None:
    """Every webhook node of the workflow's draft has its row (after an import or a paste); rows of nodes that
    are neither in the draft nor an active trigger any more are deleted. The caller commits."""
    nodes = list(await session.scalars(select(Node).where(Node.workflow_id == workflow.id,
                                                          Node.type_name == WEBHOOK_TYPE)))
    live = select(Trigger.node_id).where(Trigger.workflow_id == workflow.id)
    await session.execute(delete(Webhook).where(Webhook.workflow_id == workflow.id,
                                                Webhook.node_id.not_in([n.id for n in nodes]),
                                                Webhook.node_id.not_in(live)))
    for node in nodes:
        try:
            await ensure_webhook(session, workflow, node)
        except ConfigError:  # an imported or pasted path that is taken: the node keeps its token URL
            if await session.scalar(select(Webhook.id).where(Webhook.node_id == node.id)) is None:
                session.add(Webhook(workflow_id=workflow.id, owner_id=workflow.owner_id, node_id=node.id,
                                    token=new_token()))
    await session.flush()


def webhook_url(base: str, webhook: Webhook) -> str:
    """The address to give out: ``base`` is ``PATCHWIRE_PUBLIC_URL`` or the request's own base URL."""
    return f"{base.rstrip('/')}/webhook/{webhook.path or webhook.token}"


def token_url(base: str, webhook: Webhook) -> str:
    """The token address, which works whatever the custom path."""
    return f"{base.rstrip('/')}/webhook/{webhook.token}"


@dataclass
class Target:
    """What the public route needs to answer one request, from one query."""

    webhook_id: int
    workflow_id: int
    owner_id: int
    node_id: str
    listening_until: float | None
    workflow_name: str
    active: bool
    paused_until: datetime | None
    trigger_config: dict[str, Any] | None
    """The active trigger's config (``None``: the workflow is not active, or this node is not in its published
    version)."""
    version_id: int | None
    draft_config: dict[str, Any] | None
    node_type_version: int | None

    @property
    def live(self) -> bool:
        """Runs its published version: the workflow is active and this node is one of its triggers."""
        return self.active and self.trigger_config is not None

    def listening(self, now: float) -> bool:
        return self.listening_until is not None and self.listening_until > now

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and _aware(self.paused_until) > now


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_TARGET = (
    select(Webhook.id, Webhook.workflow_id, Webhook.owner_id, Webhook.node_id, Webhook.listening_until,
           Workflow.name, Workflow.active, Workflow.paused_until, Trigger.config, Trigger.version_id,
           Node.config, Node.type_version, Webhook.token)
    .join(Workflow, Workflow.id == Webhook.workflow_id)
    .outerjoin(Trigger, and_(Trigger.workflow_id == Webhook.workflow_id, Trigger.node_id == Webhook.node_id,
                             Trigger.kind == "webhook"))
    .outerjoin(Node, Node.id == Webhook.node_id)
)


async def find_target(session: AsyncSession, key: str) -> Target | None:
    """The webhook at ``/webhook/<key>`` (its token, else its custom path), or ``None``."""
    rows = (await session.execute(_TARGET.where(or_(Webhook.token == key, Webhook.path == key)).limit(2))).all()
    if not rows:
        return None
    row = next((r for r in rows if r[12] == key), rows[0])  # a token wins over a path that happens to equal it
    return target_from_row(row)


def target_from_row(row: Any) -> Target:
    """A row of ``_TARGET`` as a ``Target``."""
    return Target(webhook_id=row[0], workflow_id=row[1], owner_id=row[2], node_id=row[3], listening_until=row[4],
                  workflow_name=row[5], active=bool(row[6]), paused_until=row[7],
                  trigger_config=row[8] if row[6] else None, version_id=row[9], draft_config=row[10],
                  node_type_version=row[11])


_LOG = insert(WebhookRequest).returning(WebhookRequest.id)


async def log_request(session: AsyncSession, webhook_id: int, *, method: str, input: dict[str, Any], status: int,
                      outcome: str, message: str | None = None, response: dict[str, Any] | None = None,
                      execution_id: int | None = None) -> int:
    """Add a row to the request log (in the caller's transaction); its id."""
    return (await session.execute(_LOG, {
        "webhook_id": webhook_id, "received_at": utcnow(), "method": method, "input": input, "status": status,
        "outcome": outcome, "message": message, "response": response, "execution_id": execution_id,
    })).scalar_one()


async def finish_log(session: AsyncSession, request_id: int, *, status: int, response: dict[str, Any] | None,
                     outcome: str | None = None, message: str | None = None) -> None:
    """Record the answer given to a logged request (after it was sent)."""
    values: dict[str, Any] = {"status": status, "response": response}
    if outcome is not None:
        values["outcome"] = outcome
    if message is not None:
        values["message"] = message
    await session.execute(update(WebhookRequest).where(WebhookRequest.id == request_id).values(**values))


class LogPruner:
    """Trims each webhook's log to the newest ``LOG_SIZE`` rows every ``PRUNE_EVERY`` requests (per process:
    between two trims a log may briefly hold a few more)."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def due(self, webhook_id: int) -> bool:
        count = self._counts.get(webhook_id, 0) + 1
        if count >= PRUNE_EVERY:
            self._counts.pop(webhook_id, None)
            return True
        if len(self._counts) > 10_000:
            self._counts.clear()
        self._counts[webhook_id] = count
        return False


async def prune_log(session: AsyncSession, webhook_id: int, keep: int = LOG_SIZE) -> None:
    oldest_kept = await session.scalar(select(WebhookRequest.id).where(WebhookRequest.webhook_id == webhook_id)
                                       .order_by(WebhookRequest.id.desc()).offset(keep - 1).limit(1))
    if oldest_kept is not None:
        await session.execute(delete(WebhookRequest).where(WebhookRequest.webhook_id == webhook_id,
                                                           WebhookRequest.id < oldest_kept))


async def start_listening(session: AsyncSession, webhook_id: int, seconds: float) -> float:
    """Capture the webhook's requests for ``seconds`` from now (also while the workflow is inactive)."""
    until = time.time() + seconds
    await session.execute(update(Webhook).where(Webhook.id == webhook_id).values(listening_until=until))
    return until
