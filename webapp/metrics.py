"""``GET /metrics``: Litestar's Prometheus plugin, plus gauges read when Prometheus scrapes.

What this process shows (docs/operations.md):

* the plugin's HTTP metrics (``patchwire_http_*``, paths grouped by route template);
* gauges that do not depend on which process runs the work, read at scrape time: the queue's jobs by
  state and the live workers (SAQ's ``queue.info()``), and the unfinished executions by status (one
  ``GROUP BY`` over the status index, limited to queued / running / waiting — never the whole history);
* on the embedded profile, the in-process worker's counters and histograms (engine/metrics.py). With
  separate workers each ``patchwire worker`` serves its own on ``PATCHWIRE_METRICS_PORT``.

Access: ``PATCHWIRE_METRICS_TOKEN`` set → ``Authorization: Bearer <token>`` is required; unset → only
loopback clients are answered. ``PATCHWIRE_METRICS=0`` removes the endpoint. No session, no CSRF (GET).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from litestar import get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from engine import metrics
from engine.models import Execution
from webapp.runtime import Runtime

log = logging.getLogger("patchwire.metrics")
UNFINISHED = ("queued", "running", "waiting")
QUEUE_STATES = ("queued", "active", "scheduled")
SOURCE_TIMEOUT = 2.0
"""Seconds a scrape waits for the queue or the database before it reports that source as down."""


def prometheus_config() -> PrometheusConfig:
    """HTTP metrics for every route but the static files and the scrape itself; paths by template, so a
    workflow id in a URL does not make a new time series."""
    return PrometheusConfig(app_name="patchwire", prefix="patchwire_http", group_path=True,
                            exclude=["^/static/", "^/metrics$"], scopes={ScopeType.HTTP})


def metrics_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = connection.app.state.runtime.settings.metrics_token
    client = connection.client.host if connection.client else None
    if not metrics.authorized(token, connection.headers.get("authorization"), client):
        detail = ("Send the metrics token as “Authorization: Bearer …”." if token else
                  "Metrics are answered on loopback only; set PATCHWIRE_METRICS_TOKEN to scrape from elsewhere.")
        raise PermissionDeniedException(detail)


class MetricsController(PrometheusController):
    path = "/metrics"

    @get(guards=[metrics_guard], exclude_from_auth=True, include_in_schema=False)
    async def get(self, runtime: NamedDependency[Runtime]) -> Response[bytes]:
        families = await scrape_time_gauges(runtime)
        body = generate_latest(REGISTRY) + generate_latest(_Families(families))  # type: ignore[arg-type]
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})  # as the plugin's own handler


class _Families:
    """What ``generate_latest`` needs of a registry: ``collect()``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


async def scrape_time_gauges(runtime: Runtime) -> list[Metric]:
    up = GaugeMetricFamily("patchwire_metrics_source_up", "Whether the scrape could read the source (1) or not (0).",
                           labels=["source"])
    queue_jobs = GaugeMetricFamily("patchwire_queue_jobs", "Jobs in the queue by state.", labels=["state"])
    workers = GaugeMetricFamily("patchwire_workers", "Workers that reported to the queue recently.")
    executions = GaugeMetricFamily("patchwire_executions", "Unfinished executions by status.", labels=["status"])
    info, counts = await asyncio.gather(_read("queue", runtime.queue.info()), _read("database", _unfinished(runtime)))
    up.add_metric(["queue"], info is not None)
    up.add_metric(["database"], counts is not None)
    families: list[Metric] = [up]
    if info is not None:
        for state in QUEUE_STATES:
            queue_jobs.add_metric([state], info.get(state) or 0)
        workers.add_metric([], len(info.get("workers") or {}))
        families += [queue_jobs, workers]
    if counts is not None:
        for status in UNFINISHED:
            executions.add_metric([status], counts.get(status, 0))
        families.append(executions)
    return families


async def _read(source: str, awaitable: Any) -> Any:
    try:
        async with asyncio.timeout(SOURCE_TIMEOUT):
            return await awaitable
    except Exception:  # the scrape still answers; the source's up gauge says what is missing
        log.warning("metrics: could not read the %s", source, exc_info=True)
        return None


async def _unfinished(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(Execution.status, func.count()).where(Execution.status.in_(UNFINISHED))
                                     .group_by(Execution.status))
        return {status: int(count) for status, count in rows.all()}
