"""Wait and Execute Workflow."""

from __future__ import annotations

import re

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, Skip, register

MAX_WAIT_SECONDS = 86_400


@register
class WaitMapper(NodeMapper):
    """Wait for a time interval or until a date-time."""

    n8n_types = ("wait",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        resume = p.get("resume", "timeInterval")
        if resume == "timeInterval":
            unit = p.get("unit", "hours" if ctx.type_version < 1.1 else "seconds")
            amount = p.get("amount", 1 if ctx.type_version < 1.1 else 5)
            factor = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}.get(unit)
            if factor is None or not isinstance(amount, int | float):
                raise Skip(f"a wait of {amount!r} {unit!r} cannot be mapped")
            seconds = float(amount) * factor
            if seconds > MAX_WAIT_SECONDS:
                ctx.unmapped(f"waits over one day are not supported: {seconds:g} s shortened to {MAX_WAIT_SECONDS} s", "amount")
                seconds = MAX_WAIT_SECONDS
            return Mapped("wait", {"mode": "duration", "seconds": seconds})
        if resume == "specificTime":
            until = p.get("dateTime", "")
            if isinstance(until, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?", until):
                ctx.unmapped("date-time without a timezone: read as UTC", "dateTime")
                until += "Z"
            return Mapped("wait", {"mode": "until", "until": ctx.tr.value(until, "dateTime")})
        p.read.update(p.raw)
        raise Skip(f"Wait that resumes on {resume!r} (a webhook or form) is not supported")


@register
class ExecuteWorkflowMapper(NodeMapper):
    """Execute Workflow → Sub-workflow, by the workflow's name."""

    n8n_types = ("executeWorkflow",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        source = p.get("source", "database")
        ref = p.get("workflowId")
        name = ref.get("cachedResultName") if isinstance(ref, dict) else None
        for key in ("mode", "options", "workflowInputs"):
            p.get(key)
        if source != "database":
            p.read.update(p.raw)
            raise Skip(f"Execute Workflow from {source!r} is not supported: add a Sub-workflow node and choose a workflow")
        if name and name in ctx.workflows:
            ctx.unmapped(f"n8n workflow {name!r} mapped by name to your workflow #{ctx.workflows[name]}: check it",
                         "workflowId")
            return Mapped("sub_workflow", {"workflow_id": ctx.workflows[name]})
        shown = (ref.get("value") if isinstance(ref, dict) else ref) or "?"
        raise Skip(f"needs a Patchwire workflow id: n8n workflow {shown!r}"
                   + (f" ({name!r})" if name else "") + " is not one of your workflows by name; add a Sub-workflow node "
                   "and choose the workflow")


