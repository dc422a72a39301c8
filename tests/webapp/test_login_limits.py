"""Log-in limits: growing delays per account and per client address (429 + Retry-After), kept in the
database, counted before any hashing; the owner hears of failed attempts at the next log-in."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from engine.netguard import parse_networks
from tests.webapp.conftest import Browser
from webapp.accounts import throttle

PASSWORD = "correct horse battery"


def hashes() -> float:
    return REGISTRY.get_sample_value("patchwire_password_hashes_total") or 0.0


def attempt(browser: Browser, email: str, password: str = "wrong password", **kw: Any) -> Any:
    return browser.post("/login", {"email": email, "password": password}, htmx=False, follow_redirects=False, **kw)


class Clock:
    """The limits' clock, standing still unless a test moves it: a delay passes only when the test says so,
    however slow the machine (a hash may take a second on a busy one)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(throttle, "clock", fixed)
    return fixed


def test_thirty_wrong_passwords_in_four_seconds_are_impossible(browser: Browser) -> None:
    browser.register("victim@example.com")
    browser.post("/logout", htmx=False)
    started = time.monotonic()
    answers = [attempt(browser, "victim@example.com") for _ in range(30)]
    elapsed = time.monotonic() - started
    checked = [a for a in answers if a.status_code == 400]
    refused = [a for a in answers if a.status_code == 429]
    assert len(checked) + len(refused) == 30
    # the free attempts, then one per doubling delay (1 s, 2 s, 4 s…) in the time the burst took
    assert len(checked) <= throttle.ACCOUNT.free + math.floor(math.log2(elapsed + 1)), (len(checked), elapsed)
    assert [a.status_code for a in answers[:throttle.ACCOUNT.free]] == [400] * throttle.ACCOUNT.free
    first = refused[0]
    wait = int(first.headers["retry-after"])
    assert 1 <= wait <= throttle.ACCOUNT.cap
    assert f"Try again in {wait} s." in first.text and "Too many log-in attempts for this account" in first.text
    assert "The limit: 5 attempts, then one per delay that doubles from 1 s up to 15 minutes." in first.text


def test_a_refused_attempt_hashes_nothing_and_even_the_right_password_waits(browser: Browser, clock: Clock) -> None:
    browser.register("locked@example.com")
    browser.post("/logout", htmx=False)
    for _ in range(throttle.ACCOUNT.free):
        assert attempt(browser, "locked@example.com").status_code == 400
    before = hashes()
    for password in ("wrong password", PASSWORD, "another wrong one"):
        refused = attempt(browser, "locked@example.com", password)
        assert refused.status_code == 429 and "retry-after" in refused.headers
    assert hashes() == before, "a refused attempt is answered before any hashing"
    assert browser.get("/workflows/", follow_redirects=False).status_code in (302, 303), "not logged in"
    clock.advance(throttle.ACCOUNT.cap)
    assert attempt(browser, "locked@example.com", PASSWORD).status_code == 200  # the owner's notice, logged in
    assert hashes() == before + 1


def test_the_owner_is_told_count_address_and_time_once(browser: Browser, clock: Clock) -> None:
    browser.register("owner@example.com")
    browser.post("/logout", htmx=False)
    for _ in range(throttle.ACCOUNT.free):
        attempt(browser, "Owner@Example.com ")  # the same account however it is spelled
    for _ in range(2):
        assert attempt(browser, "owner@example.com").status_code == 429
    clock.advance(throttle.ACCOUNT.cap)
    page = attempt(browser, "owner@example.com", PASSWORD)
    assert page.status_code == 200
    notice = re.sub(r"\s+", " ", page.text)
    assert "5 failed log-in attempts named your account, the last from <strong>testclient</strong> at" in notice
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:.]+\+00:00">\d{4}-\d\d-\d\d [\d:]{8} UTC</time>', notice)
    assert "2 more were refused while your account was locked" in notice
    assert browser.get("/workflows/").status_code == 200
    browser.post("/logout", htmx=False)
    assert attempt(browser, "owner@example.com", PASSWORD).status_code == 303, "told once; the count starts again"


