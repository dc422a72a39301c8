"""Execution changes: one compact, owner-scoped record per commit of a run (engine/changes.py)."""

from __future__ import annotations

from typing import Any

import httpx

from engine.changes import EXECUTIONS_CHANNEL, ExecutionChange
from engine.events import MemorySink
from engine.graph import Graph
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from tests.engine.test_runner import edge, node, registry


async def run_owned(graph: Graph, **kw: Any) -> tuple[Any, MemorySink]:
    store, sink = MemoryRunStore(), MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(7, 3, graph, registry, store, sink, http, owner_id=42, started_at=1000.0, **kw))
    return outcome, sink


async def test_each_commit_publishes_one_change_after_its_events() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("p", "probe"), node("q", "probe")],
                  connections=[edge("t", "p"), edge("p", "q")])
    _, sink = await run_owned(graph, announce={"workflow_name": "Flow", "trigger": "manual", "created_at": 999.0})
    changes: list[ExecutionChange] = sink.changes
    assert changes and all(c.owner_id == 42 and c.execution_id == 7 and c.workflow_id == 3 for c in changes)
    assert all(c.channel == EXECUTIONS_CHANNEL for c in changes)
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and seqs[-1] == sink.events[-1].seq, "each covers its commit's last event"
    assert changes[0].workflow_name == "Flow" and changes[1].workflow_name is None, "the fixed part goes once"
    assert {"p", "q"} <= {c.node for c in changes}, "the node running at each commit"
    final = changes[-1]
    assert final.status == "succeeded" and final.finished_at and final.started_at == 1000.0 and final.node is None
    assert ExecutionChange.from_json(final.to_json()) == final


async def test_the_final_change_names_the_failed_node() -> None:
    graph = Graph(nodes=[node("t", "manual_trigger"), node("x", "boom")], connections=[edge("t", "x")])
    _, sink = await run_owned(graph)
    final = sink.changes[-1]
    assert final.status == "failed" and final.failed_node == "x" and final.error == "kaboom"


async def test_a_run_without_an_owner_publishes_no_change() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    graph = Graph(nodes=[node("t", "manual_trigger")], connections=[])
    async with httpx.AsyncClient() as http:
        await execute(Run(1, 1, graph, registry, store, sink, http))
    assert sink.events and not sink.changes
