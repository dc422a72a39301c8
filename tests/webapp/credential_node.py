"""A node type with a credential field, for the web tests of the picker, the save-time check and export/import.

It is not part of ``nodes``: the tests register it on the app's registry for one test (``registered``), so
they do not depend on which shipped node types accept credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, ClassVar

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType


class CallConfig(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(title="URL")] = "https://example.com/"
    credential: Annotated[int | None, msgspec.Meta(title="Credential", extra={"widget": "credential"})] = None


class CredentialCall(NodeType):
    type_name = "test_credential_call"
    title = "Credential call (test)"
    category = "Actions"
    description = "Names a credential (tests only)."
    Config = CallConfig
    credential_types: ClassVar[tuple[str, ...]] = ("http_header", "http_bearer", "http_basic")

    async def run(self, ctx: NodeContext, config: CallConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)


@contextmanager
def registered() -> Iterator[None]:
    """``CredentialCall`` is on the app's registry (``nodes.registry``) inside the block."""
    from nodes import registry

    registry.register(CredentialCall)
    try:
        yield
    finally:
        registry.unregister(CredentialCall)


if __name__ == "__main__":  # ``python -m tests.webapp.credential_node export 3``: the CLI with the type registered
    import sys

    from nodes import registry
    from webapp.cli import main

    registry.register(CredentialCall)
    sys.exit(main(sys.argv[1:]))
