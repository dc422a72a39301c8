"""A fresh PostgreSQL database for a test, on the shared server: the one place that creates and drops them.

Names are ``<prefix>_<12 hex digits>`` from a random UUID, so tests on different xdist workers (and test
runs of other work trees on the same server) never meet. The drop uses ``WITH (FORCE)``: a connection
the app under test left open (a pool, a killed worker's session) must not keep the database alive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "pw_test") -> Iterator[str]:
    """Create an empty database on the server at ``server_url`` (an admin URL), yield its ``postgresql://``
    URL, and drop it afterwards even when the body raised."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
