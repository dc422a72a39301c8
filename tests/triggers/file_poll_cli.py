"""``python -m tests.triggers.file_poll_cli worker|serve …``: the ``patchwire`` command with the test poll node type
(``FilePoll``) registered, for the scheduler's real-process tests (as tests/crash_node.py does for its node)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from nodes import registry
    from tests.triggers.support import FilePoll
    from webapp.cli import main

    registry.register(FilePoll)
    sys.exit(main(sys.argv[1:]))