def test_the_address_limit_covers_every_account_and_unknown_ones(browser: Browser, clock: Clock) -> None:
    """One client trying many e-mails meets the address limit; an account locked by others' attempts does
    not stop a different account from the same address before that."""
    browser.register("first@example.com")
    browser.post("/logout", htmx=False)
    for _ in range(throttle.ACCOUNT.free):
        attempt(browser, "first@example.com")
    assert attempt(browser, "first@example.com").status_code == 429
    assert attempt(browser, "someone-else@example.com").status_code == 400, "the account limit is per account"
    statuses = [attempt(browser, f"guess{n}@example.com").status_code for n in range(throttle.ADDRESS.free)]
    # every attempt from the address counts, the one refused for its account too (5 + 1 + 1 so far)
    assert statuses.count(400) == throttle.ADDRESS.free - throttle.ACCOUNT.free - 2 and statuses[-1] == 429
    refused = attempt(browser, "fresh@example.com")
    assert refused.status_code == 429 and "for your address" in refused.text
    assert "The limit: 20 attempts" in refused.text


def test_registrations_count_against_the_address(browser: Browser, clock: Clock) -> None:
    """Probing which e-mails have an account through the sign-up form is slowed like log-ins are."""
    browser.register("taken@example.com")
    browser.post("/logout", htmx=False)
    answers = [browser.post("/register", {"email": "taken@example.com", "password": "another password"},
                            htmx=False).status_code for _ in range(throttle.ADDRESS.free + 1)]
    assert answers == [400] * throttle.ADDRESS.free + [429]


def test_json_clients_get_problem_json(browser: Browser, clock: Clock) -> None:
    for _ in range(throttle.ACCOUNT.free):
        attempt(browser, "api@example.com")
    refused = attempt(browser, "api@example.com", headers={"accept": "application/json"})
    assert refused.status_code == 429 and refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["status"] == 429 and "Try again in" in body["detail"] and "The limit: 5 attempts" in body["detail"]
    assert int(refused.headers["retry-after"]) >= 1


def test_the_counts_outlive_the_process(app_factory: Callable[[], Any], clock: Clock) -> None:
    """Kept in the database: a second process (here: the app started again) sees the same limit."""
    with TestClient(app=app_factory()) as first:
        browser = Browser(first)
        for _ in range(throttle.ACCOUNT.free):
            attempt(browser, "shared@example.com")
    with TestClient(app=app_factory()) as second:
        assert attempt(Browser(second), "shared@example.com").status_code == 429


async def test_a_burst_of_concurrent_attempts_gets_only_the_allowance(tmp_path: Path, database_url: str,
                                                                    clock: Clock) -> None:
    """Thirty attempts at once, each on its own connection: only the free ones go ahead (compare-and-set)."""
    await upgrade_async(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    async def one() -> float:
        async with sessions() as db:
            return await throttle.reserve(db, throttle.ACCOUNT, throttle.digest("burst@example.com"))

    try:
        waits = await asyncio.gather(*(one() for _ in range(30)))
    finally:
        await engine.dispose()
    assert sum(1 for w in waits if w == 0) == throttle.ACCOUNT.free, waits


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("203.0.113.9", None, "", "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", "", "203.0.113.9"),  # no trusted proxy: the header is ignored
    ("10.0.0.2", "198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", "10.0.0.0/8", "198.51.100.1"),  # made-up entries left of it
    ("10.0.0.2", "198.51.100.1", "192.168.0.0/16", "10.0.0.2"),  # the peer is not a trusted proxy
    ("10.0.0.2", "not-an-address", "10.0.0.0/8", "not-an-address"),
    ("10.0.0.2", "10.0.0.5", "10.0.0.0/8", "10.0.0.5"),  # only proxies: the left-most
    (None, None, "", "unknown"),
])
def test_the_client_address(peer: str | None, forwarded: str | None, trusted: str, expected: str) -> None:
    assert throttle.client_address(peer, forwarded, parse_networks(trusted)) == expected


def test_the_trusted_proxies_setting_is_checked_at_start(tmp_path: Path) -> None:
    from engine.settings import load_settings

    env = {"PATCHWIRE_DATA_DIR": str(tmp_path)}
    assert load_settings({**env, "PATCHWIRE_TRUSTED_PROXIES": "10.0.0.0/8"}).trusted_proxies == "10.0.0.0/8"
    with pytest.raises(ValueError, match="PATCHWIRE_TRUSTED_PROXIES: 'proxy' is not an address or network"):
        load_settings({**env, "PATCHWIRE_TRUSTED_PROXIES": "proxy"})
