"""Dynamic options: the choices of a dropdown that a node type loads itself (the owner's workflows,
Slack channels, Notion databases…), through the node's credential when it has one.

A node type offers them by marking a config field ``extra={"widget": "options"}`` and defining::

    async def options(self, ctx: OptionsContext, field: str, credential: int | None, query: str) -> list[Choice]

``query`` is what the person typed in the search box (the source filters, server-side). A source that
fails raises ``NodeError`` (its message is shown in place of the list); one that takes longer than
``OPTIONS_TIMEOUT`` is cut off with a message saying so. The stored value stays the id either way, and
the form always accepts an id typed by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from engine.contract import CredentialAccess
from engine.errors import NodeError

OPTIONS_TIMEOUT = 10.0
MAX_CHOICES = 500


@dataclass(frozen=True)
class Choice:
    value: str | int
    label: str


class WorkflowDirectory(Protocol):
    """The owner's workflows, for pickers such as Sub-workflow's."""

    async def search(self, query: str) -> list[Choice]: ...


@dataclass
class OptionsContext:
    """What a node type may use to load choices: the owner's credentials and workflows, the guarded HTTP client."""

    owner_id: int
    workflow_id: int
    http: httpx.AsyncClient
    credentials: CredentialAccess | None = None
    workflows: WorkflowDirectory | None = None


class OptionsError(Exception):
    """The choices could not be loaded; the message is for the person at the form."""


def offers_options(node_type: Any, field: str, kinds: dict[str, str]) -> bool:
    return kinds.get(field) == "options" and callable(getattr(node_type, "options", None))


async def load_options(node_type: Any, ctx: OptionsContext, field: str, credential: int | None, query: str,
                       timeout: float | None = None) -> list[Choice]:
    """The node type's choices for ``field``, at most ``MAX_CHOICES``; ``OptionsError`` saying why not."""
    limit = timeout if timeout is not None else getattr(node_type, "options_timeout", OPTIONS_TIMEOUT)
    try:
        async with asyncio.timeout(limit):
            choices = await node_type.options(ctx, field, credential, query.strip())
    except TimeoutError:
        raise OptionsError(f"The list did not load within {limit:g} s (the service is slow or unreachable).") from None
    except NodeError as exc:
        raise OptionsError(f"The list could not be loaded: {exc}") from None
    except httpx.HTTPError as exc:
        raise OptionsError(f"The list could not be loaded: {type(exc).__name__}: {exc}") from None
    return list(choices)[:MAX_CHOICES]
