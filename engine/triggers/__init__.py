"""Automatic triggers: activation (``activation.py``), the scheduler of schedules and polls (``scheduler.py``,
``polling.py``). docs/triggers.md."""
