"""Pipelined step commits: a pure node may begin while the commit of its start is in flight; nothing
it produces is stored or published before that commit, and a node with effects never starts before
the commit that records its start and its predecessors' results (engine/README.md)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx
import pytest

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore, Transition
from nodes import NODE_TYPES


class SlowStore(MemoryRunStore):
    """Commits take ``delay`` seconds (a database round trip); records what each commit held."""

    def __init__(self, delay: float = 0.05, fail_when: str | None = None) -> None:
        super().__init__()
        self.delay, self.fail_when = delay, fail_when
        self.log: list[list[tuple[str, str]]] = []
        self.in_flight = 0

    async def commit(self, execution_id: int, transition: Transition) -> bool:
        rows = [(r.node_id, r.status) for r in transition.runs]
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
            if self.fail_when is not None and (self.fail_when, "running") in rows:
                raise ConnectionError("the database went away")
            self.log.append(rows)
            return await super().commit(execution_id, transition)
        finally:
            self.in_flight -= 1

    def committed(self, node_id: str, status: str) -> bool:
        return any((node_id, status) in rows for rows in self.log)


class Seen:
    """What the node saw of the store the moment its code began."""

    store: ClassVar[SlowStore]
    starts: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def record(cls, ctx: NodeContext) -> None:
        pred = {"a": "t", "e": "a", "p1": "t", "p2": "p1"}.get(ctx.node_id)
        cls.starts[ctx.node_id] = {
            "own_start_committed": cls.store.committed(ctx.node_id, "running"),
            "predecessor_committed": pred is None or cls.store.committed(pred, "succeeded"),
            "commits_in_flight": cls.store.in_flight,
        }


class PureStep(NodeType):
    type_name = "pure_step"
    title = "Pure step"
    pure = True

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        Seen.record(ctx)
        return NodeResult.main(items)


class EffectStep(NodeType):
    type_name = "effect_step"
    title = "Effect step"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        Seen.record(ctx)
        return NodeResult.main(items)


registry = Registry([*NODE_TYPES, PureStep, EffectStep])


def chain(*steps: tuple[str, str, dict[str, Any]]) -> Graph:
    nodes = [NodeSpec(id="t", type="manual_trigger", name="t")]
    nodes += [NodeSpec(id=i, type=t, name=i, config=c) for i, t, c in steps]
    ids = [n.id for n in nodes]
    return Graph(nodes=nodes, connections=[ConnectionSpec(source=a, target=b) for a, b in zip(ids, ids[1:], strict=False)])


async def run_with(store: SlowStore, graph: Graph) -> tuple[Any, MemorySink]:
    Seen.store, Seen.starts = store, {}
    sink = MemorySink()
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, sink, http))
    return outcome, sink


async def test_a_pure_node_overlaps_the_commit_of_its_start_and_its_result_is_never_committed_before_it() -> None:
    store = SlowStore()
    outcome, sink = await run_with(store, chain(("a", "pure_step", {}), ("e", "effect_step", {})))
    assert outcome.status == "succeeded"
    assert Seen.starts["a"]["own_start_committed"] is False, "the pure node began during its start's commit"
    order = [row for rows in store.log for row in rows]
    assert order.index(("a", "running")) < order.index(("a", "succeeded"))
    assert order.index(("t", "succeeded")) <= order.index(("a", "running"))
    # events are published only after the commit that stored them, in seq order
    assert [e.seq for e in sink.events] == sorted(e.seq for e in sink.events)


async def test_a_node_with_effects_starts_only_after_its_start_and_its_inputs_are_committed() -> None:
    store = SlowStore()
    await run_with(store, chain(("a", "pure_step", {}), ("e", "effect_step", {})))
    assert Seen.starts["e"] == {"own_start_committed": True, "predecessor_committed": True, "commits_in_flight": 0}


async def test_http_request_and_sub_workflow_are_not_pure_and_logic_nodes_are() -> None:
    pure = {t.type_name for t in NODE_TYPES if t.pure}
    assert {"http_request", "sub_workflow"}.isdisjoint(pure)
    assert {"manual_trigger", "set", "if", "switch", "merge", "delay", "wait"} <= pure


async def test_a_failed_commit_ends_the_run_without_waiting_for_the_pure_node_it_overlapped() -> None:
    store = SlowStore(fail_when="d")
    graph = chain(("d", "delay", {"seconds": 60}))
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
            await run_with(store, graph)
    assert not store.committed("d", "succeeded")


@pytest.mark.parametrize(("steps", "failing"), [
    ((("x", "effect_step", {}), ("a", "pure_step", {}), ("e", "effect_step", {})), "a"),
    ((("p1", "pure_step", {}), ("p2", "pure_step", {}), ("e", "effect_step", {})), "p2"),
])
async def test_after_a_failed_commit_no_node_with_effects_starts_and_nothing_commits_past_it(
        steps: tuple[tuple[str, str, dict[str, Any]], ...], failing: str) -> None:
    store = SlowStore(fail_when=failing)
    with pytest.raises(ConnectionError):
        await run_with(store, chain(*steps))
    assert "e" not in Seen.starts, "a node with effects never starts on state that was not stored"
    seqs = [seq for seq, _ in store.events.get(1, [])]
    assert seqs == list(range(1, len(seqs) + 1)), "no commit after the failed one: the stored events have no hole"


async def test_the_execution_time_limit_lets_the_commit_in_flight_finish_before_the_last_writes() -> None:
    store = SlowStore(delay=0.05)  # a store whose commit a cancellation would interrupt
    Seen.store, Seen.starts = store, {}
    graph = chain(("x", "effect_step", {}), ("d", "delay", {"seconds": 1}))
    async with httpx.AsyncClient() as http:
        outcome = await execute(Run(1, 1, graph, registry, store, MemorySink(), http, execution_timeout=0.13))
    assert outcome.status == "failed" and "did not finish within" in outcome.error["message"]
    latest = {node_id: run.status for node_id, run in (await store.latest_runs(1)).items()}
    assert latest == {"t": "succeeded", "x": "succeeded", "d": "failed"}
    seqs = [seq for seq, _ in store.events[1]]
    assert seqs == list(range(1, len(seqs) + 1))


class AwaitingPureStep(NodeType):
    """A pure node that does not end on its first turn (it awaits, as Delay does)."""

    type_name = "awaiting_pure_step"
    title = "Awaiting pure step"
    pure = True

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        await asyncio.sleep(0.02)
        return NodeResult.main(items)


registry.register(AwaitingPureStep)


async def test_pure_steps_that_end_at_once_are_committed_with_the_run_s_last_transaction() -> None:
    store = SlowStore(delay=0.01)
    outcome, sink = await run_with(store, chain(("a", "pure_step", {}), ("b", "pure_step", {})))
    assert outcome.status == "succeeded"
    assert len(store.log) == 1, f"one commit for the whole run, not one per step: {store.log}"
    assert {("t", "succeeded"), ("a", "succeeded"), ("b", "succeeded")} <= set(store.log[0])
    types = [e.type for e in sink.events]
    assert types[0] == "workflow.started" and types[-1] == "workflow.finished"
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1)), "every event, once, in order"


async def test_a_pure_step_still_going_has_its_running_row_committed_before_it_ends() -> None:
    store = SlowStore(delay=0.001)
    outcome, _ = await run_with(store, chain(("d", "awaiting_pure_step", {})))
    assert outcome.status == "succeeded"
    first_with_d = next(rows for rows in store.log if any(node == "d" for node, _ in rows))
    assert ("d", "running") in first_with_d and ("d", "succeeded") not in first_with_d, store.log
