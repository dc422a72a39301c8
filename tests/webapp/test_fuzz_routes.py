"""A fuzz sweep over every route of the app: no input gives a 5xx, and nothing of someone else changes.

The routes are enumerated from the app object (``app.routes``), so a route is swept the day it is
added. For each route and method, as a logged-in user and as nobody, Hypothesis draws path parameters
(real ids, ids beyond 64 bits, negative, non-numeric, odd text), query parameters, headers, content
types and bodies (forms, multipart, JSON of any shape, JSON nested past the limit, bytes that are not
UTF-8). Every answer must be below 500 and log no unhandled error; after each route the canary — another
user's workflow with nodes, a connection, a pin, a note and a finished execution — must be unchanged,
row for row. Deterministic (``derandomize=True``, no example database) and bounded (``EXAMPLES`` per
route and identity), so it runs in CI in well under two minutes.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import TestClient
from sqlalchemy import select

from engine.limits import MAX_ID
from engine.models import Base, Execution, User, Workflow
from engine.settings import load_settings
from tests.pgtools import fresh_postgres_database
from tests.webapp.conftest import LOOPBACK, Browser
from webapp.app import create_app

EXAMPLES = {"sqlite": 6, "postgres": 3}
"""Examples per route, method and identity: the sweep's budget (about 1,500 requests on SQLite, 750 on
PostgreSQL, where the routing layer's answers are the same and the database's own refusals differ)."""
# Hypothesis keeps caches beside the examples database (``.hypothesis/constants``): out of the work tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "patchwire-hypothesis")
SWEEP = settings(derandomize=True, database=None, deadline=None,
                 suppress_health_check=list(HealthCheck), print_blob=False,
                 phases=[Phase.explicit, Phase.generate])  # no shrinking: a failure is reported as found, at once


def settings_env(root: Path, database_url: str | None = None) -> dict[str, str]:
    return {"PATCHWIRE_DATA_DIR": str(root / "data"), "DATABASE_URL": database_url or f"sqlite:///{root / 'fuzz.db'}",
            "PATCHWIRE_SECRET_KEY": "fuzz-secret-key-0123456789", "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}


@dataclass(frozen=True)
class RouteCase:
    kind: str  # "http" or "websocket"
    method: str
    path: str
    params: tuple[tuple[str, type], ...]

    def __str__(self) -> str:
        return f"{self.method} {self.path}" if self.kind == "http" else f"WS {self.path}"


def app_routes(app: Litestar) -> list[RouteCase]:
    """Every (method, path) of the app, and every WebSocket path, with its path parameters' types."""
    cases = []
    for route in app.routes:
        params = tuple((name, p.type) for name, p in route.path_parameters.items())
        if isinstance(route, HTTPRoute):
            cases += [RouteCase("http", method, route.path, params) for method in sorted(route.methods)]
        elif isinstance(route, WebSocketRoute):
            cases.append(RouteCase("websocket", "GET", route.path, params))
        else:  # a raw ASGI mount would need a sweep of its own: fail loudly rather than skip it
            cases.append(RouteCase("asgi", "GET", route.path, params))
    # sorted: Litestar's route order depends on set iteration (hash seed), and every xdist worker must collect
    # the same test ids in the same order
    return sorted(cases, key=lambda case: (case.kind, case.path, case.method))


def _enumerated() -> list[RouteCase]:
    with tempfile.TemporaryDirectory() as root:
        return app_routes(create_app(load_settings(settings_env(Path(root))), migrate=False))


ROUTES = _enumerated()
HTTP_ROUTES = [case for case in ROUTES if case.kind != "websocket"]
WS_ROUTES = [case for case in ROUTES if case.kind == "websocket"]


# --- the world the sweep runs in ----------------------------------------------------------------------

@dataclass
class World:
    client: TestClient[Any]
    examples: int
    canary_owner: int
    canary: int
    canary_nodes: list[str]
    canary_execution: int
    fuzzer: Browser
    spare_sessions: list[httpx.Cookies]
    own: dict[str, Any] = field(default_factory=dict)
    errors: list[logging.LogRecord] = field(default_factory=list)

    def call(self, fn: Any) -> Any:
        async def run() -> Any:
            async with self.client.app.state.runtime.sessions() as db:
                return await fn(db)
        return self.client.blocking_portal.call(run)


