"""Triggers and No Op."""

from __future__ import annotations

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, register


@register
class ManualTriggerMapper(NodeMapper):
    """Manual Trigger (and n8n's old Start node)."""

    n8n_types = ("manualTrigger", "start")

    def map(self, ctx: Context) -> Mapped:
        return Mapped("manual_trigger", {})


@register
class OtherTriggerMapper(NodeMapper):
    """Any other trigger: a Manual Trigger, reported (no equivalent yet)."""

    n8n_types = ("*Trigger",)

    def map(self, ctx: Context) -> Mapped:
        ctx.params.read.update(ctx.params.raw)
        ctx.unmapped("replaced by a Manual Trigger: Patchwire has no equivalent of this trigger yet, so the "
                     "workflow starts from the Run button (or the API)")
        return Mapped("manual_trigger", {})


@register
class NoOpMapper(NodeMapper):
    """No Op: a Set with no fields passes items on."""

    n8n_types = ("noOp",)

    def map(self, ctx: Context) -> Mapped:
        return Mapped("set", {"fields": [], "keep_existing": True})


