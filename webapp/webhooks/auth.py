"""A webhook's authentication in the web process: the node's preset, its secret opened from the credential store
(the owner's credential, with ``runtime.keyring``), the pure check (engine/triggers/webhook_auth.py), and the
replay guard (``webhook_events``: an event id accepted once is refused after)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.credentials.sealing import KeyRing
from engine.credentials.store import get_credential, open_row
from engine.errors import CredentialError
from engine.models import WebhookEvent, utcnow
from engine.triggers.webhook_auth import (
    AuthFailure,
    Verified,
    check_basic,
    check_github,
    check_header_token,
    check_hmac,
    check_slack,
    check_stripe,
)
from nodes.webhook_trigger import SIGNATURE_PRESETS, WebhookConfig

CREDENTIAL_TYPE = {"header": "http_header", "basic": "http_basic", **{p: "webhook_secret" for p in SIGNATURE_PRESETS}}
"""The credential type each preset reads its secret from."""
EVENTS_KEPT = timedelta(days=3)
"""Accepted event ids are remembered this long (signed timestamps are refused after 5 minutes anyway; GitHub
deliveries carry none)."""


class Misconfigured(Exception):
    """The node's credential cannot be used (gone, another type, cannot be opened): the owner must fix the node."""


def credential_type_error(authentication: str, type_name: str | None) -> str | None:
    wanted = CREDENTIAL_TYPE.get(authentication)
    if wanted is None or type_name == wanted:
        return None
    return f"{authentication} authentication takes a “{wanted}” credential, not “{type_name}”."


async def authenticate(db: AsyncSession, ring: KeyRing | None, owner_id: int, config: WebhookConfig,
                       headers: Mapping[str, str], body: bytes, now: float | None = None) -> Verified:
    """Check the request against the node's preset (``AuthFailure`` to answer, ``Misconfigured`` for the owner)."""
    if config.authentication == "none":
        return Verified()
    if ring is None or config.credential is None:
        raise Misconfigured("the webhook's credential cannot be opened on this server")
    try:
        row = await get_credential(db, owner_id, config.credential)
        if error := credential_type_error(config.authentication, row.type_name):
            raise Misconfigured(error)
        credential = open_row(ring, row)
    except CredentialError as exc:
        raise Misconfigured(f"the webhook's credential cannot be used: {exc}") from None
    secret, public = credential.secret, credential.public
    now = time.time() if now is None else now
    match config.authentication:
        case "header":
            return check_header_token(headers, public["header_name"], secret["value"])
        case "basic":
            return check_basic(headers, public["username"], secret["password"])
        case "github":
            return check_github(headers, body, secret["secret"])
        case "stripe":
            return check_stripe(headers, body, secret["secret"], now)
        case "slack":
            return check_slack(headers, body, secret["secret"], now)
        case _:
            return check_hmac(headers, body, secret["secret"], header=config.signature_header,
                              encoding=config.signature_encoding, prefix=config.signature_prefix)


async def remember_event(db: AsyncSession, webhook_id: int, event_id: str | None) -> None:
    """Record an accepted event id in the request's transaction; a second one is refused (403)."""
    if event_id is None:
        return
    try:
        async with db.begin_nested():
            await db.execute(insert(WebhookEvent).values(webhook_id=webhook_id, event_id=event_id, seen_at=utcnow()))
    except IntegrityError:
        raise AuthFailure(403, "This event was already received: a replayed request is refused.") from None


async def prune_events(db: AsyncSession, webhook_id: int) -> None:
    await db.execute(delete(WebhookEvent).where(WebhookEvent.webhook_id == webhook_id,
                                                WebhookEvent.seen_at < utcnow() - EVENTS_KEPT))


__all__ = ["AuthFailure", "Misconfigured", "authenticate", "credential_type_error", "prune_events",
           "remember_event"]
