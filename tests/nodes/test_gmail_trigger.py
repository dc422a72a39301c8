"""Gmail Trigger: ``poll()`` through a Google account connected at the provider fakes (the real vault, sealed
rows in SQLite or PostgreSQL, tokens refreshed by the OAuth part) against the fake Gmail API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import parse_config
from engine.contract import PollResult
from engine.credentials import Vault
from engine.credentials.redaction import Redactor
from engine.credentials.vault import CredentialRefused, for_node
from engine.errors import ConfigError, CredentialNeedsReconnect, NodeError
from engine.migrate import upgrade_async
from nodes.gmail_trigger import BASELINE_OVERLAP, MAX_NEW_PER_POLL, GmailTrigger
from tests import credential_factories as factories
from tests.engine.oauth_support import connected, new_credential, oauth_services
from tests.fakes import FakeProviders
from tests.nodes.poll_support import poll_context


@dataclass
class Gmail:
    vault: Vault
    fake: FakeProviders
    owner_id: int
    credential_id: int

    async def poll(self, state: dict[str, Any] | None, *, now: datetime | None = None, **config: Any) -> PollResult:
        raw = {"credential": self.credential_id, **config}
        parsed = parse_config(GmailTrigger.Config, raw)
        credentials = for_node(self.vault.for_run(self.owner_id, Redactor()), parsed, "Gmail")
        async with poll_context(credentials=credentials, now=now) as ctx:
            return await GmailTrigger().poll(ctx, parsed, state)

    def add(self, subject: str, **kwargs: Any) -> str:
        return self.fake.google.mailbox.add(subject, **kwargs).id


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def gmail(request: pytest.FixtureRequest, tmp_path: Path, fake_providers: FakeProviders) -> AsyncIterator[Gmail]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    await upgrade_async(url)
    async with oauth_services(url, factories.ring("k1"), fake_providers) as deps:
        owner_id, credential_id = await connected(deps, fake_providers, "google", "google")
        yield Gmail(Vault(deps.sessions, deps.ring, deps.registry, deps.http, deps.env), fake_providers, owner_id,
                    credential_id)


async def test_baseline_then_new_messages_oldest_first(gmail: Gmail) -> None:
    before = [gmail.add(f"Old {n}", received_at=time.time() - 60 + n) for n in range(3)]
    gmail.add("Ancient", received_at=time.time() - BASELINE_OVERLAP - 600)
    baseline = await gmail.poll(None)
    assert baseline.items == []
    assert baseline.state["seen"] == before[::-1], "the messages of the last hour are noted, older ones never listed"

    first = gmail.add("Invoice 7", sender="Billing <billing@acme.test>", text="Please pay.")
    second = gmail.add("Invoice 8", sender="Billing <billing@acme.test>")
    found = await gmail.poll(baseline.state)
    assert [i["id"] for i in found.items] == [first, second]
    item = found.items[0]
    assert item["subject"] == "Invoice 7" and item["from"] == "Billing <billing@acme.test>"
    assert item["to"] == "ada@example.com" and item["snippet"] == "Please pay." and item["labelIds"] == ["INBOX", "UNREAD"]
    assert item["received_at"].endswith("Z") and item["date"]
    assert set(item) == {"id", "threadId", "labelIds", "subject", "from", "to", "cc", "date", "received_at", "snippet"}
    again = await gmail.poll(found.state)
    assert again.items == [], "nothing is new twice"
    query = [r.query for r in gmail.fake.google.requests if r.path.endswith("/messages")][-1]
    assert f"after%3A{baseline.state['after']}" in query, "the search starts at the baseline"


async def test_query_and_labels_choose_the_messages(gmail: Gmail) -> None:
    baseline = await gmail.poll(None, query="from:billing@acme.test", label_ids="INBOX, UNREAD")
    wanted = gmail.add("Invoice", sender="billing@acme.test")
    gmail.add("Invoice, read already", sender="billing@acme.test", labels=("INBOX",))
    gmail.add("Newsletter", sender="news@acme.test")
    found = await gmail.poll(baseline.state, query="from:billing@acme.test", label_ids="INBOX, UNREAD")
    assert [i["id"] for i in found.items] == [wanted]


async def test_full_messages_carry_their_decoded_text_and_html(gmail: Gmail) -> None:
    baseline = await gmail.poll(None, simplify=False)
    gmail.add("Hello", text="Plain words", html="<p>Rich words</p>")
    found = await gmail.poll(baseline.state, simplify=False)
    item = found.items[0]
    assert item["text"] == "Plain words" and item["html"] == "<p>Rich words</p>"
    assert item["payload"]["mimeType"] == "multipart/alternative" and item["subject"] == "Hello"


async def test_pages_and_the_per_poll_limit_lose_and_repeat_nothing(gmail: Gmail) -> None:
    state = (await gmail.poll(None)).state
    now = time.time()
    added = [gmail.add(f"Bulk {n}", received_at=now + n / 1000) for n in range(MAX_NEW_PER_POLL + 30)]
    first = await gmail.poll(state)
    assert [i["id"] for i in first.items] == added[:MAX_NEW_PER_POLL], "the oldest first, at most the limit"
    second = await gmail.poll(first.state)
    assert [i["id"] for i in second.items] == added[MAX_NEW_PER_POLL:], "the rest at the next poll"
    assert (await gmail.poll(second.state)).items == []
    pages = [r for r in gmail.fake.google.requests if r.path.endswith("/messages") and "pageToken" in r.query]
    assert pages, "the list was read over several pages"


async def test_a_message_deleted_between_list_and_get_is_skipped(gmail: Gmail) -> None:
    baseline = await gmail.poll(None)
    gone, kept = gmail.add("Deleted soon"), gmail.add("Kept")
    gmail.fake.google.mailbox.fail_next(404, after=1)  # the list answers; the first get finds nothing
    found = await gmail.poll(baseline.state)
    assert [i["id"] for i in found.items] == [kept]
    assert gone in found.state["seen"]


async def test_a_401_gets_one_refresh_and_one_retry(gmail: Gmail) -> None:
    baseline = await gmail.poll(None)
    gmail.add("After expiry")
    gmail.fake.google.expire_all()  # Google's clock says expired; ours does not know yet
    found = await gmail.poll(baseline.state)
    assert [i["subject"] for i in found.items] == ["After expiry"]
    assert gmail.fake.google.refresh_grants == 1


async def test_a_dead_grant_is_an_error_asking_for_a_reconnect(gmail: Gmail) -> None:
    gmail.fake.google.revoke_all()
    with pytest.raises(CredentialNeedsReconnect, match="needs to be reconnected"):
        await gmail.poll(None)


@pytest.mark.parametrize(("status", "kind", "said"), [
    (429, "429", "Resource has been exhausted"), (500, "5xx", "Internal error"), (503, "5xx", "unavailable"),
    (403, "4xx", "User-rate limit exceeded")])
async def test_provider_errors_are_node_errors_with_googles_message(gmail: Gmail, status: int, kind: str,
                                                                    said: str) -> None:
    baseline = await gmail.poll(None)
    gmail.add("Waiting")
    gmail.fake.google.mailbox.fail_next(status)
    with pytest.raises(NodeError, match=f"Gmail answered HTTP {status}: .*{said}") as caught:
        await gmail.poll(baseline.state)
    assert caught.value.kind == kind
    assert caught.value.retry_after == (1.0 if status == 429 else None)
    assert [i["subject"] for i in (await gmail.poll(baseline.state)).items] == ["Waiting"], \
        "the state did not advance: the next poll finds the message"


async def test_only_a_google_credential_of_the_owner(gmail: Gmail) -> None:
    async with gmail.vault.sessions.begin() as db:
        other = await factories.credential(db, gmail.vault.ring, gmail.owner_id, type_name="http_bearer",
                                           secret={"token": "t"})
    with pytest.raises(CredentialRefused, match="accepts google"):
        await Gmail(gmail.vault, gmail.fake, gmail.owner_id, other.id).poll(None)
    _, stranger = await new_credential(gmail.vault.sessions, gmail.vault.ring, "google")
    with pytest.raises(CredentialRefused, match="not found"):
        await Gmail(gmail.vault, gmail.fake, gmail.owner_id, stranger).poll(None)


async def test_the_baseline_uses_the_injected_clock(gmail: Gmail) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    baseline = await gmail.poll(None, now=later)
    assert baseline.state["after"] == int(later.timestamp()) - BASELINE_OVERLAP
    gmail.add("Today")  # before the (future) baseline's hour: never new
    assert (await gmail.poll(baseline.state, now=later)).items == []


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GmailTrigger.Config, {"query": "is:unread"})
    assert caught.value.field_errors == {"credential": "This field is required."}
    with pytest.raises(ConfigError) as caught:
        parse_config(GmailTrigger.Config, {"credential": 3, "label_ids": "INBOX, not a label!"})
    assert caught.value.field_errors == {"label_ids": "'label!' is not a label id (letters, digits, _ and -)."}
    config = parse_config(GmailTrigger.Config, {"credential": 3, "label_ids": "INBOX,UNREAD  Label_2"})
    assert config.labels() == ["INBOX", "UNREAD", "Label_2"] and GmailTrigger().interval(config) == 60


async def test_api_base_follows_the_settings_and_only_for_oauth_credentials(gmail: Gmail) -> None:
    credentials = gmail.vault.for_run(gmail.owner_id, Redactor())
    assert await credentials.api_base(gmail.credential_id) == gmail.fake.base("google")
    async with gmail.vault.sessions.begin() as db:
        bearer = await factories.credential(db, gmail.vault.ring, gmail.owner_id, type_name="http_bearer",
                                            secret={"token": "t"})
    with pytest.raises(CredentialRefused, match="has no OAuth access token"):
        await credentials.api_base(bearer.id)
    named = for_node(credentials, parse_config(GmailTrigger.Config, {"credential": gmail.credential_id}), "Gmail")
    with pytest.raises(CredentialRefused, match="may use only the credentials its config names"):
        await named.api_base(bearer.id)
