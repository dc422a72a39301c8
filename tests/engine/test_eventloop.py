"""The event loop Patchwire runs on (engine/eventloop.py): asyncio's, with a timerfd so that a wait ends
at its timeout instead of at the next whole millisecond. How much that saves is measured by
bench/overhead.py; these tests check that the loop is the one in use and that the selector stays correct."""

from __future__ import annotations

import asyncio
import os
import select
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config

from engine import eventloop
from engine.eventloop import PreciseEpollSelector

pytestmark = pytest.mark.skipif(not eventloop.AVAILABLE, reason="timerfd is Linux-only")


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


async def test_tests_and_the_cli_run_on_the_precise_loop() -> None:
    # the conftest hook gives every async test this loop, as `patchwire serve` / `worker` get it
    assert isinstance(asyncio.get_running_loop()._selector, PreciseEpollSelector)  # type: ignore[attr-defined]


def test_run_and_uvicorns_loop_setting_make_the_precise_loop() -> None:
    async def selector() -> object:
        return asyncio.get_running_loop()._selector  # type: ignore[attr-defined]

    assert isinstance(eventloop.run(selector()), PreciseEpollSelector)
    factory = Config(app=lambda *a: None, loop=eventloop.UVICORN_LOOP).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop._selector, PreciseEpollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_the_timer_is_armed_with_the_exact_timeout_and_never_reported() -> None:
    sel = PreciseEpollSelector()
    try:
        t0 = time.monotonic()
        assert sel.select(0.0123456) == []  # the timerfd fired, but it is not one of the selector's keys
        assert time.monotonic() - t0 >= 0.0123456 - 1e-6  # never before its timeout
        assert (sel._spec.it_value.tv_sec, sel._spec.it_value.tv_nsec) == (0, 12_345_600)
        sel._arm(2.5)
        assert (sel._spec.it_value.tv_sec, sel._spec.it_value.tv_nsec) == (2, 500_000_000)
        assert not _readable(sel._timer_fd)  # re-arming cleared the earlier expiry
    finally:
        sel.close()


@pytest.fixture
def watched() -> Iterator[tuple[PreciseEpollSelector, socket.socket, socket.socket]]:
    """A selector with one registered socket (``a``, read events, data "a"), and its peer ``b``."""
    sel = PreciseEpollSelector()
    a, b = socket.socketpair()
    sel.register(a, selectors.EVENT_READ, data="a")
    yield sel, a, b
    sel.close()
    a.close()
    b.close()


def test_a_fired_timer_does_not_make_a_wait_without_timeout_return_at_once(watched: Any) -> None:
    sel, a, b = watched
    assert sel.select(0.001) == []
    assert _readable(sel._timer_fd)  # expired and not read
    b.send(b"x")
    ready = sel.select(None)  # disarms the fired timer before waiting
    assert [key.data for key, _ in ready] == ["a"]
    assert not _readable(sel._timer_fd)
    a.recv(1)
    assert sel.select(0) == []


def test_file_descriptors_keep_working_beside_the_timer(watched: Any) -> None:
    sel, a, b = watched
    assert sel.select(0.002) == []
    b.send(b"ping")
    ready = sel.select(5)  # returns for the data, long before the timeout
    assert [key.data for key, _ in ready] == ["a"]
    assert sel._armed  # armed for 5 s: the next wait re-arms it (which also clears it)
    sel.unregister(a)
    assert sel.select(0.001) == []


def test_close_closes_the_timer_fd() -> None:
    sel = PreciseEpollSelector()
    fd = sel._timer_fd
    os.fstat(fd)
    sel.close()
    with pytest.raises(OSError):
        os.fstat(fd)


async def test_timers_socket_io_and_threads_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    loop.call_later(0.003, fired.append, "later")

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(await r.readline())
        await w.drain()
        w.close()
        await w.wait_closed()

    async with await asyncio.start_server(echo, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    assert await loop.run_in_executor(None, lambda: "thread") == "thread"
    await asyncio.sleep(0.005)
    assert fired == ["later"]


def test_a_poll_after_the_timer_fired_disarms_it_and_reports_the_ready_fd(watched: Any) -> None:
    sel, _, b = watched  # one key: epoll is asked for one event per key
    assert sel.select(0.001) == []
    assert _readable(sel._timer_fd)
    b.send(b"x")
    assert [key.data for key, _ in sel.select(0)] == ["a"]  # not crowded out by the timerfd
    assert not _readable(sel._timer_fd) and not sel._armed


class _NoTimerfd:
    """libc in a sandbox that refuses timerfd_create."""

    def timerfd_create(self, clock: int, flags: int) -> int:
        return -1


def test_without_a_timerfd_the_loop_is_asyncios_default(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(eventloop, "_LIBC", _NoTimerfd())
    with pytest.raises(OSError, match="timerfd_create"):
        PreciseEpollSelector()
    loop = eventloop.new_event_loop()
    try:
        assert not isinstance(loop._selector, PreciseEpollSelector)  # type: ignore[attr-defined]
        assert loop.run_until_complete(asyncio.sleep(0.001, "ran")) == "ran"
    finally:
        loop.close()
    assert any("no timerfd" in r.getMessage() for r in caplog.records)
