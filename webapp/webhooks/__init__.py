"""Receiving webhooks: the public route ``/webhook/<token or path>``, the request log, and the editor's
endpoints for a webhook node (docs/triggers.md "Webhooks", "Listening and replay")."""
