"""Garbage collection for the long-running processes: ``patchwire serve`` and ``patchwire worker``.

CPython's cyclic collector stops the process while it scans; a collection of the oldest generation
scans every object that generation holds. In a started Patchwire process most of those objects live
as long as the process does — modules, classes, functions, compiled templates, routes, the SQLAlchemy
and msgspec metadata — and each full collection scanned them all again: under the status-latency
benchmark (bench/status_latency.py, 150 executions/s, 100 live browsers) the web process made a full
collection every ~3 s, each stopping its event loop for up to 118 ms, which was the whole p99 of the
updates the browsers got (docs/benchmarks.md).

``freeze_startup`` runs once startup is over (the web process: a Litestar ``on_startup`` hook, after
the lifespan opened the database, the queue and the in-process worker; the worker: before it takes
jobs). It collects what startup left behind, then moves every object still alive into the permanent
generation (``gc.freeze``), which collections skip. Objects made afterwards are collected as before;
a frozen object is still freed when its reference count drops to zero — only a reference cycle among
frozen objects would stay, and those are the process's own long-lived structures.

The collector's thresholds stay CPython's (700, 10, 10). Raising the first one to 10,000 was tried: it
made collections rarer but each one longer — young collections up to 10 ms and middle ones up to 38 ms
instead of 2 and 5 ms — and a pause is what a live client waits through.

Not called in tests: a test process starts and drops many apps, and freezing one would keep its
cycles alive after the test.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("patchwire.gc")


def freeze_startup() -> int:
    """Collect, then freeze what is alive; returns how many objects are now frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("froze %d objects after startup", frozen)
    return frozen


async def freeze_startup_hook(*_: object) -> None:
    """``freeze_startup`` as a Litestar ``on_startup`` hook."""
    freeze_startup()
