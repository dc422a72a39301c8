"""The Google fake (``/google``) follows Google's documented OAuth 2.0 web-server flow and API errors."""

from __future__ import annotations

import httpx

from tests.fakes import FakeProviders
from tests.fakes.flows import consent, pkce_pair

REDIRECT = "http://127.0.0.1:9/oauth/callback"
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"


def connect(fake: FakeProviders, **extra: str) -> dict[str, object]:
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": fake.google.default_client.client_id, "redirect_uri": REDIRECT,
              "scope": f"openid email {GMAIL}", "state": "g", "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    code = consent(fake.url + "/google/o/oauth2/v2/auth", params, http=fake.http)["code"]
    client = fake.google.default_client
    answer = fake.http.post(fake.url + "/google/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": client.client_id, "client_secret": client.client_secret})
    assert answer.status_code == 200, answer.text
    return answer.json()


def refresh(fake: FakeProviders, refresh_token: str) -> httpx.Response:
    client = fake.google.default_client
    return fake.http.post(fake.url + "/google/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                      auth=(client.client_id, client.client_secret))


def profile(fake: FakeProviders, access_token: str) -> httpx.Response:
    return fake.http.get(fake.url + "/google/gmail/v1/users/me/profile",
                     headers={"Authorization": f"Bearer {access_token}"})


def test_offline_access_with_consent_prompt_gives_a_refresh_token(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers, access_type="offline", prompt="consent")
    assert str(token["access_token"]).startswith("ya29.") and str(token["refresh_token"]).startswith("1//")
    assert token["expires_in"] == 3599 and token["token_type"] == "Bearer"


def test_no_refresh_token_without_offline_access_or_on_a_repeat_consent(fake_providers: FakeProviders) -> None:
    assert "refresh_token" not in connect(fake_providers)
    assert "refresh_token" in connect(fake_providers, access_type="offline")  # first offline consent
    assert "refresh_token" not in connect(fake_providers, access_type="offline")  # again, without prompt=consent
    assert "refresh_token" in connect(fake_providers, access_type="offline", prompt="consent")


def test_refresh_does_not_rotate(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers, access_type="offline", prompt="consent")
    first = refresh(fake_providers, str(token["refresh_token"]))
    assert first.status_code == 200 and first.json()["access_token"] != token["access_token"]
    assert refresh(fake_providers, str(token["refresh_token"])).status_code == 200
    assert fake_providers.google.refresh_grants == 2


def test_revoked_grant_refresh_is_invalid_grant_with_googles_text(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers, access_type="offline", prompt="consent")
    assert fake_providers.http.post(fake_providers.url + "/google/revoke", data={"token": token["access_token"]}).status_code == 200
    answer = refresh(fake_providers, str(token["refresh_token"]))
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    again = fake_providers.http.post(fake_providers.url + "/google/revoke", data={"token": token["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


def test_gmail_profile_and_googles_401_shape(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers, access_type="offline", prompt="consent")
    answer = profile(fake_providers, str(token["access_token"]))
    assert answer.status_code == 200
    assert set(answer.json()) == {"emailAddress", "messagesTotal", "threadsTotal", "historyId"}
    assert answer.json()["emailAddress"] == "ada@example.com"
    fake_providers.google.revoke_all()
    refused = profile(fake_providers, str(token["access_token"]))
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    error = refused.json()["error"]
    assert error["code"] == 401 and error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["domain"] == "global" and error["errors"][0]["reason"] == "authError"


def test_gmail_needs_a_gmail_scope(fake_providers: FakeProviders) -> None:
    token = fake_providers.google.issue_token(scope="openid email")
    answer = profile(fake_providers, token.access_token)
    assert answer.status_code == 403 and answer.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"


def test_authorize_without_scope_or_redirect_uri_is_an_error_page(fake_providers: FakeProviders) -> None:
    params = {"response_type": "code", "client_id": fake_providers.google.default_client.client_id,
              "redirect_uri": REDIRECT}
    page = fake_providers.http.get(fake_providers.url + "/google/o/oauth2/v2/auth", params=params)
    assert page.status_code == 400 and "Missing required parameter: scope" in page.text


def test_bad_code_is_invalid_grant_bad_request(fake_providers: FakeProviders) -> None:
    client = fake_providers.google.default_client
    answer = fake_providers.http.post(fake_providers.url + "/google/token", data={
        "grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT},
        auth=(client.client_id, client.client_secret))
    assert answer.status_code == 400 and answer.json() == {"error": "invalid_grant", "error_description": "Bad Request"}
