"""Sessions cost nothing and reveal nothing: no row without something to keep, rows keyed by a hash of the
id, expired rows purged by the upkeep pass (real SQLite and PostgreSQL, the app's own worker)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select

from engine.models import SessionRow
from engine.settings import load_settings
from tests.webapp.conftest import LOOPBACK, Browser
from webapp.app import create_app

PASSWORD = "correct horse battery"


def stored_sessions(db_call: Callable[..., Any]) -> list[SessionRow]:
    return db_call(lambda db: db.scalars(select(SessionRow))).all()


def session_cookies(response: Any) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith("session=")]


def test_requests_without_a_session_store_nothing(client: TestClient[Any], db_call: Callable[..., Any]) -> None:
    """Health checks, the login and register pages, static files and a protected page that redirects to
    the login: a hundred of them without cookies leave no row and set no session cookie."""
    paths = ["/healthz", "/login", "/register", "/static/css/app.css", "/workflows/"]
    for n in range(100):
        client.cookies.clear()
        response = client.get(paths[n % len(paths)], follow_redirects=False)
        assert response.status_code in (200, 302, 303), (paths[n % len(paths)], response.status_code)
        assert session_cookies(response) == [], paths[n % len(paths)]
    assert stored_sessions(db_call) == []


def test_a_failed_login_stores_nothing_and_a_login_stores_exactly_one(browser: Browser, second_browser: Browser,
                                                                      db_call: Callable[..., Any]) -> None:
    browser.register("one-session@example.com")
    browser.post("/logout", htmx=False)
    assert stored_sessions(db_call) == []
    wrong = second_browser.post("/login", {"email": "one-session@example.com", "password": "wrong password"}, htmx=False)
    assert wrong.status_code == 400 and session_cookies(wrong) == []
    assert stored_sessions(db_call) == []
    ok = second_browser.post("/login", {"email": "one-session@example.com", "password": PASSWORD}, htmx=False,
                             follow_redirects=False)
    # after a failed attempt the log-in answers with the owner's notice of it (webapp/accounts), logged in
    assert ok.status_code == 200 and "failed" in ok.text.lower() and len(stored_sessions(db_call)) == 1
    for _ in range(3):
        assert second_browser.get("/workflows/").status_code == 200
    assert len(stored_sessions(db_call)) == 1


def test_logging_out_deletes_the_row_and_expires_the_cookie(browser: Browser, db_call: Callable[..., Any]) -> None:
    browser.register("bye@example.com")
    assert len(stored_sessions(db_call)) == 1
    response = browser.post("/logout", htmx=False, follow_redirects=False)
    [cookie] = session_cookies(response)
    assert "expires=" in cookie.lower() and "session" not in browser.cookies
    assert stored_sessions(db_call) == []


def test_a_stale_session_cookie_is_expired_without_a_write(client: TestClient[Any], db_call: Callable[..., Any]) -> None:
    client.cookies.set("session", "f" * 64)
    response = client.get("/login")
    [cookie] = session_cookies(response)
    assert cookie.startswith("session=null;") and "expires=" in cookie.lower()
    assert stored_sessions(db_call) == []


def presenting(client: TestClient[Any], session_id: str) -> Browser:
    """Someone else's browser with only this session cookie."""
    stranger = Browser(client)
    stranger.cookies.set("session", session_id, domain="testserver.local")
    return stranger


def test_the_stored_key_is_a_hash_that_does_not_log_in(browser: Browser, client: TestClient[Any],
                                                        db_call: Callable[..., Any]) -> None:
    browser.register("hashed@example.com")
    session_id = browser.cookies["session"]
    [row] = stored_sessions(db_call)
    assert row.key != session_id and session_id.encode() not in row.data
    assert row.key == hashlib.sha256(session_id.encode()).hexdigest()
    # what a database read or a backup gives away does not log in; the cookie itself does (the control)
    assert presenting(client, row.key).get("/workflows/", follow_redirects=False).status_code in (302, 303)
    assert presenting(client, session_id).get("/workflows/", follow_redirects=False).status_code == 200


def test_a_session_id_planted_before_login_is_worthless_after_it(browser: Browser, client: TestClient[Any]) -> None:
    """Rotation at login still holds now that a visit stores no session: a planted cookie is replaced."""
    browser.register("planted@example.com")
    browser.post("/logout", htmx=False)
    planted = "a" * 64
    victim = presenting(client, planted)
    victim.post("/login", {"email": "planted@example.com", "password": PASSWORD}, htmx=False)
    assert victim.cookies["session"] != planted
    assert victim.get("/workflows/", follow_redirects=False).status_code == 200
    assert presenting(client, planted).get("/workflows/", follow_redirects=False).status_code in (302, 303)


def test_the_upkeep_pass_deletes_expired_sessions(database_url: str, tmp_path: Path) -> None:
    """The worker's periodic pass (here every 0.2 s, with execution pruning off) deletes expired rows that
    nobody presents again, and leaves live ones."""
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
                              "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789",
                              "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK, "PATCHWIRE_RETENTION_DAYS": "0",
                              "PATCHWIRE_RETENTION_EVERY": "0.2"})
    with TestClient(app=create_app(settings)) as client:
        Browser(client).register("upkeep@example.com")

        def keys() -> set[str]:
            async def read() -> set[str]:
                async with client.app.state.runtime.sessions() as db:
                    return set(await db.scalars(select(SessionRow.key)))
            return client.blocking_portal.call(read)

        live = keys()

        async def add_expired() -> None:
            async with client.app.state.runtime.sessions.begin() as db:
                db.add_all([SessionRow(key=f"expired-{n}", data=b'{"user_id": 1}',
                                       expires_at=datetime.now(UTC) - timedelta(seconds=n + 1)) for n in range(3)])

        client.blocking_portal.call(add_expired)
        deadline = time.monotonic() + 15
        while keys() != live and time.monotonic() < deadline:
            time.sleep(0.05)
        assert keys() == live and len(live) == 1

