"""Lifecycle events — their names are part of the public contract.

Every state change is persisted by the run store first and published here second.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

EventType = Literal[
    "workflow.started",
    "node.started",
    "node.retrying",
    "node.completed",
    "node.failed",
    "node.skipped",
    "node.waiting",
    "workflow.waiting",
    "workflow.finished",
]


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: EventType
    execution_id: int
    workflow_id: int
    seq: int
    at: float
    node_id: str | None = None
    node_name: str | None = None
    status: str | None = None
    attempt: int | None = None
    duration_ms: float | None = None
    summary: str | None = None

    @property
    def channel(self) -> str:
        return channel_for(self.execution_id)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def to_builtins(self) -> dict[str, object]:
        return msgspec.to_builtins(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        return msgspec.json.decode(data, type=cls)


def channel_for(execution_id: int) -> str:
    """The pub/sub channel of one execution's events."""
    return f"pw_execution_{execution_id}"


class Message(Protocol):
    """What a sink publishes: an ``Event`` (its execution's channel) or an ``ExecutionChange``
    (``engine/changes.py``, the one channel of all executions)."""

    @property
    def channel(self) -> str: ...

    def to_json(self) -> bytes: ...


class EventSink(Protocol):
    async def publish(self, event: Message) -> None: ...


async def publish_all(sink: EventSink, events: list[Any]) -> None:
    """Publish in order; a sink with ``publish_many`` gets them in one call (one round trip)."""
    publish_many = getattr(sink, "publish_many", None)
    if publish_many is not None and len(events) > 1:
        await publish_many(events)
        return
    for event in events:
        await sink.publish(event)


class MemorySink:
    """Keeps events (and execution changes, apart) in lists; for tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changes: list[Any] = []

    async def publish(self, event: Message) -> None:
        if isinstance(event, Event):
            self.events.append(event)
        else:
            self.changes.append(event)

    def types(self, node_id: str | None = None) -> list[str]:
        return [e.type for e in self.events if node_id is None or e.node_id == node_id]


def summarize(count: int) -> str:
    return f"{count} item{'s' if count != 1 else ''}"
