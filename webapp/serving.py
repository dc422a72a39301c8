"""``patchwire serve``: uvicorn around the app, and the one plain line that tells a person where to go.

The line is printed once the socket is bound and the lifespan (migrations, the embedded worker) has
started, so the URL it names answers when it is read::

    Patchwire is running at http://127.0.0.1:8000/ — create the first account at http://127.0.0.1:8000/register

The second half only while the database has no user. It goes to stdout, apart from the log records on
stderr (JSON lines off a terminal), so it is not buried among them.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import uvicorn
from litestar import Litestar
from sqlalchemy import select

from engine import eventloop
from engine.models import User
from engine.settings import Settings

STARTUP_FAILURE = 3  # uvicorn's own status for a server that never started
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
"""A server bound to every interface is opened through loopback on this machine."""


def browser_url(host: str, port: int) -> str:
    """The address to open for a server bound to ``host``:``port`` (IPv6 in brackets)."""
    host = WILDCARD_HOSTS.get(host, host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:  # a name, used as it is
        pass
    return f"http://{host}:{port}/"


def start_line(url: str, has_users: bool) -> str:
    if has_users:
        return f"Patchwire is running at {url}"
    return f"Patchwire is running at {url} — create the first account at {url}register"


async def any_user(app: Litestar) -> bool:
    async with app.state.runtime.sessions() as db:
        return await db.scalar(select(User.id).limit(1)) is not None


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that prints :func:`start_line` once it listens."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.patchwire_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:  # startup failed: uvicorn has said why
            return
        bound = self.servers[0].sockets[0].getsockname()  # the real port, also for --port 0
        url = browser_url(self.config.host, bound[1])
        print(start_line(url, await any_user(self.patchwire_app)), file=sys.stdout, flush=True)

    async def _serve(self, sockets: list[socket.socket] | None = None) -> None:
        await super()._serve(sockets)
        # uvicorn raises the SIGINT / SIGTERM it caught again once it has shut down, so that the process
        # "dies of it": a KeyboardInterrupt, or exit status 143 for SIGTERM. The shutdown it asked for has
        # happened, completely: forget the signals and end with status 0.
        self._captured_signals.clear()


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the web server (and, on the embedded profile, the worker in-process) until SIGINT / SIGTERM."""
    from engine.gctune import freeze_startup_hook
    from webapp.app import create_app
    from webapp.transport import proxy_header_options

    app = create_app(settings)
    app.on_startup.append(freeze_startup_hook)  # after the lifespan started everything (engine/gctune.py)
    # log_config=None: uvicorn's records go through the handler configure_logging installed (JSON or text)
    # loop: asyncio's, with timers that fire on time (engine/eventloop.py); the in-process worker runs on it.
    # No permessage-deflate: the live tables send small fragments to many sockets, and compressing each one
    # per socket cost ~17 % more CPU per message (docs/benchmarks.md); Node's `ws` leaves it off by default too.
    options: dict[str, Any] = {"log_level": settings.log_level.lower(), "lifespan": "on", "log_config": None,
                               "loop": eventloop.UVICORN_LOOP, "ws_per_message_deflate": False,
                               # X-Forwarded-* believed from PATCHWIRE_TRUSTED_PROXIES only (uvicorn's default: 127.0.0.1)
                               **proxy_header_options(settings)}
    config = uvicorn.Config(app, host=host, port=port, **options)
    server = AnnouncingServer(config, app)
    server.run()
    if not server.started:  # uvicorn logged why (the port is taken, the lifespan failed)
        raise SystemExit(STARTUP_FAILURE)
