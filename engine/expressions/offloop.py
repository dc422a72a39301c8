"""Where an expression runs: on the event loop when it only looks values up, else in a bounded thread pool.

The event loop serves pages, WebSockets and every other execution, so anything that can burn CPU
(loops, filters, calls, operators) is evaluated in a thread. A thread cannot stop a single C call that
holds the GIL: the budget (engine/expressions/budget.py) keeps each such call small, and its step
checks stop an evaluation whose caller has given up (a node's time limit) soon after its deadline.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it, once expression threads exist."""


class EvaluationPool:
    """A named pool of at most ``max_workers`` threads, started on first use."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers, self.name = max_workers, name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                # A thread that computes holds the GIL for up to the switch interval each time the event loop
                # asks for it (5 ms by default, several times per request): hand it over sooner.
                sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
                self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name)
            return self._executor

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a pool thread; cancelling the caller leaves the thread to stop
        at its own deadline (a queued call that has not started is dropped)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(function, *args, **kwargs))


RUNS = EvaluationPool(2, "expressions")
"""Expressions of running nodes (every execution of this process shares it)."""
PREVIEWS = EvaluationPool(1, "expression-previews")
"""The editor's previews: their own pool, so previews cannot hold up runs and runs cannot hold up previews."""
