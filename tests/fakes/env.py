"""``settings_env``: the environment that points Patchwire at the fakes (names per the spec's OAuthSpec)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.server import FakeProviders

# provider → (authorize, token, revoke, API base) paths under the fake's base URL
ENDPOINTS = {
    "oauth2": ("/oauth2/authorize", "/oauth2/token", "/oauth2/revoke", "/oauth2/api"),
    "google": ("/google/o/oauth2/v2/auth", "/google/token", "/google/revoke", "/google"),
    "slack": ("/slack/oauth/v2/authorize", "/slack/api/oauth.v2.access", "/slack/api/auth.revoke", "/slack/api"),
    "notion": ("/notion/v1/oauth/authorize", "/notion/v1/oauth/token", "/notion/v1/oauth/revoke", "/notion/v1"),
}
LOOPBACK = "127.0.0.0/8"


def endpoints(fake: FakeProviders, provider: str) -> dict[str, str]:
    """The provider's endpoint URLs at the fake: authorize_url, token_url, revoke_url, api_base_url."""
    authorize, token, revoke, api = ENDPOINTS[provider]
    return {"authorize_url": fake.url + authorize, "token_url": fake.url + token, "revoke_url": fake.url + revoke,
            "api_base_url": fake.url + api}


def settings_env(fake: FakeProviders, provider: str | None = None) -> dict[str, str]:
    """``PATCHWIRE_OAUTH_<PROVIDER>_{AUTHORIZE_URL,TOKEN_URL,REVOKE_URL,API_BASE_URL,CLIENT_ID,CLIENT_SECRET}``
    for one provider (or all four OAuth dialects when ``provider`` is None), plus
    ``PATCHWIRE_TELEGRAM_API_URL`` and ``PATCHWIRE_HTTP_ALLOW_NETWORKS`` (the SSRF guard refuses loopback
    otherwise). The client is the provider's default client (``fake.<provider>.default_client``)."""
    env = {"PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK, "PATCHWIRE_TELEGRAM_API_URL": fake.base("telegram")}
    for name in [provider] if provider and provider != "telegram" else ([] if provider else list(ENDPOINTS)):
        prefix = f"PATCHWIRE_OAUTH_{name.upper()}_"
        for field, url in endpoints(fake, name).items():
            env[prefix + field.upper()] = url
        client = fake.provider(name).default_client
        env[prefix + "CLIENT_ID"] = client.client_id
        env[prefix + "CLIENT_SECRET"] = client.client_secret
    return env
