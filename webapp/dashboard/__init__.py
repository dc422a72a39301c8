"""The home dashboard (what runs and fails now) and the workflow overview (how a workflow performs)."""
