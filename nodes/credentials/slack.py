"""Slack connected with OAuth v2 (a bot token; with token rotation, 12-hour tokens and a refresh token)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from engine.credentials.oauth_types import OAuthType, OAuthUnauthorized, bearer_get
from engine.credentials.types import CredentialTestContext, OAuthSpec, OpenCredential
from engine.errors import NodeError

SLACK = OAuthSpec(
    provider="slack",
    authorize_url="https://slack.com/oauth/v2/authorize",
    token_url="https://slack.com/api/oauth.v2.access",
    revoke_url="https://slack.com/api/auth.revoke",
    api_base_url="https://slack.com/api",
    scopes=("chat:write", "channels:read", "channels:history", "files:write", "users:read"),
    scope_separator=",",
)
TOKEN_DEAD = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
"""``auth.test`` errors that mean the token is no good (docs.slack.dev, auth.test)."""


class SlackPublic(msgspec.Struct, forbid_unknown_fields=True):
    client_id: Annotated[str, msgspec.Meta(
        title="Client ID", description="Your own Slack app; empty: this Patchwire's app.")] = ""
    scopes: Annotated[str, msgspec.Meta(
        title="Bot scopes", description="Separated by spaces or commas; empty: post messages, read channels, upload files.")] = ""
    team: Annotated[str, msgspec.Meta(title="Workspace", description="Filled in when you connect.")] = ""
    team_id: Annotated[str, msgspec.Meta(title="Workspace ID", description="Filled in when you connect.")] = ""


class SlackSecret(msgspec.Struct, forbid_unknown_fields=True):
    client_secret: Annotated[str, msgspec.Meta(title="Client secret", description="With your own client ID.")] = ""
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None


class Slack(OAuthType):
    """A Slack workspace (bot token)."""

    type_name = "slack"
    title = "Slack"
    description = "Connect a Slack workspace: the bot posts and reads where it is invited."
    Public = SlackPublic
    Secret = SlackSecret
    oauth = SLACK
    docs_url = "https://docs.slack.dev/authentication/installing-with-oauth"

    async def connected_account(self, ctx: CredentialTestContext, public: Mapping[str, Any],
                                token: Mapping[str, Any]) -> dict[str, Any]:
        team = token.get("team") if isinstance(token.get("team"), dict) else {}
        fields = await super().connected_account(ctx, public, token)
        return {**fields, "team": str(team.get("name") or ""), "team_id": str(team.get("id") or "")}

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        url = f"{self.api_base(ctx, cred.public)}/auth.test"
        answer = (await bearer_get(ctx, url, str(cred.secret.get("access_token") or ""))).json()
        if answer.get("ok") is not True:
            error = str(answer.get("error") or "unknown_error")
            if error in TOKEN_DEAD:
                raise OAuthUnauthorized(f"Slack refused the token: {error}")
            raise NodeError(f"Slack auth.test failed: {error}", kind="4xx")
        return f"Connected to {answer.get('team')} as {answer.get('user')}"
