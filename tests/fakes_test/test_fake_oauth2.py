"""The generic OAuth 2.0 fake (``/oauth2``, Authlib's server side) behaves as RFC 6749 / 7636 / 7009 / 6750 say."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakes import FakeProviders
from tests.fakes.flows import consent, pkce_pair

REDIRECT = "http://127.0.0.1:9/oauth/callback"


def authorize_params(fake: FakeProviders, challenge: str | None, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": fake.oauth2.default_client.client_id, "redirect_uri": REDIRECT,
              "scope": "read write", "state": "st-1"}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return {**params, **extra}


def exchange(fake: FakeProviders, code: str, verifier: str | None, **extra: str) -> httpx.Response:
    client = fake.oauth2.default_client
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier:
        data["code_verifier"] = verifier
    return fake.http.post(fake.url + "/oauth2/token", data=data, auth=(client.client_id, client.client_secret))


def connect(fake: FakeProviders) -> dict[str, object]:
    verifier, challenge = pkce_pair()
    code = consent(fake.url + "/oauth2/authorize", authorize_params(fake, challenge), http=fake.http)["code"]
    answer = exchange(fake, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refresh(fake: FakeProviders, refresh_token: str) -> httpx.Response:
    client = fake.oauth2.default_client
    return fake.http.post(fake.url + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                      auth=(client.client_id, client.client_secret))


def me(fake: FakeProviders, access_token: str) -> httpx.Response:
    return fake.http.get(fake.url + "/oauth2/api/me", headers={"Authorization": f"Bearer {access_token}"})


def test_consent_page_names_the_account_and_allow_gives_code_and_state(fake_providers: FakeProviders) -> None:
    fake_providers.oauth2.account = "grace@example.com"
    _, challenge = pkce_pair()
    page = fake_providers.http.get(fake_providers.url + "/oauth2/authorize", params=authorize_params(fake_providers, challenge))
    assert page.status_code == 200 and "grace@example.com" in page.text and "read write" in page.text
    answer = consent(fake_providers.url + "/oauth2/authorize", authorize_params(fake_providers, challenge),
                     http=fake_providers.http)
    assert answer["state"] == "st-1" and len(answer["code"]) >= 40


def test_deny_redirects_with_access_denied(fake_providers: FakeProviders) -> None:
    _, challenge = pkce_pair()
    answer = consent(fake_providers.url + "/oauth2/authorize", authorize_params(fake_providers, challenge), "deny",
                     http=fake_providers.http)
    assert answer["error"] == "access_denied" and answer["state"] == "st-1" and "code" not in answer


def test_code_exchange_gives_expiring_bearer_token_that_the_api_accepts(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600 and token["refresh_token"]
    assert me(fake_providers, str(token["access_token"])).json()["email"] == "ada@example.com"
    assert fake_providers.oauth2.code_grants == 1


def test_pkce_is_required(fake_providers: FakeProviders) -> None:
    page = fake_providers.http.get(fake_providers.url + "/oauth2/authorize", params=authorize_params(fake_providers, None))
    assert page.status_code == 302
    assert "error=invalid_request" in page.headers["location"] and "state=st-1" in page.headers["location"]


def test_wrong_or_missing_verifier_is_refused_and_the_code_is_single_use(fake_providers: FakeProviders) -> None:
    verifier, challenge = pkce_pair()
    code = consent(fake_providers.url + "/oauth2/authorize", authorize_params(fake_providers, challenge),
                     http=fake_providers.http)["code"]
    wrong = exchange(fake_providers, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange(fake_providers, code, None).json()["error"] == "invalid_request"
    assert exchange(fake_providers, code, verifier).status_code == 200
    assert exchange(fake_providers, code, verifier).json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_a_registered_one_and_is_never_followed_otherwise(
        fake_providers: FakeProviders) -> None:
    fake_providers.oauth2.register_client("strict", "s3cret", redirect_uris=(REDIRECT,))
    _, challenge = pkce_pair()
    params = authorize_params(fake_providers, challenge, client_id="strict", redirect_uri="http://evil.example/cb")
    page = fake_providers.http.get(fake_providers.url + "/oauth2/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers and "redirect" in page.text.lower()


def test_refresh_rotates_and_a_used_refresh_token_fails(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers)
    first = refresh(fake_providers, str(token["refresh_token"]))
    assert first.status_code == 200 and first.json()["refresh_token"] != token["refresh_token"]
    again = refresh(fake_providers, str(token["refresh_token"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert refresh(fake_providers, first.json()["refresh_token"]).status_code == 200
    assert fake_providers.oauth2.refresh_grants == 2


def test_two_refreshes_at_once_with_one_token_spend_it_once(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: refresh(fake_providers, str(token["refresh_token"])), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    assert fake_providers.oauth2.refresh_grants == 1


def test_expired_access_token_gets_401_with_invalid_token(fake_providers: FakeProviders) -> None:
    fake_providers.oauth2.expires_in = 60
    token = connect(fake_providers)
    assert me(fake_providers, str(token["access_token"])).status_code == 200
    fake_providers.oauth2.advance(61)
    answer = me(fake_providers, str(token["access_token"]))
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert refresh(fake_providers, str(token["refresh_token"])).status_code == 200  # refresh tokens outlive it


def test_revocation_rfc7009_kills_the_grant(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers)
    client = fake_providers.oauth2.default_client
    answer = fake_providers.http.post(fake_providers.url + "/oauth2/revoke", data={"token": token["access_token"]},
                        auth=(client.client_id, client.client_secret))
    assert answer.status_code == 200
    assert me(fake_providers, str(token["access_token"])).status_code == 401
    assert refresh(fake_providers, str(token["refresh_token"])).json()["error"] == "invalid_grant"


def test_revoke_all_from_the_test_side(fake_providers: FakeProviders) -> None:
    token = connect(fake_providers)
    assert fake_providers.oauth2.revoke_all("ada@example.com") == 1
    assert me(fake_providers, str(token["access_token"])).status_code == 401


def test_client_credentials_grant(fake_providers: FakeProviders) -> None:
    client = fake_providers.oauth2.default_client
    answer = fake_providers.http.post(fake_providers.url + "/oauth2/token", data={
        "grant_type": "client_credentials", "scope": "read", "client_id": client.client_id,
        "client_secret": client.client_secret})
    assert answer.status_code == 200 and "refresh_token" not in answer.json()
    assert me(fake_providers, answer.json()["access_token"]).status_code == 200
    assert fake_providers.oauth2.client_credentials_grants == 1


@pytest.mark.parametrize("auth", [("oauth2-client-id", "wrong"), ("nobody", "x")])
def test_bad_client_credentials_are_401_invalid_client(fake_providers: FakeProviders, auth: tuple[str, str]) -> None:
    answer = fake_providers.http.post(fake_providers.url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_auto_consent_redirects_at_once(fake_providers: FakeProviders) -> None:
    fake_providers.oauth2.auto_consent = True
    _, challenge = pkce_pair()
    page = fake_providers.http.get(fake_providers.url + "/oauth2/authorize", params=authorize_params(fake_providers, challenge))
    assert page.status_code == 302 and "code=" in page.headers["location"]
