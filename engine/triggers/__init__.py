"""Automatic triggers: what starts a workflow without anyone pressing Run (docs/triggers.md).

- ``activation``: activating and deactivating a workflow, and keeping its ``triggers`` rows in step with
  the published version (``activate``, ``deactivate``, ``sync_triggers``).
- The scheduler (schedules and polls) and the webhook receiver build on those rows.
"""

from engine.triggers.activation import (
    NO_TRIGGER_MESSAGE,
    ActivationError,
    activate,
    after_publish,
    automatic_trigger_nodes,
    deactivate,
    first_run_at,
    sync_triggers,
)

__all__ = ["NO_TRIGGER_MESSAGE", "ActivationError", "activate", "after_publish", "automatic_trigger_nodes", "deactivate",
           "first_run_at", "sync_triggers"]
