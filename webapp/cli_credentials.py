"""``patchwire credentials …``: the key commands (docs/credentials.md, "Keys").

    patchwire credentials generate-key [--id ID]   print a new key entry (for PATCHWIRE_CREDENTIALS_KEY)
    patchwire credentials rotate-key [--drop-old]  reseal every credential with the current key
    patchwire credentials verify                   check that the keys open the stored credentials

``rotate-key`` with the key file prepends a new key to it first; with ``PATCHWIRE_CREDENTIALS_KEY`` the new key
is the setting's first entry (put it there, on every process, before). It runs online, beside serving
processes: one row per short transaction, compare-and-set on each row's revision.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine import eventloop
from engine.credentials.keys import new_key, new_key_entry, write_key_file
from engine.credentials.rotation import drop_old_keys, keys_in_use, rotate_keys, verify_keyring
from engine.credentials.sealing import Key, KeyRing
from engine.errors import CredentialKeyError
from engine.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    credentials = sub.add_parser("credentials", help="credential keys: generate, rotate, verify")
    cred_sub = credentials.add_subparsers(dest="credentials_command", required=True, metavar="SUBCOMMAND")
    generate = cred_sub.add_parser("generate-key", help="print a new key entry id:base64url (nothing is stored)")
    generate.add_argument("--id", help="the key id (default k<yyyymmddHHMMSS>)")
    rotate = cred_sub.add_parser("rotate-key", help="reseal every credential with a new (or the first) key")
    rotate.add_argument("--drop-old", action="store_true",
                        help="then remove the other keys (refused while a credential still uses one)")
    cred_sub.add_parser("verify", help="check that the keys open the stored credentials (exit 1 if not)")


def generate_key(settings: Settings, args: argparse.Namespace) -> int:
    try:
        print(new_key_entry(args.id))
    except CredentialKeyError as exc:
        print(f"patchwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    async def run(sessions: Any, ring: KeyRing) -> dict[str, Any]:
        await verify_keyring(sessions, ring)  # never add a key to a ring that cannot open what is stored
        from_file = not settings.credentials_key
        if from_file:  # a new key goes first in the file; running processes pick it up (the file's stat changed)
            write_key_file(settings.credentials_key_file, (_fresh_key(ring), *ring.keys))
        resealed = await rotate_keys(sessions, ring)
        report: dict[str, Any] = {"key": ring.current.id, "resealed": resealed, "source": _source(settings)}
        if args.drop_old:
            dropped = await drop_old_keys(sessions, ring)
            report["dropped"] = list(dropped)
            if not from_file and dropped:
                report["todo"] = f"remove {', '.join(dropped)} from PATCHWIRE_CREDENTIALS_KEY on every process"
        return report

    return _with_keys(settings, run)


def verify(settings: Settings, args: argparse.Namespace) -> int:
    async def run(sessions: Any, ring: KeyRing) -> dict[str, Any]:
        await verify_keyring(sessions, ring)
        used = await keys_in_use(sessions)
        return {"ok": True, "source": _source(settings), "keys": list(ring.ids), "current": ring.current.id,
                "credentials": {key_id: count for key_id, (count, _) in sorted(used.items())}}

    return _with_keys(settings, run)


def _with_keys(settings: Settings, action: Any) -> int:
    """Migrate, load the keys, run ``action(sessions, ring)``; print its JSON report, or the key error."""

    async def call() -> dict[str, Any]:
        from engine.credentials.keys import load_keyring
        from engine.database import make_engine, make_sessionmaker
        from engine.migrate import upgrade_async

        await upgrade_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            return await action(make_sessionmaker(engine), load_keyring(settings))
        finally:
            await engine.dispose()

    try:
        report = eventloop.run(call())
    except CredentialKeyError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return EXIT_FAILED
    print(json.dumps(report))
    return 0


def _fresh_key(ring: KeyRing) -> Key:
    key, n = new_key(), 1
    while key.id in ring.ids:  # two rotations within one second
        key, n = new_key(f"{new_key().id}-{n}"), n + 1
    return key


def _source(settings: Settings) -> str:
    return "PATCHWIRE_CREDENTIALS_KEY" if settings.credentials_key else str(settings.credentials_key_file)


COMMANDS = {"credentials_generate-key": generate_key, "credentials_rotate-key": rotate_key,
            "credentials_verify": verify}
