"""engine/gctune.py: after startup, what is alive is frozen out of the collector's scans. Run in a child
process: freezing changes the whole interpreter, and this test process starts and drops many apps."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json
gc.disable()                                       # nothing is collected unless asked (freeze_startup asks)
from engine.gctune import freeze_startup
survivor = [{"n": i} for i in range(1000)]        # long-lived: frozen
import weakref
class Node:
    pass
garbage = Node()
garbage.self = garbage                             # a cycle left by startup: collected, not frozen
left_behind = weakref.ref(garbage)
del garbage
before = gc.get_freeze_count()
frozen = freeze_startup()
later = []
later.append(later)                                # made after startup: still collected as before
del later
collected = gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "count": gc.get_freeze_count(),
                  "threshold": list(gc.get_threshold()), "collected_later": collected,
                  "survivor_frozen": not any(o is survivor for o in gc.get_objects()),
                  "startup_garbage_collected": left_behind() is None}))
"""


def test_freeze_startup_freezes_what_is_alive_and_keeps_collecting_what_comes_later() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["before"] == 0
    assert result["frozen"] == result["count"] > 1000
    assert result["survivor_frozen"]  # frozen objects are no longer among the collector's objects
    assert result["collected_later"] >= 1  # the cycle made after the freeze was collected
    assert result["startup_garbage_collected"]  # what startup left was collected before the freeze
    assert result["threshold"] == [700, 10, 10]  # CPython's: shorter pauses than a higher young threshold
