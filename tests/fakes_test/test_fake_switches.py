"""The fakes' test switches (down, slow, rate limit), Telegram's getMe, request recording and settings_env."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakes import FakeProviders, settings_env


def test_down_answers_503_for_that_provider_only(fake_providers: FakeProviders) -> None:
    fake_providers.google.down = True
    assert fake_providers.http.post(fake_providers.url + "/google/token").status_code == 503
    assert fake_providers.http.post(fake_providers.url + "/slack/api/auth.test").status_code == 200


def test_delay_makes_a_provider_slow_and_reset_lets_waiting_requests_go(fake_providers: FakeProviders) -> None:
    fake_providers.notion.delay = 30
    with pytest.raises(httpx.ReadTimeout):
        fake_providers.http.get(fake_providers.url + "/notion/v1/users/me", timeout=0.3)
    fake_providers.reset()
    assert fake_providers.http.get(fake_providers.url + "/notion/v1/users/me", timeout=5).status_code == 401


@pytest.mark.parametrize(("provider", "path", "field"), [
    ("slack", "/slack/api/auth.test", "error"), ("notion", "/notion/v1/users/me", "code"),
    ("google", "/google/gmail/v1/users/me/profile", "error"), ("telegram", "/telegram/botX/getMe", "description")])
def test_rate_limit_answers_429_with_retry_after_then_recovers(fake_providers: FakeProviders, provider: str, path: str,
                                                               field: str) -> None:
    state = fake_providers.provider(provider)
    state.rate_limit, state.retry_after = 1, 7
    limited = fake_providers.http.get(fake_providers.url + path)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7" and field in limited.json()
    assert fake_providers.http.get(fake_providers.url + path).status_code != 429


def test_telegram_get_me(fake_providers: FakeProviders) -> None:
    token = fake_providers.telegram.add_bot(username="pw_bot")
    answer = fake_providers.http.get(f"{fake_providers.url}/telegram/bot{token}/getMe")
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert answer.json()["result"]["username"] == "pw_bot" and answer.json()["result"]["is_bot"] is True
    refused = fake_providers.http.get(f"{fake_providers.url}/telegram/bot{token}x/getMe")
    assert refused.status_code == 401
    assert refused.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_requests_are_recorded_and_reset_clears_state(fake_providers: FakeProviders) -> None:
    fake_providers.http.get(fake_providers.url + "/oauth2/api/me", headers={"Authorization": "Bearer abc"}, params={"q": "1"})
    recorded = fake_providers.oauth2.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == ("GET", "/oauth2/api/me", "q=1")
    assert recorded.headers["authorization"] == "Bearer abc"
    fake_providers.oauth2.issue_token()
    fake_providers.reset()
    assert fake_providers.oauth2.requests == [] and fake_providers.oauth2.tokens == []


def test_request_bodies_are_recorded_form_and_json(fake_providers: FakeProviders) -> None:
    fake_providers.http.post(fake_providers.url + "/oauth2/token", data={"grant_type": "x", "code_verifier": "v"})
    fake_providers.http.post(fake_providers.url + "/notion/v1/oauth/token", json={"grant_type": "y"})
    assert fake_providers.oauth2.requests[-1].body == {"grant_type": "x", "code_verifier": "v"}
    assert fake_providers.notion.requests[-1].body == {"grant_type": "y"}


@pytest.mark.parametrize(("provider", "path", "expected"), [
    ("oauth2", "/oauth2/token", (400, {"error": "server_error", "error_description": "boom"})),
    ("slack", "/slack/api/oauth.v2.access", (200, {"ok": False, "error": "server_error"}))])
def test_token_error_fails_the_next_token_request_once(fake_providers: FakeProviders, provider: str, path: str,
                                                       expected: tuple[int, dict[str, object]]) -> None:
    state = fake_providers.provider(provider)
    state.token_error = ("server_error", "boom")
    token = state.issue_token()
    client = state.default_client
    data = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
    failed = fake_providers.http.post(fake_providers.url + path, data=data, auth=(client.client_id, client.client_secret))
    assert (failed.status_code, failed.json()) == expected
    again = fake_providers.http.post(fake_providers.url + path, data=data, auth=(client.client_id, client.client_secret))
    assert again.status_code == 200 and "access_token" in again.json()


def test_settings_env_points_patchwire_at_the_fake(fake_providers: FakeProviders) -> None:
    env = settings_env(fake_providers, "google")
    assert env["PATCHWIRE_OAUTH_GOOGLE_TOKEN_URL"] == fake_providers.url + "/google/token"
    assert env["PATCHWIRE_OAUTH_GOOGLE_CLIENT_ID"] == fake_providers.google.default_client.client_id
    assert env["PATCHWIRE_HTTP_ALLOW_NETWORKS"] == "127.0.0.0/8"
    assert env["PATCHWIRE_TELEGRAM_API_URL"] == fake_providers.url + "/telegram"
    every = settings_env(fake_providers)
    for provider in ("OAUTH2", "GOOGLE", "SLACK", "NOTION"):
        for field in ("AUTHORIZE_URL", "TOKEN_URL", "REVOKE_URL", "API_BASE_URL", "CLIENT_ID", "CLIENT_SECRET"):
            assert f"PATCHWIRE_OAUTH_{provider}_{field}" in every


def test_hold_keeps_requests_at_the_door_until_released(fake_providers: FakeProviders) -> None:
    fake_providers.slack.hold = True
    with ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(fake_providers.http.post, fake_providers.url + "/slack/api/auth.test") for _ in range(2)]
        fake_providers.slack.wait_for(lambda state: state.held == 2)
        assert not any(call.done() for call in calls)
        fake_providers.release("slack")
        assert [call.result().json()["error"] for call in calls] == ["not_authed", "not_authed"]
    assert fake_providers.slack.held == 0
    assert fake_providers.http.post(fake_providers.url + "/slack/api/auth.test").status_code == 200


def test_expire_all_expires_fresh_tokens_too(fake_providers: FakeProviders) -> None:
    token = fake_providers.oauth2.issue_token()
    assert token.access_valid()
    fake_providers.oauth2.expire_all()
    answer = fake_providers.http.get(fake_providers.url + "/oauth2/api/me",
                                     headers={"Authorization": f"Bearer {token.access_token}"})
    assert answer.status_code == 401
