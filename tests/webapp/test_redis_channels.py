"""Redis pub/sub ignores database numbers: Patchwire's channel names carry the database's, so instances on one
Redis server with their own databases never see each other's executions (engine.publisher.redis_channel_prefix)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from engine.events import Event, channel_for
from engine.publisher import RedisSink, redis_channel_prefix
from webapp.runtime import _RedisChannels

pytestmark = pytest.mark.redis


def test_the_prefix_is_the_database_number() -> None:
    assert redis_channel_prefix("redis://127.0.0.1:6379/3") == "pw3:"
    assert redis_channel_prefix("redis://127.0.0.1:6379") == "pw0:"
    assert redis_channel_prefix("redis://127.0.0.1:6379/?db=7") == "pw7:"
    assert redis_channel_prefix("rediss://user:pw@host:6380/12") == "pw12:"


async def test_a_message_published_for_another_database_is_not_received(redis_url: str) -> None:
    other_db = 1 if not redis_url.endswith("/1") else 2
    other_url = redis_url.rsplit("/", 1)[0] + f"/{other_db}"
    backend = _RedisChannels(redis=Redis.from_url(redis_url), prefix=redis_channel_prefix(redis_url))
    execution_id = 10**12 + secrets.randbelow(10**6)  # a channel no other test uses
    channel = channel_for(execution_id)
    ours, theirs = RedisSink(redis_url), RedisSink(other_url)
    try:
        await backend.subscribe([channel])
        events = backend.stream_events()
        # the subscription is live once a message of our own arrives: publish until one does
        first = asyncio.ensure_future(anext(events))
        for seq in range(1, 200):
            await theirs.publish(Event(type="node.started", execution_id=execution_id, workflow_id=2, seq=seq, at=0.0))
            await ours.publish(Event(type="node.started", execution_id=execution_id, workflow_id=1, seq=seq, at=0.0))
            done, _ = await asyncio.wait([first], timeout=0.05)
            if done:
                break
        name, data = await asyncio.wait_for(first, 10)
        assert name == channel
        received = Event.from_json(data)
        assert received.workflow_id == 1, "a message of another database's instance reached this one"
        # Redis delivers in publishing order: every message until the next one of ours is ours as well
        await theirs.publish(Event(type="node.started", execution_id=execution_id, workflow_id=2, seq=500, at=0.0))
        await ours.publish(Event(type="node.started", execution_id=execution_id, workflow_id=1, seq=501, at=0.0))
        while True:
            name, data = await asyncio.wait_for(anext(events), 10)
            event = Event.from_json(data)
            assert event.workflow_id == 1, "a message of another database's instance reached this one"
            if event.seq == 501:
                break
    finally:
        await backend.unsubscribe([channel])
        await backend.on_shutdown()
        await ours.close()
        await theirs.close()
