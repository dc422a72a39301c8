"""pytest fixtures for the provider fakes (imported by tests/conftest.py and e2e/conftest.py).

``fake_providers_server``: one running ``FakeProviders`` per test process (per xdist worker), for
module- or session-scoped fixtures such as e2e servers that need the URLs at start.
``fake_providers``: the same server, every provider reset to its defaults before the test.
``feed_server``: a fresh loopback server of documents the test changes (tests/fakes/feeds.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.feeds import FeedServer, serve_feeds
from tests.fakes.server import FakeProviders


@pytest.fixture(scope="session")
def fake_providers_server() -> Iterator[FakeProviders]:
    fake = FakeProviders().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_providers(fake_providers_server: FakeProviders) -> Iterator[FakeProviders]:
    fake_providers_server.reset()
    yield fake_providers_server
    fake_providers_server.reset()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    yield from serve_feeds()
