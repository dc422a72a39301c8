from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine.database import make_engine, make_sessionmaker
from engine.migrate import upgrade_async
from engine.models import SessionRow
from tests.webapp.conftest import Browser
from webapp.accounts.services import _DUMMY_HASH, _hasher, authenticate, register


def test_register_login_logout(browser: Browser) -> None:
    assert browser.get("/workflows/", follow_redirects=False).headers["location"].startswith("/login")
    browser.register("Ada@Example.com")
    assert "ada@example.com" in browser.get("/workflows/").text
    browser.post("/logout", htmx=False, follow_redirects=False)
    assert browser.get("/workflows/", follow_redirects=False).status_code in (302, 303)
    bad = browser.post("/login", {"email": "ada@example.com", "password": "wrong password"}, htmx=False)
    assert bad.status_code == 400 and "Email or password is not right" in bad.text
    ok = browser.post("/login?next=/executions", {"email": "ADA@example.com", "password": "correct horse battery"},
                      htmx=False, follow_redirects=False)
    assert ok.status_code == 200 and "1 failed log-in attempt named your account" in ok.text, "the owner is told"
    assert 'href="/executions"' in ok.text and browser.get("/workflows/").status_code == 200, "and logged in"
    browser.post("/logout", htmx=False)
    again = browser.post("/login?next=/executions", {"email": "ada@example.com", "password": "correct horse battery"},
                         htmx=False, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/executions", "told once"


def test_the_form_shape_is_named(browser: Browser) -> None:
    """What is visible in the input itself is named: an empty e-mail, a password too short."""
    response = browser.post("/register", {"email": "", "password": "short"}, htmx=False)
    assert response.status_code == 400
    assert "Enter your e-mail address." in response.text and "at least 8 characters" in response.text


def test_open_redirects_are_refused(browser: Browser) -> None:
    browser.register("eve@example.com")
    browser.post("/logout", htmx=False)
    response = browser.post("/login?next=//evil.example/", {"email": "eve@example.com", "password": "correct horse battery"},
                            htmx=False, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_unsafe_requests_need_the_csrf_token(browser: Browser, client: Any) -> None:
    browser.register("csrf@example.com")
    response = browser._call("post", "/workflows/", data={"name": "x"})  # no X-CSRFToken header
    assert response.status_code == 403
    assert "x</a>" not in browser.get("/workflows/").text


def test_passwords_are_stored_as_argon2_hashes(browser: Browser, db_call: Any) -> None:
    from sqlalchemy import select

    from engine.models import User

    browser.register("hash@example.com", "my secret password")
    stored = db_call(lambda db: db.scalar(select(User.password_hash).where(User.email == "hash@example.com")))
    assert stored.startswith("$argon2id$") and "my secret password" not in stored


def test_login_rotates_the_session_id(browser: Browser, second_browser: Browser) -> None:
    browser.register("rotate@example.com")
    browser.post("/logout", htmx=False)
    planted = "a" * 64  # a visit no longer stores a session (tests/webapp/test_sessions.py): plant an id
    browser.cookies.set("session", planted, domain="testserver.local")
    browser.post("/login", {"email": "rotate@example.com", "password": "correct horse battery"}, htmx=False)
    assert browser.cookies["session"] != planted
    second_browser.cookies.set("session", planted)
    assert second_browser.get("/workflows/", follow_redirects=False).status_code in (302, 303)


def test_public_path_exclusions_are_anchored(browser: Browser) -> None:
    """A path that merely contains /login or /static is not public and not CSRF-exempt."""
    assert browser.get("/workflows/1/nodes/login", follow_redirects=False).status_code in (302, 303)
    browser.register("anchor@example.com")
    wid = browser.create_workflow()
    response = browser._call("post", f"/workflows/{wid}/nodes/static", data={"name": "x"})
    assert response.status_code == 403


def test_an_unchanged_session_is_not_written_back_on_every_request(browser: Browser, db_call: Any) -> None:
    """A request that leaves the session as it was sends the cookie again but does not rewrite the row,
    until half of the session's lifetime is used; then the row's expiry is extended."""
    browser.register("quiet-session@example.com")

    def expiry() -> datetime:
        return db_call(lambda db: db.scalar(select(SessionRow.expires_at)))

    before = expiry()
    response = browser.get("/workflows/")
    assert response.status_code == 200 and "set-cookie" in response.headers
    assert expiry() == before  # not rewritten

    old = datetime.now(UTC) + timedelta(days=2)  # less than half of the 14 days left

    async def age(db: Any) -> None:
        await db.execute(update(SessionRow).values(expires_at=old))
        await db.commit()

    db_call(age)
    assert browser.get("/workflows/").status_code == 200
    assert expiry() > old + timedelta(days=10)  # rewritten with a fresh expiry
    assert browser.get("/workflows/").status_code == 200  # still logged in


async def test_hashing_does_not_stop_the_event_loop(tmp_path: Any) -> None:
    """argon2 takes ~100 ms per hash or check: it runs in its own threads, and the loop goes on meanwhile
    (its longest pause stays well below one hash; inline, one pause would be a whole hash)."""
    def timed_hash() -> float:
        t0 = time.perf_counter()
        _hasher.verify(_DUMMY_HASH, "timing-equaliser")
        return time.perf_counter() - t0

    one_hash = min(timed_hash() for _ in range(3))
    url = f"sqlite:///{tmp_path}/accounts.db"
    await upgrade_async(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)

    async def longest_pause(work: Any) -> tuple[Any, float]:
        task = asyncio.ensure_future(work)
        longest, last = 0.0, time.perf_counter()
        while not task.done():
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        return task.result(), longest

    gc.collect()
    gc.disable()  # a full collection of this test process's heap is a pause of its own, not the hash's
    try:
        async with sessions() as db:
            await authenticate(db, "warm@example.com", "correct horse battery")  # statements compiled first
            user, pause = await longest_pause(register(db, "loop@example.com", "correct horse battery"))
            assert pause < one_hash / 2, (pause, one_hash)
            found, pause = await longest_pause(authenticate(db, "loop@example.com", "correct horse battery"))
            assert found is not None and pause < one_hash / 2, (pause, one_hash)
            found, pause = await longest_pause(authenticate(db, "nobody@example.com", "correct horse battery"))
            assert found is None and pause < one_hash / 2, (pause, one_hash)  # the dummy check of an unknown account
            assert await authenticate(db, "loop@example.com", "wrong password") is None
            assert user.password_hash.startswith("$argon2id$")
    finally:
        gc.enable()
        await engine.dispose()
