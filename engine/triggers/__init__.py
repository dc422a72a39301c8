"""Automatic triggers: what starts a workflow without anyone pressing Run (docs/triggers.md).

- ``activation``: activating and deactivating a workflow, and keeping its ``triggers`` rows in step with
  the published version (``activate``, ``deactivate``, ``sync_triggers``).
- ``scheduler`` (with ``polling``): every worker's loop that fires due schedule slots and polls, exactly once
  per slot / per new item; the webhook receiver (webapp/webhooks/) builds on the same rows.
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
