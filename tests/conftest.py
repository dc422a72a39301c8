"""Shared fixtures: real PostgreSQL and Redis servers, found by URL.

Tests that need a service ask for the ``postgres_url`` / ``redis_url`` fixtures. When the
service does not answer they are skipped with the reason, unless
``PATCHWIRE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), in which case they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("PATCHWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PATCHWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("PATCHWIRE_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, url: str) -> None:
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if services_required():
        pytest.fail(f"{message} and PATCHWIRE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message} (set PATCHWIRE_TEST_{name.upper()}_URL or start it)")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The admin URL of the PostgreSQL server (database ``postgres``)."""
    need_service("postgres", POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards (``postgresql://`` URL)."""
    import psycopg

    name = f"pw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a database number that the test may flush."""
    need_service("redis", REDIS_URL)
    import redis

    url = REDIS_URL.rsplit("/", 1)[0] + "/15"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
