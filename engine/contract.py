"""The node contract: what a node type is and what it may use while it runs.

A node type is a class with a stable ``type_name``, an integer ``version``, a ``Config``
(a ``msgspec.Struct`` — the one schema language used everywhere), its ports, and
``async def run(self, ctx, config, items) -> NodeResult``. Node types never touch the
database, the queue, or the web layer: everything they may use comes through ``ctx``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx
import msgspec

if TYPE_CHECKING:
    from engine.credentials.types import OpenCredential

Item = dict[str, Any]
"""One JSON object travelling along a connection."""


class EmptyConfig(msgspec.Struct, forbid_unknown_fields=True):
    pass


@dataclass(frozen=True)
class NodeResult:
    """Which output port carries which items. A port that is absent was not taken.

    ``not_before`` (epoch seconds): the result may only be passed on at that time (a Wait). A
    short wait is slept in the worker; a long one is persisted and the execution is continued
    by a scheduled job, so no worker slot is held meanwhile."""

    outputs: dict[str, list[Item]]
    not_before: float | None = None

    @classmethod
    def main(cls, items: list[Item]) -> NodeResult:
        return cls({"main": items})


class SubWorkflows(Protocol):
    """Runs another workflow of the same owner with the given items; returns its final items."""

    async def run(self, workflow_id: int, items: list[Item]) -> list[Item]: ...


class CredentialAccess(Protocol):
    """``ctx.credentials``: the credentials of the execution's owner, opened in the worker at run time
    (engine/credentials/vault.py). A missing id, another owner's id or a type the node does not accept
    raise ``NodeError`` with the reason; every secret value opened is redacted from the run's data."""

    async def get(self, credential_id: int, *, accept: tuple[str, ...]) -> OpenCredential: ...

    async def access_token(self, credential_id: int, *, min_valid: float = 60) -> str:
        """An OAuth credential's access token, refreshed first when it expires within ``min_valid`` s."""
        ...

    async def refresh_after_unauthorized(self, credential_id: int, used_token: str) -> str:
        """The API said 401 to ``used_token``: a new access token (refreshed once, unless another node
        or worker already did)."""
        ...


class Expressions(Protocol):
    """Evaluates the ``{{ }}`` expressions in a config value for one item, under the expression budget,
    off the event loop when it is more than a lookup (engine/expressions)."""

    async def render(self, value: Any, *, item: Item, field: str) -> Any: ...


@dataclass
class NodeContext:
    """Everything a running node may use. One per node run."""

    execution_id: int
    workflow_id: int
    node_id: str
    node_name: str
    attempt: int
    http: httpx.AsyncClient
    expressions: Expressions
    trigger_input: Item = field(default_factory=dict)
    inputs: dict[str, list[Item]] = field(default_factory=dict)
    """Items per input port, for nodes with several inputs (Merge); ``items`` is their concatenation."""
    live_inputs: tuple[str, ...] = ()
    """Input ports whose upstream ran (not skipped) — what a Merge waits for."""
    sub_workflows: SubWorkflows | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("patchwire.node"))
    credentials: CredentialAccess | None = None
    """The owner's credentials (``None`` where no vault is wired, e.g. engine tests without one)."""

    @property
    def idempotency_key(self) -> str:
        return f"{self.execution_id}:{self.node_id}"


class NodeType:
    """Base class of every node type. Subclasses set the class attributes and ``run``."""

    type_name: ClassVar[str]
    version: ClassVar[int] = 1
    title: ClassVar[str]
    category: ClassVar[str] = "Actions"
    description: ClassVar[str] = ""
    Config: ClassVar[type[msgspec.Struct]] = EmptyConfig
    inputs: ClassVar[tuple[str, ...]] = ("main",)
    outputs: ClassVar[tuple[str, ...]] = ("main",)
    is_trigger: ClassVar[bool] = False
    trigger_kind: ClassVar[str | None] = None
    """For a trigger (``is_trigger``): what starts it — ``"manual"`` (Run, the CLI, the API, a calling
    workflow), ``"webhook"``, ``"schedule"`` (``ScheduleTriggerType``) or ``"poll"`` (``PollTriggerType``).
    A workflow with a webhook, schedule or poll trigger can be activated (engine/triggers/)."""
    pure: ClassVar[bool] = False
    """The node has no effect outside its result: it calls nothing, writes nothing, starts nothing
    (logic, data shaping, waiting). The engine may begin running a pure node while the commit that
    records its start is still in flight (engine/README.md, "Pipelined commits"); a node with effects
    always starts after that commit. Leave it ``False`` when in doubt."""
    credential_types: ClassVar[tuple[str, ...]] = ()
    """The credential types (``type_name``) this node accepts in its ``credential`` config field."""
    expression_fields: ClassVar[tuple[str, ...]] = ()
    """Config fields whose strings may hold ``{{ }}`` and are rendered per item by the node."""

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        raise NotImplementedError

    def time_limit(self, config: Any, items: list[Item]) -> float | None:
        """Seconds this run may take; ``None`` means the engine's default (300 s)."""
        return None


RESPONSE_OUTPUT = "$response"
"""A reserved key of a node's outputs that is not a port (nothing connects to it, nothing is passed on): one item
a node hands to whoever waits for the execution — the Respond to Webhook node's HTTP response, which the web
process reads from the node run (webapp/webhooks/waiting.py). Left out of the execution's output and of
``nodes["Name"]``."""


def passed_on(outputs: dict[str, list[Item]]) -> list[Item]:
    """The items of all of a node's ports (not ``RESPONSE_OUTPUT``)."""
    return [i for port, items in outputs.items() if port != RESPONSE_OUTPUT for i in items]


AUTOMATIC_TRIGGER_KINDS = ("webhook", "schedule", "poll")
"""Trigger kinds that start executions by themselves once the workflow is active."""


class ScheduleTriggerType(NodeType):
    """A trigger that fires at computed times (engine/triggers/scheduler.py claims each slot exactly once).
    ``run`` emits the items it is given: one item describing the slot."""

    is_trigger = True
    trigger_kind = "schedule"
    inputs = ()
    pure = True
    category = "Triggers"

    def next_slot(self, config: Any, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (aware, UTC), as an aware UTC datetime; ``None``: no more
        slots (a one-time date that has passed)."""
        raise NotImplementedError

    def missed_policy(self, config: Any) -> str:
        """What to do with slots missed while no worker ran: ``"skip"`` them, or run the ``"latest"`` one once."""
        return "skip"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)


@dataclass
class PollContext:
    """What a poll may use: like ``NodeContext`` without an execution (there is none yet)."""

    workflow_id: int
    node_id: str
    node_name: str
    http: httpx.AsyncClient
    now: datetime
    credentials: CredentialAccess | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("patchwire.node"))


@dataclass(frozen=True)
class PollResult:
    """The new items found (each starts the workflow; they run as one execution) and the cursor to keep."""

    items: list[Item]
    state: dict[str, Any]


class PollTriggerType(NodeType):
    """A "something new appeared" trigger: the scheduler calls ``poll`` every ``interval`` seconds and commits
    the new state in the same transaction as the execution it starts, so a crash neither loses nor repeats an
    item. ``state`` is ``None`` at the first poll after activation: take a baseline (return no items)."""

    is_trigger = True
    trigger_kind = "poll"
    inputs = ()
    pure = True
    category = "Triggers"

    def interval(self, config: Any) -> float:
        raise NotImplementedError

    async def poll(self, ctx: PollContext, config: Any, state: dict[str, Any] | None) -> PollResult:
        raise NotImplementedError

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)
