"""Google (Gmail and Sheets) connected with OAuth: offline access, so Google issues a refresh token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from engine.credentials.oauth_types import OAuthType, bearer_get
from engine.credentials.types import CredentialTestContext, OAuthSpec, OpenCredential

GOOGLE = OAuthSpec(
    provider="google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    revoke_url="https://oauth2.googleapis.com/revoke",
    api_base_url="https://www.googleapis.com",
    scopes=("https://www.googleapis.com/auth/gmail.modify", "https://www.googleapis.com/auth/gmail.send",
            "https://www.googleapis.com/auth/spreadsheets"),
    # without both, Google gives no refresh token (or none on a second consent): the connection would die in an hour
    extra_authorize_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
)


class GooglePublic(msgspec.Struct, forbid_unknown_fields=True):
    client_id: Annotated[str, msgspec.Meta(
        title="Client ID", description="Your own Google OAuth app; empty: this Patchwire's app.")] = ""
    scopes: Annotated[str, msgspec.Meta(
        title="Scopes", description="Separated by spaces; empty: Gmail (read, send, labels) and Sheets.")] = ""
    account: Annotated[str, msgspec.Meta(title="Account", description="Filled in when you connect.")] = ""


class GoogleSecret(msgspec.Struct, forbid_unknown_fields=True):
    client_secret: Annotated[str, msgspec.Meta(title="Client secret", description="With your own client ID.")] = ""
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None


class Google(OAuthType):
    """A Google account (Gmail, Sheets)."""

    type_name = "google"
    title = "Google (Gmail, Sheets)"
    description = "Connect a Google account: Gmail and Google Sheets."
    Public = GooglePublic
    Secret = GoogleSecret
    oauth = GOOGLE
    docs_url = "https://developers.google.com/identity/protocols/oauth2/web-server"

    async def profile(self, ctx: CredentialTestContext, public: Mapping[str, Any], access_token: str) -> dict[str, Any]:
        url = f"{self.api_base(ctx, public)}/gmail/v1/users/me/profile"
        return (await bearer_get(ctx, url, access_token)).json()

    async def connected_account(self, ctx: CredentialTestContext, public: Mapping[str, Any],
                                token: Mapping[str, Any]) -> dict[str, Any]:
        fields = await super().connected_account(ctx, public, token)
        profile = await self.profile(ctx, public, str(token["access_token"]))
        return {**fields, "account": str(profile.get("emailAddress") or "")}

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        profile = await self.profile(ctx, cred.public, str(cred.secret.get("access_token") or ""))
        return f"Connected as {profile.get('emailAddress')}"
