"""What a worker counts for Prometheus: executions started and finished, node durations.

The run store calls ``observe`` with each transition once it is committed (engine/sqlstore.py), so the
counters count what is durable, once: an execution starts with its first event (``workflow.started``,
``seq`` 1 — a resumed or continued run numbers on from the stored events), it finishes with its final
state, and a node attempt's duration is observed when its ``succeeded`` / ``failed`` row is committed.
Sub-workflow executions run in their caller's job and are counted like any other.

The metrics live in their own registry, ``WORKER_REGISTRY``. ``expose`` adds it to prometheus_client's
default registry in a process that runs a worker: the web process on the embedded profile (its
``/metrics`` then shows them), and ``patchwire worker``, which serves the default registry itself on
``PATCHWIRE_METRICS_PORT`` (``serve_metrics``). A web process without a worker never shows them, so
no scrape target reports counters that stay at zero.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_wsgi_app

from engine.models import TERMINAL_STATUSES
from engine.store import Transition

WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
NODE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

EXECUTIONS_STARTED = Counter("patchwire_executions_started", "Executions that started running (first event committed).",
                             registry=WORKER_REGISTRY)
EXECUTIONS_FINISHED = Counter("patchwire_executions_finished", "Executions that ended, by final status.",
                              ["status"], registry=WORKER_REGISTRY)
EXECUTIONS_PRUNED = Counter("patchwire_executions_pruned", "Finished executions deleted by retention.",
                             registry=WORKER_REGISTRY)
NODE_DURATION = Histogram("patchwire_node_duration_seconds",
                          "Duration of node attempts (committed succeeded / failed rows), by node type and outcome.",
                          ["node_type", "status"], buckets=NODE_BUCKETS, registry=WORKER_REGISTRY)
for _status in TERMINAL_STATUSES:  # present from the first scrape, so rate() sees the first increase
    EXECUTIONS_FINISHED.labels(_status)

_OBSERVED = ("succeeded", "failed")
_nodes: dict[tuple[str, str], Any] = {}
"""Histogram children by (node type, status): ``labels()`` takes a lock and builds a key on every call."""


def observe(transition: Transition) -> None:
    """Count a committed transition (see the module docstring)."""
    for record in transition.runs:
        if record.status in _OBSERVED and record.finished_at is not None and record.started_at is not None:
            key = (record.node_type, record.status)
            child = _nodes.get(key)
            if child is None:
                child = _nodes[key] = NODE_DURATION.labels(*key)
            child.observe(max(record.finished_at - record.started_at, 0.0))
    events = transition.events
    if events and events[0].seq == 1 and events[0].type == "workflow.started":
        EXECUTIONS_STARTED.inc()
    state = transition.execution
    if state is not None and state.status in TERMINAL_STATUSES:
        EXECUTIONS_FINISHED.labels(state.status).inc()


def count_finished(status: str, count: int) -> None:
    """Executions ended outside a run (the reconciler's orphaned sub-workflows)."""
    if count:
        EXECUTIONS_FINISHED.labels(status).inc(count)


_exposed = threading.Lock()
_is_exposed = False


def expose() -> None:
    """Show the worker's metrics in this process's default registry (once)."""
    global _is_exposed
    with _exposed:
        if not _is_exposed:
            REGISTRY.register(WORKER_REGISTRY)
            _is_exposed = True


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorized(token: str, authorization: str | None, client_host: str | None) -> bool:
    """The rule both ``/metrics`` endpoints follow: with a token, ``Authorization: Bearer <token>`` from
    anywhere; without one, loopback clients only (the address of the TCP peer, never a forwarded header)."""
    if not token:
        return is_loopback(client_host)
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds are not news
        return None


def metrics_app(token: str) -> Callable[..., Iterable[bytes]]:
    """prometheus_client's WSGI app for the default registry, behind ``authorized``."""
    inner = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not authorized(token, environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"metrics need a bearer token (PATCHWIRE_METRICS_TOKEN) or a loopback client\n"]
        return inner(environ, start_response)

    return app


def serve_metrics(host: str, port: int, token: str) -> WSGIServer:
    """Serve the worker's ``/metrics`` from a daemon thread (prometheus_client's own server, plus the token)."""
    expose()
    server = make_server(host, port, metrics_app(token), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="patchwire-metrics", daemon=True).start()
    return server
