"""A webhook's rate limit: at most N requests per minute (a fixed window per webhook), past it 429 with
``Retry-After``. Counted per web process (the embedded profile has one; with several web processes behind a
balancer each admits N) — docs/triggers.md "Limits and errors"."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WINDOW = 60.0


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_tracked: int = 100_000) -> None:
        self._clock = clock
        self._windows: dict[int, tuple[float, int]] = {}
        self._max_tracked = max_tracked

    def hit(self, webhook_id: int, per_minute: int) -> float | None:
        """Count one request; ``None`` when it is admitted, else the seconds until the window ends."""
        if per_minute <= 0:
            return None
        now = self._clock()
        start, count = self._windows.get(webhook_id, (now, 0))
        if now - start >= WINDOW:
            start, count = now, 0
        if count >= per_minute:
            return max(0.0, start + WINDOW - now)
        if len(self._windows) >= self._max_tracked and webhook_id not in self._windows:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < WINDOW}
        self._windows[webhook_id] = (start, count + 1)
        return None


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
