"""``patchwire worker`` with some of bench/patches.py applied — for bench/experiments.py only.

    .venv/bin/python bench/patched_worker.py --patch pool,config,store

Reads the same settings as ``patchwire worker`` (environment) and logs at INFO like it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import patches  # noqa: E402

import webapp.worker  # noqa: E402
from engine import eventloop  # noqa: E402
from engine.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patch", default="", help=f"comma-separated: {', '.join(patches.NAMES)}")
    args = parser.parse_args()
    names = [n for n in args.patch.split(",") if n]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    with patches.applied(names):
        print(f"patches: {names or 'none'}", flush=True)
        eventloop.run(webapp.worker.run_worker(settings))


if __name__ == "__main__":
    main()
