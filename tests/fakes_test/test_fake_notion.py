"""The Notion fake (``/notion``): HTTP Basic only at the token endpoint, JSON bodies, rotating refresh tokens,
``Notion-Version`` required, Notion's error objects."""

from __future__ import annotations

import httpx

from tests.fakes import FakeProviders
from tests.fakes.flows import consent

REDIRECT = "http://127.0.0.1:9/oauth/callback"


def token_call(fake: FakeProviders, body: dict[str, str], basic: bool = True) -> httpx.Response:
    client = fake.notion.default_client
    auth = (client.client_id, client.client_secret) if basic else None
    return fake.http.post(fake.url + "/notion/v1/oauth/token", json=body, auth=auth)


def connect(fake: FakeProviders) -> dict[str, object]:
    params = {"client_id": fake.notion.default_client.client_id, "response_type": "code", "owner": "user",
              "redirect_uri": REDIRECT, "state": "n"}
    code = consent(fake.url + "/notion/v1/oauth/authorize", params, http=fake.http)["code"]
    answer = token_call(fake, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert answer.status_code == 200, answer.text
    return answer.json()


def me(fake: FakeProviders, token: str, version: str | None = "2026-03-11") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **({"Notion-Version": version} if version else {})}
    return fake.http.get(fake.url + "/notion/v1/users/me", headers=headers)


def test_token_answer_has_notions_shape(fake_providers: FakeProviders) -> None:
    answer = connect(fake_providers)
    assert answer["token_type"] == "bearer" and answer["refresh_token"] and answer["expires_in"] == 3600
    assert {"bot_id", "workspace_id", "workspace_name", "owner", "duplicated_template_id"} <= set(answer)
    assert answer["owner"]["user"]["person"]["email"] == "ada@example.com"  # type: ignore[index]


def test_client_secret_in_the_body_or_no_basic_auth_is_401(fake_providers: FakeProviders) -> None:
    client = fake_providers.notion.default_client
    in_body = token_call(fake_providers, {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
                                          "client_id": client.client_id, "client_secret": client.client_secret},
                         basic=False)
    assert in_body.status_code == 401 and in_body.json()["error"] == "invalid_client"
    both = token_call(fake_providers, {"grant_type": "authorization_code", "code": "x",
                                       "client_secret": client.client_secret})
    assert both.status_code == 401


def test_refresh_rotates_both_tokens(fake_providers: FakeProviders) -> None:
    first = connect(fake_providers)
    second = token_call(fake_providers, {"grant_type": "refresh_token", "refresh_token": str(first["refresh_token"])})
    assert second.status_code == 200
    assert second.json()["access_token"] != first["access_token"]
    assert second.json()["refresh_token"] != first["refresh_token"]
    spent = token_call(fake_providers, {"grant_type": "refresh_token", "refresh_token": str(first["refresh_token"])})
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"


def test_users_me_needs_notion_version_and_a_valid_token(fake_providers: FakeProviders) -> None:
    token = str(connect(fake_providers)["access_token"])
    assert me(fake_providers, token).json()["type"] == "bot"
    missing = me(fake_providers, token, version=None)
    assert missing.status_code == 400 and missing.json()["code"] == "missing_version"
    refused = me(fake_providers, "ntn_wrong")
    assert refused.status_code == 401
    assert {k: refused.json()[k] for k in ("object", "status", "code")} == {
        "object": "error", "status": 401, "code": "unauthorized"}


def test_revoke_with_basic_auth(fake_providers: FakeProviders) -> None:
    token = str(connect(fake_providers)["access_token"])
    client = fake_providers.notion.default_client
    answer = fake_providers.http.post(fake_providers.url + "/notion/v1/oauth/revoke", json={"token": token},
                        auth=(client.client_id, client.client_secret))
    assert answer.status_code == 200
    assert me(fake_providers, token).status_code == 401


def test_authorize_requires_owner_user(fake_providers: FakeProviders) -> None:
    params = {"client_id": fake_providers.notion.default_client.client_id, "response_type": "code",
              "redirect_uri": REDIRECT}
    page = fake_providers.http.get(fake_providers.url + "/notion/v1/oauth/authorize", params=params)
    assert page.status_code == 400 and "owner=user" in page.text
