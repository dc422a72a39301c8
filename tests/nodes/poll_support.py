"""Helpers of the poll trigger tests: a real ``PollContext`` (the guarded HTTP client, allowing loopback or
not) and polling a node type's ``poll()`` with its config parsed as the scheduler parses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from engine.config import parse_config
from engine.contract import CredentialAccess, PollContext, PollResult, PollTriggerType
from engine.netguard import outbound_client, parse_networks

LOOPBACK = "127.0.0.0/8"


@asynccontextmanager
async def poll_context(*, allow: str = LOOPBACK, credentials: CredentialAccess | None = None,
                       now: datetime | None = None) -> AsyncIterator[PollContext]:
    async with outbound_client(parse_networks(allow)) as http:
        yield PollContext(workflow_id=1, node_id="trigger", node_name="Trigger", http=http,
                          now=now or datetime.now(UTC), credentials=credentials)


async def poll(node_type: type[PollTriggerType], ctx: PollContext, config: dict[str, Any],
               state: dict[str, Any] | None) -> PollResult:
    node = node_type()
    return await node.poll(ctx, parse_config(node_type.Config, config), state)
