"""The fake Gmail API (``/google/gmail/v1/users/me/messages``) answers as Gmail documents it: search, labels,
pages, formats, and Google's error bodies."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from tests.fakes import FakeProviders

GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"


@pytest.fixture
def token(fake_providers: FakeProviders) -> str:
    return fake_providers.google.issue_token(scope=GMAIL_SCOPE).access_token


def call(fake: FakeProviders, token: str, path: str = "", params: Any = None) -> httpx.Response:
    return fake.http.get(f"{fake.url}/google/gmail/v1/users/me/messages{path}", params=params,
                         headers={"Authorization": f"Bearer {token}"})


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [m["id"] for m in answer.json().get("messages", [])]


def test_list_is_newest_first_with_search_and_labels(fake_providers: FakeProviders, token: str) -> None:
    box, now = fake_providers.google.mailbox, time.time()
    old = box.add("Invoice 12", sender="billing@acme.test", received_at=now - 100)
    new = box.add("Invoice 13", sender="billing@acme.test", received_at=now - 10)
    read = box.add("Lunch?", labels=("INBOX",), received_at=now - 5)
    spam = box.add("Invoice prize", labels=("SPAM",), received_at=now - 1)
    work = box.add("Report", labels=("INBOX", "Work"), received_at=now - 2)

    assert ids(call(fake_providers, token)) == [work.id, read.id, new.id, old.id]  # no spam unless asked
    assert ids(call(fake_providers, token, params={"includeSpamTrash": "true"}))[0] == spam.id
    assert ids(call(fake_providers, token, params={"q": "from:billing@acme.test"})) == [new.id, old.id]
    assert ids(call(fake_providers, token, params={"q": "invoice -subject:13"})) == [old.id]
    assert ids(call(fake_providers, token, params={"q": "(invoice) -subject:13"})) == [old.id]
    assert ids(call(fake_providers, token, params={"q": "is:read"})) == [work.id, read.id]
    assert ids(call(fake_providers, token, params={"q": f"after:{int(now - 50)}"})) == [work.id, read.id, new.id]
    assert ids(call(fake_providers, token, params={"labelIds": ["INBOX", "UNREAD"]})) == [new.id, old.id]
    assert ids(call(fake_providers, token, params={"labelIds": [box.label_id("Work")]})) == [work.id]
    assert ids(call(fake_providers, token, params={"q": '"lunch?"'})) == [read.id]
    unknown = call(fake_providers, token, params={"labelIds": "Label_99"})
    assert unknown.status_code == 400 and unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    empty = call(fake_providers, token, params={"q": "subject:nothing-like-this"})
    assert empty.json() == {"resultSizeEstimate": 0}


def test_pages_follow_next_page_token(fake_providers: FakeProviders, token: str) -> None:
    box, now = fake_providers.google.mailbox, time.time()
    added = [box.add(f"Message {n}", received_at=now - 100 + n).id for n in range(7)]
    seen, page_token, pages = [], None, 0
    while True:
        answer = call(fake_providers, token, params={"maxResults": 3, **({"pageToken": page_token} if page_token else {})})
        seen += ids(answer)
        pages += 1
        assert answer.json()["resultSizeEstimate"] == 7
        page_token = answer.json().get("nextPageToken")
        if not page_token:
            break
    assert pages == 3 and seen == added[::-1]
    bad = call(fake_providers, token, params={"maxResults": "many"})
    assert bad.status_code == 400 and "max_results" in bad.json()["error"]["message"]


def test_get_in_each_format(fake_providers: FakeProviders, token: str) -> None:
    message = fake_providers.google.mailbox.add("Hello", text="Plain body", html="<p>HTML body</p>")
    full = call(fake_providers, token, f"/{message.id}").json()
    assert full["id"] == message.id and full["labelIds"] == ["INBOX", "UNREAD"] and full["snippet"] == "Plain body"
    assert full["internalDate"] == str(message.internal_date)
    html = full["payload"]["parts"][1]
    assert html["mimeType"] == "text/html"
    assert base64.urlsafe_b64decode(html["body"]["data"] + "==").decode() == "<p>HTML body</p>"
    metadata = call(fake_providers, token, f"/{message.id}", {"format": "metadata",
                                                             "metadataHeaders": ["Subject", "From"]}).json()
    assert [h["name"] for h in metadata["payload"]["headers"]] == ["From", "Subject"]
    assert "payload" not in call(fake_providers, token, f"/{message.id}", {"format": "minimal"}).json()
    raw = call(fake_providers, token, f"/{message.id}", {"format": "raw"}).json()["raw"]
    assert b"Subject: Hello" in base64.urlsafe_b64decode(raw + "==")
    assert call(fake_providers, token, f"/{message.id}", {"format": "pretty"}).status_code == 400


def test_errors_have_googles_shape(fake_providers: FakeProviders, token: str) -> None:
    missing = call(fake_providers, token, "/0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    assert call(fake_providers, "not-a-token").json()["error"]["status"] == "UNAUTHENTICATED"
    no_scope = fake_providers.google.issue_token(scope="openid email").access_token
    assert call(fake_providers, no_scope).json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    other_user = fake_providers.http.get(f"{fake_providers.url}/google/gmail/v1/users/grace@example.com/messages",
                                         headers={"Authorization": f"Bearer {token}"})
    assert other_user.status_code == 403

    fake_providers.google.mailbox.fail_next(429)
    fake_providers.google.mailbox.fail_next(500)
    limited = call(fake_providers, token)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    broken = call(fake_providers, token)
    assert broken.status_code == 500 and broken.json()["error"]["errors"][0]["reason"] == "backendError"
    assert call(fake_providers, token).status_code == 200  # the forced failures are used up


def test_expired_tokens_are_refused_until_refreshed(fake_providers: FakeProviders, token: str) -> None:
    fake_providers.google.expire_all()
    assert call(fake_providers, token).status_code == 401
    assert fake_providers.google.mailbox.messages == []  # reset() empties the mailbox between tests
