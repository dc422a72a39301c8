"""What a committed transition counts (engine/metrics.py): starts only at an execution's first event, every
final state, node attempts by type and outcome — and nothing for runs that are resumed or still running."""

from __future__ import annotations

from engine.events import Event
from engine.metrics import WORKER_REGISTRY, observe
from engine.store import ExecutionState, NodeRunRecord, Transition


def sample(name: str, **labels: str) -> float:
    return WORKER_REGISTRY.get_sample_value(name, labels) or 0.0


def started(seq: int) -> Event:
    return Event(type="workflow.started", execution_id=1, workflow_id=1, seq=seq, at=0.0, status="running")


def test_a_first_start_counts_and_a_resumed_one_does_not() -> None:
    before = sample("patchwire_executions_started_total")
    observe(Transition(events=[started(1)]))
    observe(Transition(events=[started(7)]))  # a continuation after a wait, or a resumed job
    observe(Transition())
    assert sample("patchwire_executions_started_total") - before == 1


def test_final_states_and_node_attempts() -> None:
    finished = {s: sample("patchwire_executions_finished_total", status=s) for s in ("succeeded", "crashed")}
    count = sample("patchwire_node_duration_seconds_count", node_type="probe", status="failed")
    total = sample("patchwire_node_duration_seconds_sum", node_type="probe", status="failed")
    fast = sample("patchwire_node_duration_seconds_bucket", node_type="probe", status="failed", le="0.5")
    runs = [NodeRunRecord("n", "N", "probe", 1, "failed", started_at=10.0, finished_at=10.25),
            NodeRunRecord("n", "N", "probe", 2, "running", started_at=10.3),  # not finished: not observed
            NodeRunRecord("m", "M", "probe", 1, "skipped", started_at=10.0, finished_at=10.0)]
    observe(Transition(runs=runs, execution=ExecutionState("waiting", resume_at=99.0)))
    observe(Transition(execution=ExecutionState("succeeded", finished_at=11.0)))
    observe(Transition(execution=ExecutionState("crashed", finished_at=11.0)))
    assert sample("patchwire_node_duration_seconds_count", node_type="probe", status="failed") - count == 1
    assert abs(sample("patchwire_node_duration_seconds_sum", node_type="probe", status="failed") - total - 0.25) < 1e-9
    assert sample("patchwire_node_duration_seconds_bucket", node_type="probe", status="failed", le="0.5") - fast == 1
    assert sample("patchwire_node_duration_seconds_count", node_type="probe", status="skipped") == 0
    assert {s: sample("patchwire_executions_finished_total", status=s) - v for s, v in finished.items()} == {
        "succeeded": 1, "crashed": 1}
