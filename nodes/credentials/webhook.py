"""The secret a Webhook trigger checks signatures with (GitHub, Stripe, Slack or a generic HMAC-SHA256):
docs/triggers.md "Webhooks"."""

from __future__ import annotations

from typing import Annotated

import msgspec

from engine.credentials.types import CredentialType


class WebhookSecretValue(msgspec.Struct, forbid_unknown_fields=True):
    secret: Annotated[str, msgspec.Meta(
        title="Signing secret", description="As the sending service shows it (GitHub's webhook secret, Stripe's "
        "whsec_…, Slack's signing secret).")]

    def problems(self) -> dict[str, str]:
        if not self.secret.strip():
            return {"secret": "Enter the signing secret."}
        if len(self.secret) > 1000:
            return {"secret": "At most 1,000 characters."}
        return {}


class WebhookSecret(CredentialType):
    """A signing secret shared with a service that calls a webhook."""

    type_name = "webhook_secret"
    title = "Webhook signing secret"
    description = "The secret a service signs its webhook requests with (GitHub, Stripe, Slack, HMAC)."
    Secret = WebhookSecretValue