class _Errors(logging.Handler):
    """The web layer's errors (``unhandled error on …``): a 500 that some path turned into something else."""

    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def build_canvas(browser: Browser, name: str) -> tuple[int, list[str]]:
    wid = browser.create_workflow(name)
    trigger = browser.add_node(wid, "manual_trigger", 10, 10)
    step = browser.add_node(wid, "set", 200, 10)
    assert browser.connect(wid, trigger, step).status_code == 201
    assert browser.configure(wid, step, {"name": "Step", "fields.name": ["x"], "fields.value": ["1"]}).status_code == 200
    return wid, [trigger, step]


def run_to_end(browser: Browser, wid: int) -> int:
    response = browser.post(f"/workflows/{wid}/run")
    execution_id = int(re.search(r"/executions/(\d+)", response.text).group(1))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    return execution_id


@contextmanager
def fresh_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` for SQLite (a file in the data directory), else a new PostgreSQL database, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server_url"), "pw_fuzz") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fuzz")
    with fresh_database(request) as database_url, \
            TestClient(app=create_app(load_settings(settings_env(root, database_url)))) as client:
        owner = Browser(client)
        owner.register("canary@example.com")
        canary, nodes = build_canvas(owner, "Canary")
        execution = run_to_end(owner, canary)
        assert owner.post(f"/workflows/{canary}/nodes/{nodes[0]}/pin", {"data": '{"main": [{"pinned": 1}]}'}).status_code == 200
        assert owner.post(f"/workflows/{canary}/notes/", {"text": "canary note"}).status_code < 400
        fuzzer = Browser(client)
        fuzzer.register("fuzzer@example.com")
        spares = []
        for _ in range(3):  # sessions of the same user, for when a swept request ends the current one (logout)
            spare = Browser(client)
            spare.post("/login", {"email": "fuzzer@example.com", "password": "correct horse battery"}, htmx=False)
            spares.append(spare.cookies)
        owner_id = int(next(iter(_ids(client, select(User.id).where(User.email == "canary@example.com")))))
        errors: list[logging.LogRecord] = []
        handler = _Errors(errors)
        web_log = logging.getLogger("patchwire.web")
        web_log.addHandler(handler)
        try:
            yield World(client, EXAMPLES[request.param], owner_id, canary, nodes, execution, fuzzer, spares, errors=errors)
        finally:
            web_log.removeHandler(handler)


def _ids(client: TestClient[Any], statement: Any) -> list[Any]:
    async def run() -> list[Any]:
        async with client.app.state.runtime.sessions() as db:
            return list(await db.scalars(statement))
    return client.blocking_portal.call(run)


def canary_rows(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the canary: its workflow and owner, and each table's rows that belong to them."""
    async def dump(db: Any) -> dict[str, list[tuple[Any, ...]]]:
        executions = list(await db.scalars(select(Execution.id).where(Execution.workflow_id == world.canary)))
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in Base.metadata.sorted_tables:
            columns = table.c
            if table.name == "users":
                where = columns.id == world.canary_owner
            elif table.name == "workflows":
                where = columns.owner_id == world.canary_owner
            elif "workflow_id" in columns:
                where = columns.workflow_id == world.canary
            elif "execution_id" in columns:
                where = columns.execution_id.in_(executions)
            else:
                continue  # sessions, queue and worker tables: not the canary's data
            result = await db.execute(select(table).where(where).order_by(*table.primary_key.columns))
            rows[table.name] = [tuple(row) for row in result]
        return rows
    return world.call(dump)


def ensure_fuzzer(world: World) -> None:
    """The swept user is logged in (a swept logout or register ends the session: take a spare one) and
    has a workflow of its own with nodes, a connection and an execution to aim at."""
    page = world.fuzzer.get("/workflows/", follow_redirects=False)
    if page.status_code != 200 or "fuzzer@example.com" not in page.text:
        assert world.spare_sessions, "the sweep ran out of spare sessions"
        world.fuzzer.cookies = world.spare_sessions.pop()
    async def alive(db: Any) -> bool:
        own = world.own
        return bool(own) and await db.get(Workflow, own["workflow"]) is not None
    if not world.call(alive):
        wid, nodes = build_canvas(world.fuzzer, "Own")
        world.own = {"workflow": wid, "nodes": nodes, "execution": run_to_end(world.fuzzer, wid)}


# --- what is drawn --------------------------------------------------------------------------------------

ODD_TEXT = ["", " ", "0", "-1", "1e3", "0x10", "+1", "١", "9" * 30, "9" * 5000, "%00", "..", "../..", "a/b",
            "{{7*7}}", "<script>", "null", "🙂", "\x00", "true"]
FIELD_NAMES = ["name", "type", "x", "y", "version", "data", "document", "format", "source", "target", "source_port",
               "target_port", "text", "width", "height", "ids", "execution_id", "email", "password", "dx", "dy",
               "attach", "workflow_id", "error_workflow_id", "execution_timeout", "url", "fields.name",
               "fields.value", "from", "mode", "_csrf_token", "next", "breaker.enabled", "retry.max_attempts"]
QUERY_NAMES = ["next", "node", "attempt", "version", "after", "before", "status", "workflow", "trigger", "q", "since",
               "until", "range", "_field", "restored", "kept", "days", "name", "part"]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=fuzz",
                 "multipart/form-data", "text/plain", "application/xml", "application/json; charset=latin-1",
                 "application/x-www-form-urlencoded; charset=utf-16", "application/problem+json", "", "garbage",
                 "application/octet-stream"]
ACCEPTS = ["application/json", "text/html", "*/*", "application/problem+json", "nonsense"]


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**80, max_value=2**80),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
big_ints = st.one_of(st.sampled_from([0, -1, MAX_ID, MAX_ID + 1, 2**64, 10**30, -(2**63) - 1]),
                     st.integers(min_value=-2**70, max_value=2**70))


def _field_values(world: World) -> st.SearchStrategy[str]:
    own = world.own
    ids = [str(world.canary), str(own["workflow"]), *world.canary_nodes, *own["nodes"]]
    return st.one_of(st.sampled_from(ids + ODD_TEXT), big_ints.map(str), st.text(max_size=30),
                     json_values.map(json.dumps), st.sampled_from([deep_json(1000), deep_json(65)]),
                     st.sampled_from(['{"main": [{"a": 1}]}', '{"positions": []}']))


def _path_value(data: st.DataObject, world: World, name: str, kind: type) -> str:
    own = world.own
    if kind is int:
        known = {"workflow_id": [world.canary, own["workflow"]],
                 "execution_id": [world.canary_execution, own["execution"]]}.get(name, [1, 2])
        value = data.draw(st.one_of(st.sampled_from(known), big_ints, st.sampled_from(ODD_TEXT)), label=name)
    else:
        value = data.draw(st.one_of(st.sampled_from([*world.canary_nodes, *own["nodes"], "output", "input",
                                                     "vendor/htmx.min.js", "css/app.css"]),
                                    st.sampled_from(ODD_TEXT), st.text(max_size=30)), label=name)
    return quote(str(value), safe="")


def _body(data: st.DataObject, world: World) -> tuple[bytes | None, str | None]:
    values = _field_values(world)
    form = st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=5)
    kind = data.draw(st.sampled_from(["none", "form", "multipart", "json", "json-shaped", "deep", "bytes"]),
                     label="body")
    if kind == "none":
        return None, None
    if kind == "form":
        return urlencode(data.draw(form, label="form")).encode(), "application/x-www-form-urlencoded"
    if kind == "multipart":
        parts = data.draw(form, label="multipart")
        raw = b"".join(b'--fuzz\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n'
                       + data.draw(st.one_of(st.just(v.encode()), st.binary(max_size=8)), label=k) + b"\r\n"
                       for k, v in parts.items()) + b"--fuzz--\r\n"
        return raw, "multipart/form-data; boundary=fuzz"
    if kind == "json":
        return json.dumps(data.draw(json_values, label="json")).encode(), "application/json"
    if kind == "json-shaped":
        node = data.draw(values, label="node")
        shaped = data.draw(st.sampled_from([
            {"positions": [{"node": node, "x": 1, "y": 2, "version": 2**64}]},
            {"nodes": [node], "versions": {node: -1}}, {"positions": [{"node": node, "x": 1e308, "y": -1e308}]},
            {"nodes": []}, {"positions": None}, [node]]), label="shaped")
        return json.dumps(shaped).encode(), "application/json"
    if kind == "deep":
        return deep_json(data.draw(st.sampled_from([65, 1000, 10_000]), label="depth")).encode(), "application/json"
    return data.draw(st.binary(max_size=64), label="bytes") + b"\xff", None


def _request(data: st.DataObject, world: World, case: RouteCase) -> tuple[str, dict[str, str], bytes | None]:
    path = case.path
    for name, kind in case.params:
        path = re.sub(r"\{" + name + r":[a-z]+\}", _path_value(data, world, name, kind), path)
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_NAMES), _field_values(world), max_size=3), label="query")
    url = path + (f"?{urlencode(query)}" if query else "")
    body, natural_type = _body(data, world)
    headers = {"accept": data.draw(st.sampled_from(ACCEPTS), label="accept")}
    if data.draw(st.booleans(), label="htmx"):
        headers["hx-request"] = "true"
    content_type = data.draw(st.sampled_from([natural_type, *CONTENT_TYPES]), label="content-type")
    if content_type:
        headers["content-type"] = content_type
    if data.draw(st.booleans(), label="encoding"):
        headers["content-encoding"] = data.draw(st.sampled_from(["gzip", "br", "identity", "x-unknown"]))
    return url, headers, body


# --- the sweep ------------------------------------------------------------------------------------------

def test_the_sweep_covers_every_route_of_the_app(tmp_path: Path) -> None:
    app = create_app(load_settings(settings_env(tmp_path)), migrate=False)
    swept = {(c.method, c.path) for c in ROUTES}
    assert swept == {(m, r.path) for r in app.routes for m in (sorted(r.methods) if isinstance(r, HTTPRoute) else ["GET"])}
    assert len(HTTP_ROUTES) > 100 and WS_ROUTES and not [c for c in ROUTES if c.kind == "asgi"]


@pytest.mark.parametrize("identity", ["user", "nobody"])
@pytest.mark.parametrize("case", HTTP_ROUTES, ids=str)
def test_no_request_to_any_route_is_a_server_error(world: World, case: RouteCase, identity: str) -> None:
    ensure_fuzzer(world)
    before = canary_rows(world)
    nobody = Browser(world.client)
    world.errors.clear()

    @settings(SWEEP, max_examples=world.examples)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        who = world.fuzzer if identity == "user" else nobody
        url, headers, body = _request(data, world, case)
        csrf = {"x-csrftoken": who.csrf} if data.draw(st.booleans(), label="csrf") or identity == "user" else {}
        response = _send(who, case.method, url, {**csrf, **headers}, body)
        assert response.status_code < 500, (case, url, headers, body and body[:200], response.text[:500])
        if response.status_code in (413, 415) and headers["accept"] == "application/json":
            assert response.headers["content-type"].startswith("application/problem+json"), (url, response.text[:200])
        if response.headers.get("content-type", "").startswith("application/problem+json") and case.method != "HEAD":
            assert response.json()["status"] == response.status_code
        assert not world.errors, [r.getMessage() for r in world.errors]

    sweep()
    assert canary_rows(world) == before


def _send(who: Browser, method: str, url: str, headers: dict[str, str], body: bytes | None) -> httpx.Response:
    who.client.cookies = who.cookies
    try:
        return who.client.request(method, url, headers=headers, content=body, follow_redirects=False)
    finally:
        who.cookies = httpx.Cookies(who.client.cookies)


@pytest.mark.parametrize("identity", ["user", "nobody"])
@pytest.mark.parametrize("case", WS_ROUTES, ids=str)
def test_no_websocket_connection_is_a_server_error(world: World, case: RouteCase, identity: str) -> None:
    ensure_fuzzer(world)
    before = canary_rows(world)
    world.errors.clear()

    @settings(SWEEP, max_examples=world.examples)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        url, _, _ = _request(data, world, case)
        origin = data.draw(st.sampled_from(["http://testserver.local", "http://evil.example", "null", "", None]))
        who = world.fuzzer if identity == "user" else Browser(world.client)
        who.client.cookies = who.cookies
        try:
            with who.client.websocket_connect(url, headers={"origin": origin} if origin is not None else {}):
                pass  # accepted: the stream is fine; leaving closes it
        except WebSocketDisconnect as exc:
            assert exc.code not in (1011, 4500), (url, origin, exc.code, exc.detail)
        assert not world.errors, [r.getMessage() for r in world.errors]

    sweep()
    assert canary_rows(world) == before
