"""The worker's periodic prune pass, in the web process of the embedded profile, on real executions."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from engine.models import Execution, NodeRun
from tests.webapp.conftest import Browser
from tests.webapp.test_metrics import TOKEN, make_client, one_node_flow, scrape, value
from tests.webapp.test_runs import run


def test_the_worker_prunes_beyond_the_per_workflow_limit(database_url: str, tmp_path: Path) -> None:
    env = {"PATCHWIRE_RETENTION_PER_WORKFLOW": "1", "PATCHWIRE_RETENTION_EVERY": "0.2", "PATCHWIRE_METRICS_TOKEN": TOKEN}
    with make_client(database_url, tmp_path, **env) as client:
        pruned_before = value(scrape(client), "patchwire_executions_pruned_total")
        alice, bob = Browser(client), Browser(client)
        alice.register("alice-retention@example.com")
        bob.register("bob-retention@example.com")
        bobs = run(bob, one_node_flow(bob, "Bob's", "{{ 2 }}"))
        assert bob.wait_for_execution(bobs) == "succeeded"
        flow = one_node_flow(alice, "Alice's", "{{ 1 }}")
        alices = []
        for _ in range(3):
            execution_id = run(alice, flow)
            assert alice.wait_for_execution(execution_id) == "succeeded"
            alices.append(execution_id)

        def stored() -> tuple[set[int], set[int]]:
            async def read() -> tuple[set[int], set[int]]:
                async with client.app.state.runtime.sessions() as db:
                    executions = set(await db.scalars(select(Execution.id)))
                    with_runs = set(await db.scalars(select(NodeRun.execution_id).distinct()))
                    return executions, with_runs
            return client.blocking_portal.call(read)

        deadline = time.monotonic() + 15
        while stored()[0] & set(alices[:2]) and time.monotonic() < deadline:
            time.sleep(0.05)
        executions, with_runs = stored()
        assert alices[-1] in executions and not executions & set(alices[:2]), executions
        assert not with_runs & set(alices[:2])
        assert executions == {alices[-1], bobs}  # Alice's newest, and Bob's only one (his own workflow)
        assert alice.get(f"/executions/{alices[0]}").status_code == 404
        assert alice.get(f"/executions/{alices[-1]}").status_code == 200
        assert value(scrape(client), "patchwire_executions_pruned_total") - pruned_before == 2
