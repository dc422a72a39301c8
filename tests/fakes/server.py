"""``FakeProviders``: the loopback server (uvicorn on a thread, port 0) and the tests' handle on its state.

One server per test process (per xdist worker). The socket is bound before the thread starts, so the
port is known at once; ``start()`` returns when uvicorn reports it is serving.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import httpx
import uvicorn

from tests.fakes.app import create_app
from tests.fakes.state import PROVIDERS, ProviderState

START_TIMEOUT = 10.0


class FakeProviders:
    """The fake providers' server and controls.

    ``fake.google``, ``fake.slack``, ``fake.notion``, ``fake.oauth2``, ``fake.telegram`` (or
    ``fake.provider(name)``) are each a ``ProviderState`` with the switches, counters and the default
    client (``fake.google.default_client``). ``fake.url`` is the base URL, ``fake.base(name)`` a dialect's;
    ``fake.http`` is an ``httpx.Client`` for tests that call the fakes directly (one per server: a
    client per call costs a TLS context each time).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.states = {name: ProviderState(name, self.lock) for name in PROVIDERS}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._gates: dict[str, asyncio.Event] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.http = httpx.Client(timeout=10)

    def __getattr__(self, name: str) -> ProviderState:
        states = self.__dict__.get("states", {})
        if name in states:
            return states[name]
        raise AttributeError(name)

    def provider(self, name: str) -> ProviderState:
        return self.states[name]

    def base(self, name: str) -> str:
        return f"{self.url}/{name}"

    # --- life cycle ----------------------------------------------------------------------------------
    def start(self) -> FakeProviders:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            app = create_app(self.states, self._release_event, self._gate)
        except BaseException:
            sock.close()
            raise
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=1, loop="asyncio")
        self._server = uvicorn.Server(config)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, ready), name="fake-providers", daemon=True)
        self._thread.start()
        # `ready` is set once uvicorn has started serving, or when the thread ends (a failed start).
        if not ready.wait(START_TIMEOUT) or not self._server.started:
            raise RuntimeError("the fake providers' server did not start")
        return self

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        try:
            asyncio.run(self._run(sock, ready))
        finally:
            ready.set()

    async def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self._release = asyncio.Event()
        server = self._server
        original_startup = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original_startup(sockets=sockets)
            ready.set()

        server.startup = startup  # type: ignore[method-assign]
        await server.serve(sockets=[sock])

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.reset()
        self.http.close()
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- state ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Every provider back to its defaults; requests still waiting on a ``delay`` or held are let go."""
        for state in self.states.values():
            state.reset()
        if self._loop is not None and self._release is not None and not self._loop.is_closed():
            old = self._release
            self._loop.call_soon_threadsafe(old.set)
            self._release = asyncio.Event()
            for name in self.states:
                self._loop.call_soon_threadsafe(self._open_gate, name)

    def release(self, name: str) -> None:
        """Let the requests held at ``name``'s door (``hold = True``) go on; later ones are not held."""
        self.states[name].hold = False
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._open_gate, name)

    def _gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    def _open_gate(self, name: str) -> None:
        self._gates.pop(name, asyncio.Event()).set()

    def _release_event(self) -> asyncio.Event:
        assert self._release is not None
        return self._release
