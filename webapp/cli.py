"""The ``patchwire`` command. Output is stable and machine-readable (JSON where it is data).

    patchwire serve [--host H] [--port P]    migrate, then serve (embedded queue: worker in-process)
    patchwire worker                         a separate worker (PostgreSQL / Redis queue profiles)
    patchwire migrate                        upgrade the database to the newest schema
    patchwire health [--workers]             check database and queue (exit 1 when unhealthy)
    patchwire createuser EMAIL [--password-stdin]
    patchwire import FILE --owner EMAIL      import a Patchwire or n8n file: print the new workflow id, the
                                             credentials it lacks and the n8n report (also listed on stderr)
    patchwire export ID                      print the workflow JSON
    patchwire run FILE_OR_ID --owner EMAIL [--input JSON] [--wait]
    patchwire prune [--days N] [--per-workflow N]   delete finished executions beyond the retention limits
    patchwire executions show ID --json
    patchwire credentials generate-key|rotate-key [--drop-old]|verify   (webapp/cli_credentials.py)
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from engine import eventloop
from engine.logs import configure_logging
from engine.settings import Settings, load_settings
from webapp import cli_credentials

EXIT_USAGE = 2
EXIT_FAILED = 1
STARTUP_REFUSED = 3  # like uvicorn's status for a server whose start-up failed (webapp/serving.py)


class CLIError(Exception):
    """A problem to report in one line on stderr, with exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patchwire", description="Self-hosted visual workflow automation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate, then run the web server (and the embedded worker)")
    serve.add_argument("--host", help="interface to bind (default PATCHWIRE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PATCHWIRE_PORT or 8000)")

    sub.add_parser("worker", help="run a worker process for the PostgreSQL or Redis queue")
    sub.add_parser("migrate", help="upgrade the database schema to the newest version")

    health = sub.add_parser("health", help="check the database and the queue; exit 1 when unhealthy")
    health.add_argument("--workers", action="store_true", help="also require at least one live worker")

    create = sub.add_parser("createuser", help="create a user account")
    create.add_argument("email")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    imp = sub.add_parser("import", help="import a workflow JSON file (Patchwire or n8n); prints the new workflow id")
    imp.add_argument("file", type=Path)
    imp.add_argument("--owner", required=True, help="email of the owning user")

    exp = sub.add_parser("export", help="print a workflow as JSON")
    exp.add_argument("id", type=int)

    run = sub.add_parser("run", help="run a workflow headless; prints the execution id")
    run.add_argument("target", help="a workflow id, or a workflow JSON file (imported first)")
    run.add_argument("--owner", help="email of the owning user (needed with a file)")
    run.add_argument("--input", default="{}", help="JSON object passed to the trigger")
    run.add_argument("--wait", action="store_true", help="wait for the end; print status and outputs as JSON")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait (default 600)")

    prune = sub.add_parser("prune", help="delete finished executions beyond the retention limits now")
    prune.add_argument("--days", type=float, help="age limit in days (default PATCHWIRE_RETENTION_DAYS; 0: none)")
    prune.add_argument("--per-workflow", type=int,
                       help="finished executions kept per workflow (default PATCHWIRE_RETENTION_PER_WORKFLOW; 0: all)")

    executions = sub.add_parser("executions", help="inspect executions")
    ex_sub = executions.add_subparsers(dest="executions_command", required=True, metavar="SUBCOMMAND")
    show = ex_sub.add_parser("show", help="show one execution")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="print as JSON (the only format for now)")
    cli_credentials.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"patchwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_format, settings.log_level)
    command = args.command
    if command in ("executions", "credentials"):
        command = f"{command}_{getattr(args, f'{command}_command')}"
    handler: Callable[[Settings, argparse.Namespace], int] = COMMANDS[command]
    try:
        return handler(settings, args)
    except CLIError as exc:
        print(f"patchwire: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.serving import serve

    serve(settings, args.host or settings.host, args.port or settings.port)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from engine.errors import CredentialKeyError
    from webapp.worker import run_worker

    if settings.embedded_queue:
        raise CLIError("QUEUE_URL is the embedded SQLite queue: `patchwire serve` runs the worker in-process. "
                       "Set QUEUE_URL=redis://… or postgresql://… for separate workers.")
    try:
        eventloop.run(run_worker(settings))
    except CredentialKeyError as exc:  # the keys cannot open the stored credentials: never start
        print(f"patchwire: cannot start: {exc}", file=sys.stderr)
        return STARTUP_REFUSED
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from engine.migrate import upgrade

    upgrade(settings.database_url)
    print(json.dumps({"migrated": True, "database": _redact(settings.database_url)}))
    return 0


def _health(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from engine.database import make_engine
    from engine.queue import queue_from_url

    async def check() -> dict[str, Any]:
        engine = make_engine(settings.database_url)
        queue = queue_from_url(settings.queue_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            await queue.connect()
            info = await queue.info()
            return {"database": "ok", "queue": queue.name, "workers": len(info.get("workers") or {})}
        finally:
            await queue.disconnect()
            await engine.dispose()

    try:
        report = eventloop.run(check())
    except Exception as exc:  # a health check reports every failure instead of raising
        print(json.dumps({"healthy": False, "error": f"{type(exc).__name__}: {exc}"}))
        return EXIT_FAILED
    healthy = not args.workers or report["workers"] > 0
    print(json.dumps({"healthy": healthy, **report}))
    return 0 if healthy else EXIT_FAILED


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _db_call(settings: Settings, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    async def call() -> Any:
        from engine.database import make_engine, make_sessionmaker
        from engine.migrate import upgrade_async

        await upgrade_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as db:
                return await fn(db, *args)
        finally:
            await engine.dispose()

    return eventloop.run(call())


def _createuser(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.accounts.services import AccountError, register

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    try:
        user = _db_call(settings, register, args.email, password)
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps({"id": user.id, "email": user.email}))
    return 0


async def _owner(db: Any, email: str | None) -> int:
    from sqlalchemy import select

    from engine.models import User
    from webapp.accounts.services import normalize_email

    if not email:
        raise CLIError("--owner EMAIL is required")
    user_id = await db.scalar(select(User.id).where(User.email == normalize_email(email)))
    if user_id is None:
        raise CLIError(f"no user {email!r} (create one with `patchwire createuser`)")
    return int(user_id)


async def _import_document(db: Any, path: Path, owner_email: str | None) -> dict[str, Any]:
    """Import a Patchwire or n8n file (detected as on the web page): the new workflow's id, the
    credential references its owner has no credential for, the format and the n8n report."""
    from engine.errors import GraphError
    from nodes import registry
    from webapp.workflows.services import WorkflowService

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None
    try:
        service = WorkflowService(db, await _owner(db, owner_email), registry)
        document, fmt, report = _read_document(data, await service.names())
        workflow, missing = await service.import_with_credentials(document)
    except GraphError as exc:
        raise CLIError(f"{path} is not a valid workflow: {exc}") from None
    return {"workflow_id": workflow.id, "missing_credentials": [m.to_dict() for m in missing], "format": fmt,
            "report": report.to_dict() if report else None, "report_lines": report.lines() if report else []}


def _read_document(data: bytes, workflows: dict[str, int]) -> tuple[Any, str, Any]:
    """(document, format, n8n report or None): an n8n export is converted first, within the engine's limits."""
    from engine.graph import MAX_DOCUMENT_BYTES, decode_document
    from engine.limits import nesting_exceeds
    from webapp.workflows import n8n

    raw: Any = None
    if len(data) <= MAX_DOCUMENT_BYTES and not nesting_exceeds(data):
        try:
            raw = json.loads(data.decode("utf-8-sig"))
        except (ValueError, RecursionError):
            raw = None  # decode_document below names the problem
    if not (n8n.looks_like_n8n(raw) and raw.get("format") is None):
        return decode_document(data), "patchwire", None
    converted, report = n8n.convert(raw, workflows=workflows)
    return decode_document(json.dumps(converted)), "n8n", report


def _import(settings: Settings, args: argparse.Namespace) -> int:
    result = _db_call(settings, _import_document, args.file, args.owner)
    for line in result.pop("report_lines"):  # readable on stderr; the JSON on stdout holds the same report
        print(f"patchwire: n8n import: {line}", file=sys.stderr)
    print(json.dumps(result))
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from engine.executions import export_document
    from engine.models import Workflow
    from nodes import registry
    from webapp.credentials.references import export_references

    async def export(db: Any) -> bytes:
        workflow = await db.get(Workflow, args.id)
        if workflow is None:
            raise CLIError(f"no workflow {args.id}")
        document = await export_references(db, workflow.owner_id, await export_document(db, workflow), registry)
        return msgspec.json.format(msgspec.json.encode(document))

    sys.stdout.write(_db_call(settings, export).decode() + "\n")
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from engine.limits import JSONLimitError, load_json
    from webapp.headless import run_headless

    try:  # the same size and depth limits as a request body (engine/limits.py)
        trigger_input = load_json(args.input, "--input")
    except JSONLimitError as exc:
        raise CLIError(str(exc)) from None
    if not isinstance(trigger_input, dict):
        raise CLIError("--input must be a JSON object")
    result = eventloop.run(run_headless(settings, args.target, args.owner, trigger_input, args.wait, args.timeout))
    print(json.dumps(result, default=str))
    return 0 if not args.wait or result["status"] == "succeeded" else EXIT_FAILED


def _prune(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engine.retention import prune

    policy = settings.retention
    if args.days is not None:
        policy = replace(policy, days=args.days)
    if args.per_workflow is not None:
        policy = replace(policy, per_workflow=args.per_workflow)
    if policy.days < 0 or policy.per_workflow < 0:
        raise CLIError("--days and --per-workflow must be 0 or more")

    async def run() -> dict[str, Any]:
        from engine.database import make_engine, make_sessionmaker
        from engine.migrate import upgrade_async

        await upgrade_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            report = await prune(make_sessionmaker(engine), policy)
        finally:
            await engine.dispose()
        return {**report.to_dict(), "days": policy.days or None, "per_workflow": policy.per_workflow or None}

    print(json.dumps(eventloop.run(run())))
    return 0


def _executions_show(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.headless import execution_json

    async def show(db: Any) -> dict[str, Any]:
        data = await execution_json(db, args.id)
        if data is None:
            raise CLIError(f"no execution {args.id}")
        return data

    print(json.dumps(_db_call(settings, show), default=str, indent=2 if not args.json else None))
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": _serve, "worker": _worker, "migrate": _migrate, "health": _health, "createuser": _createuser, "import": _import,
    "export": _export, "run": _run, "prune": _prune, "executions_show": _executions_show,
    **cli_credentials.COMMANDS,
}

