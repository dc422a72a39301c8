"""Notion connected with OAuth (a public integration): HTTP Basic and a JSON body at the token endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from engine.credentials.oauth_types import OAuthType, bearer_get
from engine.credentials.types import CredentialTestContext, OAuthSpec, OpenCredential

NOTION_VERSION = "2026-03-11"
NOTION = OAuthSpec(
    provider="notion",
    authorize_url="https://api.notion.com/v1/oauth/authorize",
    token_url="https://api.notion.com/v1/oauth/token",
    api_base_url="https://api.notion.com/v1",
    token_auth="client_secret_basic",  # a secret in the body is refused with 401
    token_body="json",
    extra_authorize_params={"owner": "user"},
)


class NotionPublic(msgspec.Struct, forbid_unknown_fields=True):
    client_id: Annotated[str, msgspec.Meta(
        title="Client ID", description="Your own Notion integration; empty: this Patchwire's.")] = ""
    workspace: Annotated[str, msgspec.Meta(title="Workspace", description="Filled in when you connect.")] = ""
    workspace_id: Annotated[str, msgspec.Meta(title="Workspace ID", description="Filled in when you connect.")] = ""


class NotionSecret(msgspec.Struct, forbid_unknown_fields=True):
    client_secret: Annotated[str, msgspec.Meta(title="Client secret", description="With your own client ID.")] = ""
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None


class Notion(OAuthType):
    """A Notion workspace (the pages shared with the integration)."""

    type_name = "notion"
    title = "Notion"
    description = "Connect a Notion workspace: the pages and databases you share with it."
    Public = NotionPublic
    Secret = NotionSecret
    oauth = NOTION
    docs_url = "https://developers.notion.com/docs/authorization"

    async def connected_account(self, ctx: CredentialTestContext, public: Mapping[str, Any],
                                token: Mapping[str, Any]) -> dict[str, Any]:
        return {"workspace": str(token.get("workspace_name") or ""), "workspace_id": str(token.get("workspace_id") or "")}

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        url = f"{self.api_base(ctx, cred.public)}/users/me"
        me = (await bearer_get(ctx, url, str(cred.secret.get("access_token") or ""),
                               {"Notion-Version": NOTION_VERSION})).json()
        workspace = cred.public.get("workspace") or (me.get("bot") or {}).get("workspace_name") or "Notion"
        return f"Connected to {workspace} as {me.get('name') or 'the integration'}"
