"""The event loop Patchwire runs on: asyncio's, with timers that fire on time.

asyncio waits for its next timer with ``epoll_wait``, whose timeout is whole milliseconds, rounded
up (``selectors.EpollSelector`` and ``select.epoll.poll`` both round up). A timer due 3.2 ms after the
loop's last iteration fires at 4 ms: 0–1 ms late, 0.5 ms on average. A workflow of Delay nodes,
retry back-offs and Wait nodes pays that on every step (bench/overhead.py: a chain of 40 ten-millisecond
delays lost about 0.4 ms per step to it).

``PreciseEpollSelector`` keeps a Linux ``timerfd`` in its epoll set and arms it, before each wait that
has a timeout, with the exact timeout in nanoseconds: the wait ends when the timer is due, not at the
next whole millisecond. ``epoll_wait``'s own rounded-up timeout stays as the backstop. The cost is one
``timerfd_settime`` call per wait that has a timeout, and one to disarm it at the first wait without
one (a loop with ready callbacks waits with timeout 0). The timerfd is never in the selector's map, so
the loop never sees it as an event.

Where ``timerfd`` is not available (not Linux, no libc through ctypes), ``new_event_loop`` is plain
``asyncio.SelectorEventLoop`` with the default selector.

Used by ``patchwire serve`` (uvicorn's ``loop`` setting), ``patchwire worker`` and the other CLI
commands (``run``), and by the benchmarks.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import select
import selectors
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("patchwire.eventloop")
_CLOCK_MONOTONIC = 1
_NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes, create.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    settime.restype = ctypes.c_int
    return libc


_LIBC = _libc()
AVAILABLE = _LIBC is not None and hasattr(selectors, "EpollSelector")
"""Whether this platform has what ``PreciseEpollSelector`` needs (Linux: epoll and timerfd)."""

_Base: type[selectors.BaseSelector] = getattr(selectors, "EpollSelector", selectors.DefaultSelector)


class PreciseEpollSelector(_Base):  # type: ignore[misc, valid-type]
    """An ``EpollSelector`` whose waits end at their timeout to the microsecond (see the module text)."""

    def __init__(self) -> None:
        if not AVAILABLE:
            raise OSError("timerfd is not available on this platform")
        super().__init__()
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            super().close()
            raise OSError(errno, f"timerfd_create: {os.strerror(errno)}")
        self._timer_fd = fd
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._armed = False
        try:
            self._selector.register(fd, select.EPOLLIN)  # the raw epoll object: never a key of this selector
        except BaseException:
            os.close(fd)
            super().close()
            raise

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            self._arm(timeout)
        elif self._armed:
            # no timeout (or none needed: callbacks are ready): a timer that fired earlier must not leave
            # the fd readable — a wait without timeout would return at once, and a poll would spend one
            # of its event slots on it. Disarming resets it (one call, then ``_armed`` is False).
            self._arm(0.0)
        return super().select(timeout)

    def _arm(self, timeout: float) -> None:
        """Arm (or with 0, disarm) the timer, relative to now. Any setting also clears a past expiry,
        so the fd is readable again only when this timeout has passed."""
        ns = int(timeout * _NS)
        if timeout > 0 and ns == 0:
            ns = 1  # 0 would disarm
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(ns, _NS)
        if _LIBC.timerfd_settime(self._timer_fd, 0, self._spec_ref, None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_settime: {os.strerror(errno)}")
        self._armed = ns != 0

    def close(self) -> None:
        fd, self._timer_fd = self._timer_fd, -1
        try:
            super().close()
        finally:
            if fd >= 0:
                os.close(fd)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop with ``PreciseEpollSelector`` where the platform has it, else asyncio's default
    (also when the timerfd cannot be made here: a sandbox that forbids it, no file descriptors left)."""
    if AVAILABLE:
        try:
            return asyncio.SelectorEventLoop(PreciseEpollSelector())
        except OSError as exc:
            log.warning("timers may fire up to 1 ms late: no timerfd (%s); using asyncio's default loop", exc)
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """``asyncio.run`` on ``new_event_loop()``."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


UVICORN_LOOP = "engine.eventloop:new_event_loop"
"""uvicorn's ``loop`` setting for this loop (a custom value is imported and called to make the loop)."""
