"""What the execution page shows, computed from the rows: the canvas of the pinned version, the
timeline of node runs (one row per node, a bar per attempt, back-offs and waits between them) and
one node's attempts. Pure functions over loaded rows; the service loads them, owner-scoped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import RegistryError
from engine.graph import Graph, NodeSpec, ports
from engine.models import TERMINAL_STATUSES, Execution, NodeRun
from engine.registry import Registry
from webapp.templating import port_labels

MIN_BAR_PERCENT = 0.6
"""An instant attempt (a skip, a trigger) still shows as a sliver."""
TICKS = 5


@dataclass(frozen=True)
class CanvasNode:
    """A node of the pinned version as the read-only canvas draws it."""

    id: str
    name: str
    type_name: str
    type_title: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    x: float
    y: float
    status: str
    text: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bar:
    """One span on a timeline row: an attempt running (``run``), a back-off before the next attempt
    (``backoff``) or a node parked until a time (``wait``); positions are percent of the scale."""

    kind: str
    status: str
    attempt: int
    left: float
    width: float
    label: str


@dataclass(frozen=True)
class TimelineRow:
    node_id: str
    name: str
    status: str
    attempts: int
    bars: list[Bar] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    rows: list[TimelineRow]
    seconds: float
    ticks: list[tuple[float, str]]
    live: bool


def latest_runs(runs: list[NodeRun]) -> dict[str, NodeRun]:
    """The newest attempt of each node."""
    latest: dict[str, NodeRun] = {}
    for run in runs:
        if run.node_id not in latest or run.attempt >= latest[run.node_id].attempt:
            latest[run.node_id] = run
    return latest


def canvas_nodes(graph: Graph, runs: list[NodeRun], registry: Registry) -> list[CanvasNode]:
    latest = latest_runs(runs)
    return [_canvas_node(node, latest.get(node.id), registry) for node in graph.nodes]


def _canvas_node(node: NodeSpec, run: NodeRun | None, registry: Registry) -> CanvasNode:
    try:
        node_type = registry.get(node.type, node.version)
        title, inputs, outputs = node_type.title, node_type.inputs, ports(node_type, "outputs", node.settings)
        labels = port_labels(node_type, node.config)
    except RegistryError:  # a type no longer installed: still drawn, with one port each side
        title, inputs, outputs, labels = f"Unknown type “{node.type}”", ("main",), ("main",), {}
    status, text = "idle", ""
    if run is not None:
        status = text = run.status
        if run.started_at and run.finished_at:
            text += f" · {format_seconds(_seconds(run.started_at, run.finished_at))}"
    return CanvasNode(node.id, node.name, node.type, title, tuple(inputs), tuple(outputs), node.position.x,
                      node.position.y, status, text, labels)


def connections(graph: Graph) -> list[dict[str, str]]:
    return [{"source": c.source, "target": c.target, "source_port": c.source_port, "target_port": c.target_port}
            for c in graph.connections]


def timeline(execution: Execution, graph: Graph, runs: list[NodeRun], now: datetime | None = None) -> Timeline:
    """Rows in the order the nodes first ran (nodes that never ran last, without bars), scaled from the
    execution's start to its end — or to now while it is still going."""
    now = now or datetime.now(UTC)
    start, end = _span(execution, runs, now)
    scale = _Scale(start, max((end - start).total_seconds(), 0.001))
    by_node: dict[str, list[NodeRun]] = {}
    for run in sorted(runs, key=lambda r: (r.started_at or start, r.attempt)):
        by_node.setdefault(run.node_id, []).append(run)
    names = {n.id: n.name for n in graph.nodes}
    rows = [_row(node_id, names.get(node_id, attempts[-1].node_name), attempts, scale, end)
            for node_id, attempts in by_node.items()]
    rows += [TimelineRow(n.id, n.name, "idle", 0) for n in graph.nodes if n.id not in by_node]
    ticks = [(100 * i / (TICKS - 1), format_seconds(scale.seconds * i / (TICKS - 1))) for i in range(TICKS)]
    return Timeline(rows, scale.seconds, ticks, execution.status not in TERMINAL_STATUSES)


def _span(execution: Execution, runs: list[NodeRun], now: datetime) -> tuple[datetime, datetime]:
    starts = [r.started_at for r in runs if r.started_at]
    start = execution.started_at or min(starts, default=None) or execution.created_at
    start = min([start, *starts])
    ends = [t for r in runs for t in (r.started_at, r.finished_at) if t]
    end = execution.finished_at if execution.status in TERMINAL_STATUSES and execution.finished_at else now
    return start, max([end, *ends])


