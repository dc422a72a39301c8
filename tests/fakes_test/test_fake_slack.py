"""The Slack fake (``/slack``): OAuth v2 with token rotation, HTTP 200 ``ok:false`` errors, auth.test / revoke."""

from __future__ import annotations

import httpx

from tests.fakes import FakeProviders
from tests.fakes.flows import consent, pkce_pair

REDIRECT = "http://127.0.0.1:9/oauth/callback"


def access(fake: FakeProviders, **data: str) -> httpx.Response:
    client = fake.slack.default_client
    return fake.http.post(fake.url + "/slack/api/oauth.v2.access", data=data, auth=(client.client_id, client.client_secret))


def connect(fake: FakeProviders) -> dict[str, object]:
    verifier, challenge = pkce_pair()
    params = {"client_id": fake.slack.default_client.client_id, "scope": "chat:write,channels:read",
              "redirect_uri": REDIRECT, "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    code = consent(fake.url + "/slack/oauth/v2/authorize", params, http=fake.http)["code"]  # no response_type, like Slack's URLs
    answer = access(fake, code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    return answer.json()


def auth_test(fake: FakeProviders, token: str) -> dict[str, object]:
    answer = fake.http.post(fake.url + "/slack/api/auth.test", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json()


def test_access_answer_has_slacks_shape(fake_providers: FakeProviders) -> None:
    answer = connect(fake_providers)
    assert answer["token_type"] == "bot" and answer["scope"] == "chat:write,channels:read"
    assert str(answer["access_token"]).startswith("xoxe.xoxb-1-") and str(answer["refresh_token"]).startswith("xoxe-1-")
    assert answer["expires_in"] == 43200
    assert {"bot_user_id", "app_id", "team", "authed_user", "enterprise"} <= set(answer)
    assert set(answer["team"]) == {"id", "name"}  # type: ignore[arg-type]


def test_client_credentials_in_the_form_work_too(fake_providers: FakeProviders) -> None:
    client = fake_providers.slack.default_client
    token = fake_providers.slack.issue_token()
    answer = fake_providers.http.post(fake_providers.url + "/slack/api/oauth.v2.access", data={
        "grant_type": "refresh_token", "refresh_token": token.refresh_token, "client_id": client.client_id,
        "client_secret": client.client_secret})
    assert answer.json()["ok"] is True


def test_refresh_rotates_and_errors_are_http_200_ok_false(fake_providers: FakeProviders) -> None:
    first = connect(fake_providers)
    second = access(fake_providers, grant_type="refresh_token", refresh_token=str(first["refresh_token"]))
    assert second.json()["ok"] is True and second.json()["refresh_token"] != first["refresh_token"]
    spent = access(fake_providers, grant_type="refresh_token", refresh_token=str(first["refresh_token"]))
    assert spent.status_code == 200 and spent.json() == {"ok": False, "error": "invalid_refresh_token"}
    bad_code = access(fake_providers, code="nope", redirect_uri=REDIRECT)
    assert bad_code.status_code == 200 and bad_code.json() == {"ok": False, "error": "invalid_code"}


def test_wrong_client_secret_is_ok_false(fake_providers: FakeProviders) -> None:
    answer = fake_providers.http.post(fake_providers.url + "/slack/api/oauth.v2.access", data={"code": "x"},
                        auth=("slack-client-id", "wrong"))
    assert answer.status_code == 200 and answer.json() == {"ok": False, "error": "bad_client_secret"}
    unknown = fake_providers.http.post(fake_providers.url + "/slack/api/oauth.v2.access", data={"code": "x"},
                                       auth=("nobody", "x"))
    assert unknown.json() == {"ok": False, "error": "invalid_client_id"}


def test_auth_test_ok_and_its_errors(fake_providers: FakeProviders) -> None:
    token = str(connect(fake_providers)["access_token"])
    ok = auth_test(fake_providers, token)
    assert ok["ok"] is True and {"url", "team", "user", "team_id", "user_id"} <= set(ok)
    assert auth_test(fake_providers, "xoxb-unknown") == {"ok": False, "error": "invalid_auth"}
    assert fake_providers.http.post(fake_providers.url + "/slack/api/auth.test").json() == {"ok": False, "error": "not_authed"}
    fake_providers.slack.advance(43201)
    assert auth_test(fake_providers, token) == {"ok": False, "error": "token_expired"}


def test_auth_revoke(fake_providers: FakeProviders) -> None:
    answer = connect(fake_providers)
    revoked = fake_providers.http.post(fake_providers.url + "/slack/api/auth.revoke",
                         headers={"Authorization": f"Bearer {answer['access_token']}"})
    assert revoked.json() == {"ok": True, "revoked": True}
    assert auth_test(fake_providers, str(answer["access_token"]))["error"] == "token_revoked"
    spent = access(fake_providers, grant_type="refresh_token", refresh_token=str(answer["refresh_token"]))
    assert spent.json() == {"ok": False, "error": "invalid_refresh_token"}


def test_without_token_rotation_one_long_lived_bot_token(fake_providers: FakeProviders) -> None:
    fake_providers.slack.token_rotation = False
    answer = connect(fake_providers)
    assert str(answer["access_token"]).startswith("xoxb-")
    assert "refresh_token" not in answer and "expires_in" not in answer
