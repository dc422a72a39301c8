"""A node type that fails the way a bug in node code does, for the tests of the execution page.

It logs a line, then raises an exception that is not a ``PatchwireError``, so the run loop stores
the error *with its traceback* — which no shipped node does on purpose. It is not part of ``nodes``:
web tests register it on the app's registry for one test (``registered``), and
``python -m tests.crash_node serve|worker …`` runs the ``patchwire`` command with it registered
(the e2e server of e2e/test_execution_watch.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType


class CrashConfig(msgspec.Struct, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(title="Message")] = "<b>boom</b> & <script>alert(1)</script>"


class Crash(NodeType):
    type_name = "test_crash"
    title = "Crash (test)"
    category = "Logic"
    description = "Fails with an unexpected exception (tests only)."
    Config = CrashConfig

    async def run(self, ctx: NodeContext, config: CrashConfig, items: list[Item]) -> NodeResult:
        ctx.logger.warning("attempt %d: about to fail with %s", ctx.attempt, config.message)
        return _explode(config.message)


def _explode(message: str) -> NodeResult:
    raise LookupError(message)


@contextmanager
def registered() -> Iterator[None]:
    """``Crash`` is on the app's registry (``nodes.registry``) inside the block."""
    from nodes import registry

    registry.register(Crash)
    try:
        yield
    finally:
        registry.unregister(Crash)


if __name__ == "__main__":
    from nodes import registry
    from webapp.cli import main

    registry.register(Crash)
    sys.exit(main(sys.argv[1:]))