@dataclass(frozen=True)
class _Scale:
    start: datetime
    seconds: float

    def percent(self, at: datetime) -> float:
        return max(0.0, min(100.0, 100 * (at - self.start).total_seconds() / self.seconds))

    def bar(self, kind: str, status: str, attempt: int, begin: datetime, until: datetime, label: str) -> Bar:
        left = self.percent(begin)
        width = max(MIN_BAR_PERCENT, self.percent(until) - left)
        return Bar(kind, status, attempt, round(min(left, 100 - MIN_BAR_PERCENT), 3), round(width, 3), label)

    def offset(self, at: datetime) -> str:
        return "+" + format_seconds((at - self.start).total_seconds())


def _row(node_id: str, name: str, attempts: list[NodeRun], scale: _Scale, end: datetime) -> TimelineRow:
    bars: list[Bar] = []
    for index, run in enumerate(attempts):
        begin = run.started_at or scale.start
        finish = run.finished_at or end
        kind = "wait" if run.status == "waiting" else "run"
        bars.append(scale.bar(kind, run.status, run.attempt, begin, finish, _label(name, run, scale, finish)))
        following = attempts[index + 1] if index + 1 < len(attempts) else None
        gap = _backoff(run, following, scale, end)
        if gap is not None:
            bars.append(gap)
    return TimelineRow(node_id, name, attempts[-1].status, len(attempts), bars)


def _label(name: str, run: NodeRun, scale: _Scale, finish: datetime) -> str:
    begin = run.started_at or scale.start
    what = {"running": "running for", "waiting": "waiting since start,"}.get(run.status, f"{run.status} in")
    text = f"{name} · attempt {run.attempt} · {what} {format_seconds((finish - begin).total_seconds())} · starts {scale.offset(begin)}"
    if run.status == "waiting" and run.resume_at:
        text += f" · continues at {run.resume_at:%Y-%m-%d %H:%M:%S} UTC"
    return text


def _backoff(run: NodeRun, following: NodeRun | None, scale: _Scale, end: datetime) -> Bar | None:
    """The wait between a failed attempt and the next one (or, while it lasts, until its resume time)."""
    if run.status != "failed" or run.finished_at is None or not (run.error or {}).get("retry_in") and not run.resume_at:
        return None
    if following is not None and following.started_at is not None:
        until, label = following.started_at, f"back-off before attempt {following.attempt}"
    elif run.resume_at is not None:
        until, label = min(run.resume_at, end), f"back-off: attempt {run.attempt + 1} at {run.resume_at:%H:%M:%S} UTC"
    else:
        until, label = end, f"back-off before attempt {run.attempt + 1}"
    seconds = (until - run.finished_at).total_seconds()
    return scale.bar("backoff", "waiting", run.attempt, run.finished_at, until, f"{label} · {format_seconds(seconds)}")


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start and end else 0.0


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def error_view(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A node run's error, the fields the page names first; the rest shown as data."""
    if not error:
        return None
    shown = {"type", "message", "kind", "traceback", "node_id", "node_name"}
    return {"type": error.get("type") or "Error", "message": error.get("message") or "", "kind": error.get("kind"),
            "traceback": error.get("traceback"), "extra": {k: v for k, v in error.items() if k not in shown}}


@dataclass(frozen=True)
class NodePanel:
    """One node of an execution: its attempts, and the one shown (the newest unless asked)."""

    node_id: str
    name: str
    type_title: str
    attempts: list[NodeRun]
    run: NodeRun | None
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]


def node_panel(graph: Graph, runs: list[NodeRun], node_id: str, attempt: int | None,
               registry: Registry) -> NodePanel | None:
    """``None`` when the node is neither in the pinned version nor ran, or has no such attempt."""
    node = next((n for n in graph.nodes if n.id == node_id), None)
    attempts = sorted((r for r in runs if r.node_id == node_id), key=lambda r: r.attempt)
    if node is None and not attempts:
        return None
    run = attempts[-1] if attempts and attempt is None else next((r for r in attempts if r.attempt == attempt), None)
    if attempt is not None and run is None:
        return None
    name = node.name if node is not None else attempts[-1].node_name
    type_name = node.type if node is not None else attempts[-1].node_type
    try:
        title = registry.latest(type_name).title
    except RegistryError:
        title = type_name
    return NodePanel(node_id, name, title, attempts, run, error_view(run.error if run else None),
                     log_entries(run.logs if run else None))


def log_entries(logs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Stored log records with their time of day (UTC, milliseconds) for the page."""
    return [{"time": datetime.fromtimestamp(e["at"], UTC).strftime("%H:%M:%S.%f")[:-3] if e.get("at") else "",
             "level": str(e.get("level") or "INFO"), "message": str(e.get("message") or ""),
             "dropped": bool(e.get("dropped"))} for e in logs or [] if isinstance(e, dict)]
