"""Run a ``patchwire`` command (``serve``, ``worker``) with a CPU-time cProfile that is switched on and off by
signals, so that a benchmark profiles only its measured run (not start-up, not the warm-up):

    python bench/cpu_profiled.py OUT.prof serve --port 8000     # then: kill -USR1 <pid>  …  kill -USR2 <pid>

SIGUSR1 starts profiling the main thread (the event loop), SIGUSR2 stops it and writes OUT.prof. The timer is
``time.thread_time``: the CPU time of the event loop's thread, so time spent waiting (for the database, for the
other processes on a loaded machine) is not counted — what is left is what the process spends its core on.
bench/webhook.py uses it with ``--cpu-profile DIR``; read the file with bench/profile_summary.py.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    profiler = cProfile.Profile(time.thread_time)

    def start(*_: object) -> None:
        profiler.enable()

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from webapp.cli import main as patchwire

    return patchwire(argv)


if __name__ == "__main__":
    raise SystemExit(main())
