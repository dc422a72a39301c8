"""No account enumeration: whether an e-mail has an account is never told by an answer — its status, its
page or its cost (every path that could tell hashes a password once). And a fresh instance says how to start."""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import REGISTRY

from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from tests.webapp.conftest import Browser
from webapp.accounts.services import _DUMMY_HASH, AccountError, _hasher, register

TAKEN = "taken@example.com"


def hashes() -> float:
    return REGISTRY.get_sample_value("patchwire_password_hashes_total") or 0.0


def one_hash_seconds() -> float:
    def timed() -> float:
        started = time.perf_counter()
        _hasher.verify(_DUMMY_HASH, "timing-equaliser")
        return time.perf_counter() - started

    return min(timed() for _ in range(3))


def page_without(response: Any, email: str) -> str:
    """The page as any visitor would get it: the echoed e-mail and the per-visitor CSRF token taken out."""
    text = response.text.replace(f'value="{email}"', 'value=""')
    return re.sub(r'(csrf-token" content=|_csrf_token" value=|"X-CSRFToken": )"[^"]*"', r'\1""', text)


def observed(browser: Browser, path: str, email: str, password: str) -> tuple[int, str, float, float]:
    """(status, page, hashes computed, seconds taken) of one form post."""
    before, started = hashes(), time.perf_counter()
    response = browser.post(path, {"email": email, "password": password}, htmx=False, follow_redirects=False)
    return response.status_code, page_without(response, email), hashes() - before, time.perf_counter() - started


def test_registering_a_taken_email_answers_as_any_other_refusal(browser: Browser, second_browser: Browser) -> None:
    browser.register(TAKEN)
    hash_time = one_hash_seconds()
    taken = observed(second_browser, "/register", TAKEN, "another password")
    others = [observed(second_browser, "/register", "not-an-email", "another password"),  # an invalid e-mail
              observed(second_browser, "/register", "new@example.com", "password123"),  # a common password
              observed(second_browser, "/register", "carol@example.com", "carol's secret")]  # contains the name
    for other in others:
        assert (taken[0], taken[1], taken[2]) == (other[0], other[1], other[2]), "same status, page, one hash each"
    assert taken[0] == 400 and taken[2] == 1
    assert "This account could not be created — check the e-mail and password, or log in if you already have an " \
           "account." in taken[1]
    assert "exists" not in taken[1]
    assert min(t[3] for t in [taken, *others]) > hash_time / 2, "every path pays for a hash: similar time"


def test_logging_in_with_an_unknown_email_answers_as_a_wrong_password(browser: Browser,
                                                                      second_browser: Browser) -> None:
    browser.register(TAKEN)
    hash_time = one_hash_seconds()
    wrong = observed(second_browser, "/login", TAKEN, "wrong password")
    unknown = observed(second_browser, "/login", "nobody@example.com", "wrong password")
    assert wrong[:3] == unknown[:3] and wrong[0] == 400 and wrong[2] == 1
    assert "Email or password is not right." in wrong[1]
    assert min(wrong[3], unknown[3]) > hash_time / 2


async def test_the_cli_still_says_what_was_wrong(tmp_path: Any) -> None:
    """The operator's ``patchwire createuser`` is told the specific reason (only a visitor is not)."""
    url = f"sqlite:///{tmp_path}/cli.db"
    await upgrade_async(url)
    engine = make_engine(url)
    reasons = []
    try:
        async with make_sessionmaker(engine)() as db:
            await register(db, TAKEN, "a long password")
            for email, password in ((TAKEN, "a long password"), ("x@y", "a long password"), (TAKEN, "12345678")):
                try:
                    await register(db, email, password)
                except AccountError as exc:
                    reasons.append(str(exc))
    finally:
        await engine.dispose()
    assert reasons == ["an account with the e-mail 'taken@example.com' exists", "'x@y' is not a valid e-mail address",
                       "the password is too easy to guess (a common password, or it contains the e-mail's name)"]


def test_a_fresh_instance_says_how_to_start(browser: Browser) -> None:
    first = browser.get("/login")
    assert first.status_code == 200
    assert re.search(r'No account exists yet — create the first one at\s+<a href="/register">/register</a>', first.text)
    browser.register("first@example.com")
    browser.post("/logout", htmx=False)
    assert "No account exists yet" not in browser.get("/login").text
