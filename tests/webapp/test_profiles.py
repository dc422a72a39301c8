"""The PostgreSQL and Redis profiles: web process + a separate worker, live events across processes.

The worker here runs on the test client's event loop but shares nothing with the web app except
the database, the queue and the channel backend — exactly what crosses process boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from engine.database import make_engine, make_sessionmaker
from engine.netguard import outbound_client, parse_networks
from engine.publisher import sink_from_url
from engine.queue import queue_from_url
from engine.settings import load_settings
from engine.worker import WorkerServices, build_worker
from nodes import registry
from tests.webapp.conftest import LOOPBACK, Browser
from tests.webapp.test_websocket import drain, slow_flow
from webapp.app import create_app

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres", pytest.param("redis", marks=pytest.mark.redis)])
def profile_env(request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path) -> dict[str, str]:
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path), "DATABASE_URL": postgres_url, "PATCHWIRE_SECRET_KEY": "k" * 32}
    if request.param == "postgres":
        env["QUEUE_URL"] = postgres_url
    else:
        env["QUEUE_URL"] = env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return env


@pytest.fixture
def split_client(profile_env: dict[str, str]) -> Iterator[TestClient[Any]]:
    settings = load_settings(profile_env)
    assert not settings.embedded_queue
    with TestClient(app=create_app(settings)) as client:
        assert client.app.state.runtime.worker is None, "no in-process worker on this profile"

        async def start_worker() -> Any:
            queue = queue_from_url(settings.queue_url)
            await queue.connect()
            http = outbound_client(parse_networks(LOOPBACK))
            sink = sink_from_url(settings.channels_url)
            engine = make_engine(settings.database_url)
            services = WorkerServices(sessions=make_sessionmaker(engine), sink=sink, registry=registry, http=http)
            worker = build_worker(queue, services, concurrency=4)
            worker.SIGNALS = []
            return worker, queue, http, sink, engine

        worker, queue, http, sink, engine = client.blocking_portal.call(start_worker)
        client.blocking_portal.start_task_soon(worker.start)
        yield client

        async def stop() -> None:
            await worker.stop()
            await queue.disconnect()
            await http.aclose()
            await sink.close()
            await engine.dispose()

        client.blocking_portal.call(stop)


def test_separate_worker_runs_and_streams_live(split_client: TestClient[Any]) -> None:
    browser = Browser(split_client)
    browser.register("profile@example.com")
    wid, _, delay = slow_flow(browser, "0.5")
    execution_id = int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{wid}/run").text).group(1))
    with browser.websocket(f"/ws/executions/{execution_id}") as ws:
        stream = "\n".join(drain(ws))
    assert f'id="status-{delay}" data-status="running"' in stream
    assert f'id="status-{delay}" data-status="succeeded"' in stream
    assert browser.wait_for_execution(execution_id) == "succeeded"


def test_separate_worker_updates_the_live_executions_table(split_client: TestClient[Any]) -> None:
    """The worker's execution changes travel in its pg_notify / Redis publish to the web process's hub."""
    from tests.webapp.test_executions_live import receive_until, row_status

    browser = Browser(split_client)
    browser.register("table@example.com")
    wid, _, _ = slow_flow(browser, "0.3")
    with browser.websocket("/ws/executions") as ws:
        ws.receive_text()
        execution_id = int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{wid}/run").text).group(1))
        stream = "\n".join(receive_until(ws, lambda text: "succeeded" in row_status(text, execution_id)))
    assert "running" in row_status(stream, execution_id) and "Wait" in stream
