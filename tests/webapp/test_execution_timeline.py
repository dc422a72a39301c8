"""The timeline's geometry from node run rows: one row per node, a bar per attempt, the back-off
between attempts, a node parked waiting, a run still going — scaled to the execution's span."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.graph import Graph, NodeSpec
from engine.models import Execution, NodeRun
from nodes import registry
from webapp.executions.views import canvas_nodes, format_seconds, node_panel, timeline

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(node_id: str, attempt: int, status: str, start: float, end: float | None, **extra: object) -> NodeRun:
    return NodeRun(node_id=node_id, node_name=node_id.upper(), node_type="set", attempt=attempt, status=status,
                   started_at=at(start), finished_at=at(end) if end is not None else None, **extra)


GRAPH = Graph(nodes=[NodeSpec(id=n, type="set", name=n.upper()) for n in ("a", "b", "c", "never")])


def test_attempts_back_offs_and_scale_of_a_finished_execution() -> None:
    execution = Execution(status="failed", created_at=T0, started_at=T0, finished_at=at(10))
    runs = [run("a", 1, "succeeded", 0, 1),
            run("b", 1, "failed", 1, 2, error={"message": "503", "retry_in": 2.0}),
            run("b", 2, "failed", 4, 5, error={"message": "503", "retry_in": 3.0}),
            run("b", 3, "failed", 8, 10, error={"message": "503"})]
    shown = timeline(execution, GRAPH, runs, now=at(99))
    assert [(r.node_id, r.status, r.attempts) for r in shown.rows] == [
        ("a", "succeeded", 1), ("b", "failed", 3), ("c", "idle", 0), ("never", "idle", 0)]
    assert shown.seconds == 10 and not shown.live
    assert [t for _, t in shown.ticks] == ["0 ms", "2.5 s", "5.0 s", "7.5 s", "10.0 s"]
    b = shown.rows[1].bars
    assert [(x.kind, x.attempt, x.left, x.width) for x in b] == [
        ("run", 1, 10.0, 10.0), ("backoff", 1, 20.0, 20.0), ("run", 2, 40.0, 10.0), ("backoff", 2, 50.0, 30.0),
        ("run", 3, 80.0, 20.0)]
    assert "back-off before attempt 2 · 2.0 s" in b[1].label and "attempt 3 · failed in 2.0 s" in b[4].label
    assert shown.rows[2].bars == []


def test_a_running_execution_is_scaled_to_now_with_waits_and_pending_back_offs() -> None:
    execution = Execution(status="waiting", created_at=T0, started_at=T0)
    runs = [run("a", 1, "waiting", 0, None, resume_at=at(3600)),
            run("b", 1, "failed", 0, 1, error={"message": "429", "retry_in": 600.0}, resume_at=at(601)),
            run("c", 1, "running", 2, None)]
    shown = timeline(execution, GRAPH, runs, now=at(4))
    assert shown.live and shown.seconds == 4
    wait, = shown.rows[0].bars
    assert (wait.kind, wait.left, wait.width) == ("wait", 0.0, 100.0) and "continues at 2026-12-01 13:00:00" in wait.label
    attempt, backoff = shown.rows[1].bars
    assert (backoff.kind, backoff.left, backoff.width) == ("backoff", 25.0, 75.0) and "attempt 2 at 12:10:01" in backoff.label
    running, = shown.rows[2].bars
    assert (running.status, running.left, running.width) == ("running", 50.0, 50.0) and "running for 2.0 s" in running.label


def test_instant_runs_stay_visible_and_the_canvas_shows_the_newest_attempt() -> None:
    execution = Execution(status="succeeded", created_at=T0, started_at=T0, finished_at=at(100))
    runs = [run("a", 1, "skipped", 100, 100), run("b", 1, "failed", 0, 1), run("b", 2, "succeeded", 2, 3)]
    bar, = timeline(execution, GRAPH, runs).rows[1].bars
    assert bar.width > 0 and bar.left + bar.width <= 100
    nodes = {n.id: n for n in canvas_nodes(GRAPH, runs, registry)}
    assert (nodes["b"].status, nodes["b"].text) == ("succeeded", "succeeded · 1.0 s")
    assert (nodes["never"].status, nodes["never"].text, nodes["never"].type_title) == ("idle", "", "Set")


def test_a_node_panel_needs_a_node_of_the_execution_and_an_existing_attempt() -> None:
    runs = [run("b", 1, "failed", 0, 1, error={"type": "NodeError", "message": "x", "kind": "5xx", "data": {"s": 1}}),
            run("b", 2, "succeeded", 2, 3, logs=[{"at": 1796083200.25, "level": "INFO", "message": "hi"}])]
    assert node_panel(GRAPH, runs, "nope", None, registry) is None
    assert node_panel(GRAPH, runs, "b", 7, registry) is None
    newest = node_panel(GRAPH, runs, "b", None, registry)
    assert newest.run.attempt == 2 and newest.logs == [{"time": "00:00:00.250", "level": "INFO", "message": "hi",
                                                        "dropped": False}]
    first = node_panel(GRAPH, runs, "b", 1, registry)
    assert first.error == {"type": "NodeError", "message": "x", "kind": "5xx", "traceback": None, "extra": {"data": {"s": 1}}}
    never = node_panel(GRAPH, runs, "never", None, registry)
    assert never.run is None and never.attempts == []
    assert [format_seconds(s) for s in (0.0004, 59.94, 125, 7300)] == ["0 ms", "59.9 s", "2 min 05 s", "2 h 01 min"]
