"""The fakes against the client Patchwire uses: Authlib's ``AsyncOAuth2Client`` (httpx2), PKCE S256.

These pin that the fakes accept what a real OAuth client sends and that their errors surface as the
``OAuthError`` codes the connection code maps (``invalid_grant`` → needs reconnect)."""

from __future__ import annotations

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.fakes import FakeProviders, endpoints
from tests.fakes.flows import consent

REDIRECT = "http://127.0.0.1:9/oauth/callback"
SCOPES = {"oauth2": "read write", "google": "openid email https://www.googleapis.com/auth/gmail.readonly",
          "slack": "chat:write,channels:read", "notion": ""}
EXTRA = {"google": {"access_type": "offline", "prompt": "consent"}, "notion": {"owner": "user"}}


def client_for(fake: FakeProviders, provider: str) -> AsyncOAuth2Client:
    client = fake.provider(provider).default_client
    return AsyncOAuth2Client(client.client_id, client.client_secret, scope=SCOPES[provider] or None,
                             redirect_uri=REDIRECT, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic")


async def connect(fake: FakeProviders, provider: str, client: AsyncOAuth2Client) -> dict[str, object]:
    urls = endpoints(fake, provider)
    verifier = generate_token(48)
    url, state = client.create_authorization_url(urls["authorize_url"], code_verifier=verifier,
                                                 **EXTRA.get(provider, {}))
    answer = consent(url, http=fake.http)
    assert answer["state"] == state
    callback = f"{REDIRECT}?code={answer['code']}&state={state}"
    return dict(await client.fetch_token(urls["token_url"], authorization_response=callback, code_verifier=verifier))


@pytest.mark.parametrize("provider", ["oauth2", "google", "slack", "notion"])
async def test_authlib_client_connects_and_refreshes(fake_providers: FakeProviders, provider: str) -> None:
    async with client_for(fake_providers, provider) as client:
        token = await connect(fake_providers, provider, client)
        assert token["access_token"] and token["refresh_token"] and token["expires_at"]
        refreshed = await client.refresh_token(endpoints(fake_providers, provider)["token_url"],
                                               refresh_token=str(token["refresh_token"]))
    assert refreshed["access_token"] != token["access_token"]
    assert fake_providers.provider(provider).refresh_grants == 1


@pytest.mark.parametrize(("provider", "error"), [("oauth2", "invalid_grant"), ("google", "invalid_grant"),
                                                 ("slack", "invalid_refresh_token"), ("notion", "invalid_grant")])
async def test_a_revoked_grant_surfaces_as_oauth_error(fake_providers: FakeProviders, provider: str,
                                                       error: str) -> None:
    async with client_for(fake_providers, provider) as client:
        token = await connect(fake_providers, provider, client)
        fake_providers.provider(provider).revoke_all()
        with pytest.raises(OAuthError) as raised:
            await client.refresh_token(endpoints(fake_providers, provider)["token_url"],
                                       refresh_token=str(token["refresh_token"]))
    assert raised.value.error == error
