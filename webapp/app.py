"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.security.session_auth import SessionAuth
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy.ext.asyncio import AsyncSession

from engine.limits import MAX_JSON_BYTES
from engine.models import User
from engine.settings import Settings, load_settings
from nodes import registry
from webapp.accounts.controllers import AccountController
from webapp.apidocs.controllers import ApiDocsController
from webapp.credentials.controllers import CredentialController
from webapp.credentials.oauth import OAUTH_ROUTES
from webapp.credentials.references import credential_types
from webapp.credentials.services import CredentialService
from webapp.dashboard.controllers import DashboardController
from webapp.errors import EXCEPTION_HANDLERS
from webapp.executions.controllers import ExecutionController, execution_stream
from webapp.executions.live import executions_changed_stream, executions_table_stream
from webapp.executions.services import ExecutionService
from webapp.metrics import MetricsController, prometheus_config
from webapp.requests import (
    SocketAwareSessionAuth,
    StrictRequest,
    check_body,
    install_socket_refusals,
    require_ids_in_range,
)
from webapp.runtime import Runtime, channels_plugin, lifespan_runtime
from webapp.sessions import RotatingSessionBackend, RotatingSessionConfig, SQLSessionStore
from webapp.templating import configure_templates
from webapp.testing.controllers import NodeTestingController, WatchController
from webapp.testing.services import TestingService
from webapp.transport import https_headers_hook
from webapp.webhooks.editor import WebhookEditorController
from webapp.webhooks.front import webhook_front
from webapp.webhooks.receive import webhook_route
from webapp.workflows.activation import ActivationController
from webapp.workflows.controllers import WorkflowController
from webapp.workflows.editing_controllers import EditingController
from webapp.workflows.node_docs import NodeDocsController
from webapp.workflows.notes import NoteController
from webapp.workflows.options import NodeOptionsController
from webapp.workflows.services import WorkflowService

ROOT = Path(__file__).resolve().parents[1]
# Litestar matches these as regular expressions anywhere in the path: anchor them.
PUBLIC_PATHS = ["^/login$", "^/register$", "^/static/", "^/healthz$"]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


async def retrieve_user(session: dict[str, Any], connection: ASGIConnection[Any, Any, Any, Any]) -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    async with connection.app.state.runtime.sessions() as db:
        return await db.get(User, user_id)


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    async with state.runtime.sessions() as session:
        yield session


def provide_runtime(state: State) -> Runtime:
    return state.runtime


def provide_workflows(request: Request[User, Any, Any], db: NamedDependency[AsyncSession]) -> WorkflowService:
    return WorkflowService(db, request.user.id, registry)


def provide_credentials(request: Request[User, Any, Any], db: NamedDependency[AsyncSession],
                        runtime: NamedDependency[Runtime]) -> CredentialService:
    return CredentialService(db, request.user.id, runtime.keyring, credential_types())


def provide_testing(workflows: NamedDependency[WorkflowService], state: State) -> TestingService:
    return TestingService(workflows, preview_seconds=state.runtime.settings.preview_seconds)


def provide_executions(request: Request[User, Any, Any], db: NamedDependency[AsyncSession]) -> ExecutionService:
    return ExecutionService(db, request.user.id)


@get("/healthz", exclude_from_auth=True, sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Litestar:
    settings = settings or load_settings()
    channels = channels_plugin(settings)
    opened: dict[str, Runtime] = {}
    store = SQLSessionStore(lambda: opened["runtime"].sessions)
    session_auth = SessionAuth[User, RotatingSessionBackend](
        retrieve_user_handler=retrieve_user,
        session_backend_config=RotatingSessionConfig(
            secure=settings.secure_cookies, samesite="lax", httponly=True, max_age=14 * 24 * 3600),
        exclude=PUBLIC_PATHS + (["^/metrics$"] if settings.metrics_enabled else []),
    )
    session_auth.authentication_middleware_class = SocketAwareSessionAuth  # a WebSocket without a session: 4401
    observability: list[Any] = [MetricsController] if settings.metrics_enabled else []

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with lifespan_runtime(settings, channels, migrate=migrate) as runtime:
            app.state.runtime = opened["runtime"] = runtime
            yield

    app = Litestar(
        route_handlers=[
            healthz, DashboardController, AccountController, WorkflowController, ActivationController, NoteController, EditingController, NodeTestingController, ExecutionController, execution_stream,
            WatchController, WebhookEditorController,
            NodeOptionsController, NodeDocsController,
            CredentialController, ApiDocsController,
            webhook_route(settings.webhook_max_body),
            executions_table_stream, executions_changed_stream, *OAUTH_ROUTES,
            create_static_files_router(path="/static", directories=[ROOT / "static"], name="static"), *observability,
        ],
        middleware=[prometheus_config().middleware] if settings.metrics_enabled else [],
        dependencies={
            "db": Provide(provide_db),
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "workflows": Provide(provide_workflows, sync_to_thread=False),
            "executions": Provide(provide_executions, sync_to_thread=False),
            "testing": Provide(provide_testing, sync_to_thread=False),
            "credentials": Provide(provide_credentials, sync_to_thread=False),
        },
        plugins=[channels],
        stores={"sessions": store},
        on_app_init=[session_auth.on_app_init],
        csrf_config=CSRFConfig(secret=settings.secret_key, cookie_secure=settings.secure_cookies,
                               header_name="x-csrftoken", cookie_samesite="lax"),
        template_config=TemplateConfig(directory=ROOT / "templates", engine=JinjaTemplateEngine,
                                       engine_callback=configure_templates),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        before_send=[_add_security_headers, https_headers_hook(settings)],
        # The request-parsing layer (webapp/requests.py): ids in range, bodies of the right type within the limits.
        guards=[require_ids_in_range],
        before_request=check_body,
        request_class=StrictRequest,
        request_max_body_size=MAX_JSON_BYTES,
        # No generated OpenAPI schema or docs pages (/schema …): Litestar's would list the internal page routes, and
        # its UI loads scripts from a CDN that the CSP blocks. The public API's document is written by hand and served
        # with a vendored viewer at /api/openapi.json and /api/docs (webapp/apidocs/, docs/api.md).
        openapi_config=None,
        logging_config=None,  # the CLI configures logging (engine/logs.py: JSON off a terminal); Litestar's own would replace it
        debug=False,
    )
    metrics = prometheus_config().middleware if settings.metrics_enabled else None
    return install_socket_refusals(app, lambda inner: webhook_front(app, inner, metrics=metrics))


async def _add_security_headers(message: Any, scope: Any) -> None:
    if message["type"] == "http.response.start":
        headers = message.setdefault("headers", [])
        headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
