"""Every node's final badge once an execution has ended, whatever the end (succeeded, failed, crashed,
cancelled, with skipped branches).

The live badges (``/ws/executions/{id}``) come from node events; a node that never ran has none, so its
*queued* badge from the start of the run would stay. When the run has ended, the stream sends one last
message: each node of the version that ran, with its last run's state, or *not run*. Nodes outside a
test run's scope (``executions.scope``) are left as they are (idle): they were never meant to run.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.graph import Graph
from engine.models import TERMINAL_STATUSES, Execution, NodeRun
from webapp.executions.views import format_seconds, latest_runs

NOT_RUN = "notrun"
SETTLED = ("succeeded", "failed", "skipped", "crashed", "cancelled")


@dataclass(frozen=True)
class FinalBadge:
    node_id: str
    status: str
    text: str


def final_badges(execution: Execution, graph: Graph, runs: list[NodeRun]) -> list[FinalBadge]:
    """The badge of each node in scope; empty while the execution has not ended."""
    if execution.status not in TERMINAL_STATUSES:
        return []
    latest = latest_runs(runs)
    scope = set(execution.scope) if execution.scope is not None else None
    return [_badge(execution, node.id, latest.get(node.id)) for node in graph.nodes
            if scope is None or node.id in scope]  # a test run's given nodes keep their "pinned" badge


def _badge(execution: Execution, node_id: str, run: NodeRun | None) -> FinalBadge:
    if run is None:
        return FinalBadge(node_id, NOT_RUN, "not run")
    if run.status not in SETTLED:  # started but cut off by the end of the run (a crash, a cancel)
        status = execution.status if execution.status in ("crashed", "cancelled") else NOT_RUN
        return FinalBadge(node_id, status, "not run" if status == NOT_RUN else status)
    text = run.status
    if run.started_at and run.finished_at:
        text += f" · {format_seconds((run.finished_at - run.started_at).total_seconds())}"
    return FinalBadge(node_id, run.status, text)
