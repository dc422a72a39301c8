"""Summarise a cProfile stats file by package: where the CPU (tottime) went.

    .venv/bin/python bench/profile_summary.py FILE.prof [--top 25]

Idle time (the event loop's ``epoll.poll``) is reported separately and left out of the shares.
Coroutine ``cumtime`` in cProfile includes time suspended in ``await``, so only ``tottime`` is used.
"""

from __future__ import annotations

import argparse
import pstats
import re
from collections import defaultdict

GROUPS = [
    ("idle: epoll.poll", re.compile(r"method 'poll' of 'select\.epoll'")),
    ("sqlalchemy", re.compile(r"site-packages/sqlalchemy/")),
    ("greenlet (sqlalchemy async bridge)", re.compile(r"greenlet")),
    ("asyncpg", re.compile(r"site-packages/asyncpg/")),
    ("aiosqlite", re.compile(r"site-packages/aiosqlite/")),
    ("sqlite3 (C, main thread)", re.compile(r"sqlite3|_sqlite3")),
    ("redis-py", re.compile(r"site-packages/redis/")),
    ("psycopg", re.compile(r"site-packages/psycopg")),
    ("saq", re.compile(r"site-packages/saq/")),
    ("engine/queue/sqlite.py", re.compile(r"engine/queue/")),
    ("engine (patchwire)", re.compile(r"/engine/")),
    ("webapp (patchwire)", re.compile(r"/webapp/")),
    ("nodes (patchwire)", re.compile(r"/nodes/")),
    ("jinja2", re.compile(r"site-packages/jinja2/")),
    ("msgspec", re.compile(r"msgspec")),
    ("typing (get_type_hints / ForwardRef)", re.compile(r"typing\.py|builtins\.compile")),
    ("logging", re.compile(r"logging/")),
    ("json", re.compile(r"json/")),
    ("asyncio + selectors", re.compile(r"asyncio/|selectors\.py|_contextvars|_asyncio")),
    ("sockets (send/recv)", re.compile(r"_socket\.socket")),
    ("threading / queue (thread hand-off)", re.compile(r"threading\.py|queue\.py|_queue\.|_thread")),
    ("uuid / datetime / time", re.compile(r"uuid|datetime|time\.")),
]


def group_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[2]}"
    for name, pattern in GROUPS:
        if pattern.search(text):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stats = pstats.Stats(args.file).stats  # type: ignore[attr-defined]
    by_group: dict[str, float] = defaultdict(float)
    functions = []
    for key, (_cc, ncalls, tottime, _cumtime, _callers) in stats.items():
        by_group[group_of(key)] += tottime
        functions.append((tottime, ncalls, key))
    idle = by_group.pop("idle: epoll.poll", 0.0)
    busy = sum(by_group.values())
    print(f"{args.file}: busy {busy:.2f} s (tottime), idle in epoll {idle:.2f} s\n")
    for name, seconds in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"{seconds:8.3f} s  {seconds / busy * 100:5.1f} %  {name}")
    print(f"\ntop {args.top} functions by tottime:")
    for tottime, ncalls, key in sorted(functions, reverse=True)[: args.top]:
        print(f"{tottime:8.3f} s {ncalls:9d}  {key[0].split('site-packages/')[-1]}:{key[1]}({key[2]})")


if __name__ == "__main__":
    main()
