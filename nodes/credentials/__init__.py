"""The explicit registry of credential types. Add a credential type here, once."""

from __future__ import annotations

from engine.credentials.registry import CredentialRegistry
from nodes.credentials.generic import HttpBasic, HttpBearer, HttpHeader, OAuth2, OAuth2ClientCredentials
from nodes.credentials.google import Google
from nodes.credentials.notion import Notion
from nodes.credentials.slack import Slack
from nodes.credentials.smtp import Smtp
from nodes.credentials.telegram import TelegramBot
from nodes.credentials.webhook import WebhookSecret

CREDENTIAL_TYPES = (HttpHeader, HttpBearer, HttpBasic, OAuth2, OAuth2ClientCredentials, Google, Slack, Notion, Smtp,
                    TelegramBot,
                    WebhookSecret)


def credential_registry() -> CredentialRegistry:
    """A registry of every credential type (a new one each call: tests may add types of their own)."""
    return CredentialRegistry(CREDENTIAL_TYPES)
