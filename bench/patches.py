"""Experimental versions of the fixes proposed in docs/benchmarks.md, applied by monkeypatching.

They exist to *measure* the proposals (bench/experiments.py) without touching engine/ or webapp/;
they are not the patches themselves and are not meant for production.

| name | what it changes (in this process only) | proposal |
| --- | --- | --- |
| ``pool`` | ``make_engine`` gets ``pool_size = worker concurrency + 5`` (PostgreSQL) | engine/database.py ``make_engine`` |
| ``config`` | ``msgspec.structs.fields`` is memoised per type | engine/config.py ``parse_config`` |

The run-store prototypes measured in docs/benchmarks.md (``store``, ``pure``, ``batch``) were
removed when the engine got the real thing: one transaction per run-loop step, a group-committing
writer and bare-driver statements (engine/runner.py, engine/sqlstore.py). ``pool`` and ``config``
are in the engine as well; applying them now changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

import engine.database

NAMES = ("pool", "config")


# -- apply -------------------------------------------------------------------------------------

def _pool_make_engine(original: Any) -> Any:
    def make_engine(url: str, **kwargs: Any) -> Any:
        if not url.startswith("sqlite") and "pool_size" not in kwargs:
            kwargs["pool_size"] = int(os.environ.get("PATCHWIRE_WORKER_CONCURRENCY", "10")) + 5
        return original(url, **kwargs)
    return make_engine


def _cached_fields(original: Any) -> Any:
    cache: dict[Any, Any] = {}

    def fields(type_: Any) -> Any:
        found = cache.get(type_)
        if found is None:
            found = cache[type_] = original(type_)
        return found
    return fields


@contextmanager
def applied(names: tuple[str, ...] | list[str]) -> Iterator[None]:
    """Apply the named patches in this process; undo them on exit."""
    import sys

    undo: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, value: Any) -> None:
        undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    unknown = set(names) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown patches {sorted(unknown)}; known: {', '.join(NAMES)}")
    try:
        if "pool" in names:
            wrapped = _pool_make_engine(engine.database.make_engine)
            for module_name in ("engine.database", "webapp.worker", "webapp.runtime", "webapp.headless", "common"):
                module = sys.modules.get(module_name)
                if module is not None and hasattr(module, "make_engine"):
                    patch(module, "make_engine", wrapped)
        if "config" in names:
            patch(msgspec.structs, "fields", _cached_fields(msgspec.structs.fields))
        yield
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)
