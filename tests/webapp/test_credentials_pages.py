"""The Credentials pages: list, type chooser, create / edit from the type's schema, Test, delete — with the
secrets never sent back to the browser, and bad input refused field by field with nothing stored."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select, update

from engine.credentials import mark_status, open_credential
from engine.models import Credential
from engine.settings import load_settings
from tests.nodes.test_credential_types import PASSWORD as SMTP_PASSWORD
from tests.nodes.test_credential_types import smtp_server  # noqa: F401 (a fixture)
from tests.webapp.conftest import LOOPBACK, Browser
from tests.webapp.credential_node import registered
from webapp.app import create_app

SECRET = "hdr-secret-5f1c9e0a7b"


class Recorder(Browser):
    """A browser that keeps every response body, to check that a secret never appears in one."""

    def __init__(self, client: TestClient[Any]) -> None:
        super().__init__(client)
        self.bodies: list[str] = []

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        response = super()._call(method, url, **kw)
        self.bodies.append(response.text + json.dumps(dict(response.headers)))
        return response

    def leaked(self, *secrets: str) -> list[str]:
        return [s for s in secrets if any(s in body for body in self.bodies)]


@pytest.fixture
def person(client: TestClient[Any]) -> Recorder:
    return Recorder(client)


def create(browser: Browser, type_name: str, name: str, **fields: str) -> Any:
    return browser.post("/credentials", {"type": type_name, "name": name, **fields}, htmx=False, follow_redirects=False)


def created_id(response: Any) -> int:
    assert response.status_code == 303, response.text
    return int(re.match(r"/credentials/(\d+)", response.headers["location"]).group(1))


def header_key(browser: Browser, name: str = "Weather API", secret: str = SECRET) -> int:
    return created_id(create(browser, "http_header", name, **{"public.header_name": "X-Api-Key",
                                                               "secret.value": secret}))


def count(db_call: Any) -> int:
    return db_call(lambda db: db.scalar(select(func.count()).select_from(Credential)))


class DbCall:
    """``db_call`` that also carries the app's key ring (for ``opened``)."""

    def __init__(self, db_call: Any, ring: Any) -> None:
        self.db_call, self.ring = db_call, ring

    def __call__(self, fn: Any) -> Any:
        return self.db_call(fn)


def opened(db_call: DbCall, owner_id: int, credential_id: int) -> Any:
    """The stored credential, opened with the app's own keys."""
    async def read(db: Any) -> Any:
        return await open_credential(db, db_call.ring, owner_id, credential_id)
    return db_call(read)


@pytest.fixture
def ring_call(db_call: Any, client: TestClient[Any]) -> DbCall:
    return DbCall(db_call, client.app.state.runtime.keyring)


def owner_of(db_call: Any, credential_id: int) -> int:
    return db_call(lambda db: db.scalar(select(Credential.owner_id).where(Credential.id == credential_id)))


# --- list, chooser, create ------------------------------------------------------------------------
def test_empty_list_explains_what_credentials_are(person: Recorder) -> None:
    person.register("empty@example.com")
    page = person.get("/credentials").text
    assert 'id="credentials-empty"' in page and "encrypted before they are stored" in page
    assert 'href="/credentials"' in person.get("/workflows/").text  # the nav link


def test_type_chooser_groups_the_types(person: Recorder) -> None:
    person.register("chooser@example.com")
    page = person.get("/credentials/new").text
    generic, oauth, services = (page.index(t) for t in ("Generic HTTP authentication", "OAuth 2", "Services"))
    assert generic < page.index('data-type="http_header"') < oauth < page.index('data-type="oauth2"') < services
    assert services < page.index('data-type="smtp"') and services < page.index('data-type="telegram_bot"')
    only = person.get("/credentials/new?accept=http_bearer,http_basic").text
    assert 'data-type="http_bearer"' in only and 'data-type="http_basic"' in only and 'data-type="smtp"' not in only
    assert person.get("/credentials/new?type=nope").status_code == 404


def test_create_lists_it_and_never_sends_the_secret_back(person: Recorder, ring_call: Any) -> None:
    person.register("create@example.com")
    form = person.get("/credentials/new?type=http_header").text
    assert re.search(r'<input type="password" name="secret.value"[^>]*value=""[^>]*autocomplete="off"', form)
    assert 'name="public.header_name"' in form
    credential_id = header_key(person)
    page = person.get(f"/credentials/{credential_id}?created=1").text
    assert "Credential created." in page and "set — leave empty to keep" in page and 'value="X-Api-Key"' in page
    listing = person.get("/credentials").text
    row = re.search(rf'<tr id="credential-{credential_id}">.*?</tr>', listing, re.S).group(0)
    assert "Weather API" in row and "API key (header)" in row and 'data-status="ok"' in row and "never" in row
    stored = opened(ring_call, owner_of(ring_call, credential_id), credential_id)
    assert stored.secret == {"value": SECRET} and stored.public == {"header_name": "X-Api-Key"}
    assert person.leaked(SECRET) == []


def test_missing_and_malformed_fields_are_named_and_nothing_is_stored(person: Recorder, ring_call: Any) -> None:
    person.register("bad@example.com")
    response = create(person, "http_header", "", **{"public.header_name": "", "secret.value": ""})
    assert response.status_code == 422
    errors = dict(re.findall(r'id="cfg-(?:public|secret)\.(\w+)-error">([^<]+)<', response.text))
    assert errors == {"header_name": "This field is required.", "value": "This field is required."}
    assert 'id="cred-name-error">This field is required.' in response.text

    typed_secret = "typed-secret-77aa"
    response = create(person, "http_header", "Bad header", **{"public.header_name": "X Api Key",
                                                              "secret.value": typed_secret})
    assert response.status_code == 422
    assert "A header name is letters, digits and -" in response.text
    assert 'value="X Api Key"' in response.text and 'value="Bad header"' in response.text  # shown again
    assert "type them again" in response.text
    response = create(person, "smtp", "Mail", **{"public.host": "smtp.example.com", "public.port": "seventy",
                                                 "public.security": "starttls", "secret.password": typed_secret})
    assert response.status_code == 422 and "Expected int" in response.text and 'value="seventy"' in response.text
    assert count(ring_call) == 0
    assert person.leaked(typed_secret) == []


def test_names_are_unique_per_owner(person: Recorder, second_browser: Browser, ring_call: Any) -> None:
    person.register("unique@example.com")
    header_key(person, "Shared name")
    again = create(person, "http_bearer", "Shared name", **{"secret.token": "tok-123456"})
    assert again.status_code == 422 and "You already have a credential named" in again.text
    second_browser.register("other-unique@example.com")
    created_id(create(second_browser, "http_bearer", "Shared name", **{"secret.token": "tok-123456"}))
    assert count(ring_call) == 2


# --- edit --------------------------------------------------------------------------------------------
def test_edit_keeps_secret_fields_unless_replaced(person: Recorder, ring_call: Any) -> None:
    person.register("edit@example.com")
    credential_id = header_key(person)
    owner = owner_of(ring_call, credential_id)
    response = person.post(f"/credentials/{credential_id}", {"name": "Renamed", "public.header_name": "X-Key",
                                                             "secret.value": ""}, htmx=False, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("?saved=1")
    stored = opened(ring_call, owner, credential_id)
    assert (stored.name, stored.public, stored.secret) == ("Renamed", {"header_name": "X-Key"}, {"value": SECRET})
    replaced = "replaced-secret-9911"
    person.post(f"/credentials/{credential_id}", {"name": "Renamed", "public.header_name": "X-Key",
                                                  "secret.value": replaced}, htmx=False)
    assert opened(ring_call, owner, credential_id).secret == {"value": replaced}
    bad = person.post(f"/credentials/{credential_id}", {"name": "", "public.header_name": "bad name",
                                                        "secret.value": "never-stored-1234"}, htmx=False)
    assert bad.status_code == 422 and "The stored credential is unchanged" in bad.text
    assert opened(ring_call, owner, credential_id).secret == {"value": replaced}
    assert person.leaked(SECRET, replaced, "never-stored-1234") == []


# --- Test --------------------------------------------------------------------------------------------
@pytest.fixture
def telegram() -> Iterator[Any]:
    """A loopback Telegram Bot API that knows one token (``getMe``)."""
    good = "123456:" + "A" * 30

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            ok = self.path == f"/bot{good}/getMe"
            body = ({"ok": True, "result": {"username": "patchwire_bot", "first_name": "Patch"}} if ok
                    else {"ok": False, "error_code": 401, "description": "Unauthorized"})
            payload = json.dumps(body).encode()
            self.send_response(200 if ok else 401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.good = good  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def test_the_test_button_reports_success_and_failure_without_the_secret(
        database_url: str, tmp_path: Path, telegram: Any) -> None:
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK,
           "PATCHWIRE_TELEGRAM_API_URL": telegram.url}
    with TestClient(app=create_app(load_settings(env))) as client:
        person = Recorder(client)
        person.register("tester@example.com")
        good = created_id(create(person, "telegram_bot", "Bot", **{"secret.bot_token": telegram.good}))
        assert 'id="test-button"' in person.get(f"/credentials/{good}").text
        passed = person.post(f"/credentials/{good}/test")
        assert passed.status_code == 200 and "✓ Authenticated as @patchwire_bot" in passed.text
        wrong = "654321:" + "B" * 30
        bad = created_id(create(person, "telegram_bot", "Wrong bot", **{"secret.bot_token": wrong}))
        failed = person.post(f"/credentials/{bad}/test")
        assert failed.status_code == 422 and "✗ Telegram refused the token: 401 Unauthorized" in failed.text
        full_page = person.post(f"/credentials/{bad}/test", htmx=False)  # without htmx: the page with the result
        assert full_page.status_code == 422 and "Telegram refused the token" in full_page.text
        assert person.leaked(telegram.good, wrong) == []
        # a type without a test has no button, and its test route is a 404
        header = header_key(person)
        assert 'id="test-button"' not in person.get(f"/credentials/{header}").text
        assert person.post(f"/credentials/{header}/test").status_code == 404


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_test_from_the_page_keeps_to_the_operators_allowed_networks(
        database_url: str, tmp_path: Path, smtp_server: tuple[int, Path | None]) -> None:  # noqa: F811
    """SMTP's Test connects itself (not through the guarded HTTP client): it reads the operator's
    PATCHWIRE_HTTP_ALLOW_NETWORKS from the settings, so a mail server on an allowed private network is tested,
    and one outside is refused before any connection."""
    port, _ = smtp_server
    base = {"PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", "DATABASE_URL": database_url}
    fields = {"public.host": "127.0.0.1", "public.port": str(port), "public.security": "none",
              "public.username": "alice", "secret.password": SMTP_PASSWORD}
    base["PATCHWIRE_DATA_DIR"] = str(tmp_path / "data")  # one data directory: the same key file
    allowed = {**base, "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}
    with TestClient(app=create_app(load_settings(allowed))) as client:
        person = Recorder(client)
        person.register("mail@example.com")
        mail = created_id(create(person, "smtp", "Mail", **fields))
        passed = person.post(f"/credentials/{mail}/test")
        assert passed.status_code == 200 and "✓" in passed.text, passed.text
        assert person.leaked(SMTP_PASSWORD) == []
    with TestClient(app=create_app(load_settings(base))) as client:  # no network allowed beyond the public ones
        person = Recorder(client)
        person.register("mail2@example.com")
        mail = created_id(create(person, "smtp", "Mail again", **fields))
        refused = person.post(f"/credentials/{mail}/test")
        assert refused.status_code == 422 and "not a public address" in refused.text, refused.text


# --- delete ------------------------------------------------------------------------------------------
def test_delete_is_refused_while_a_workflow_uses_it(person: Recorder, ring_call: Any) -> None:
    person.register("delete@example.com")
    credential_id = header_key(person)
    with registered():
        workflow_id = person.create_workflow("Nightly <sync>")
        node_id = person.add_node(workflow_id, "test_credential_call")
        assert person.configure(workflow_id, node_id, {"name": "Call", "url": "https://example.com",
                                                       "credential": str(credential_id)}).status_code == 200
        page = person.get(f"/credentials/{credential_id}").text
        assert f'<a href="/workflows/{workflow_id}">Nightly &lt;sync&gt;</a>' in page  # "Used by"
        refused = person.post(f"/credentials/{credential_id}/delete", htmx=False)
        assert refused.status_code == 409 and 'id="delete-refused"' in refused.text
        assert f'<a href="/workflows/{workflow_id}">Nightly &lt;sync&gt;</a>' in refused.text
        api = person.post(f"/credentials/{credential_id}/delete", htmx=False, headers={"accept": "application/json"})
        assert api.status_code == 409 and api.json()["problems"] == [{"message": "Nightly <sync>",
                                                                       "workflow_id": workflow_id}]
        assert count(ring_call) == 1
        person.configure(workflow_id, node_id, {"name": "Call", "url": "https://example.com", "credential": ""})
    gone = person.post(f"/credentials/{credential_id}/delete", htmx=False, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/credentials?deleted=1"
    assert count(ring_call) == 0 and person.get(f"/credentials/{credential_id}").status_code == 404


# --- OAuth types and the reconnect state -------------------------------------------------------------
def test_an_oauth_credential_goes_to_connect_after_create(person: Recorder, ring_call: Any) -> None:
    person.register("oauth@example.com")
    form = person.get("/credentials/new?type=oauth2").text
    assert "Create and connect" in form
    assert 'name="secret.access_token"' not in form and 'name="secret.refresh_token"' not in form
    assert 'name="public.account"' not in form  # filled in by the connection
    response = create(person, "oauth2", "My provider", **{
        "public.authorize_url": "https://id.example.com/authorize", "public.token_url": "https://id.example.com/token",
        "public.client_id": "client-1", "public.scopes": "read", "secret.client_secret": "client-secret-0042"})
    assert response.status_code == 303  # to its page, which goes on to /connect (a meta refresh: see create)
    credential_id = int(re.match(r"/credentials/(\d+)\?created=1&connect=1$", response.headers["location"]).group(1))
    going_on = person.get(response.headers["location"]).text
    assert f'<meta http-equiv="refresh" content="0; url=/credentials/{credential_id}/connect">' in going_on
    row = ring_call(lambda db: db.get(Credential, credential_id))
    assert row.status == "needs_reconnect"
    page = person.get(f"/credentials/{credential_id}").text
    assert f'href="/credentials/{credential_id}/connect">Connect</a>' in page and "not connected yet" in page
    assert person.leaked("client-secret-0042") == []


def test_needs_reconnect_shows_on_every_workflow_that_uses_it(person: Recorder, ring_call: Any) -> None:
    person.register("banner@example.com")
    credential_id = header_key(person, "Flaky key")
    with registered():
        using = person.create_workflow("Uses the key")
        node_id = person.add_node(using, "test_credential_call")
        person.configure(using, node_id, {"name": "Call", "url": "https://example.com", "credential": str(credential_id)})
        other = person.create_workflow("Does not")
        assert "needs to be reconnected" not in person.get(f"/workflows/{using}").text

        async def broken(db: Any) -> None:
            await mark_status(db, credential_id, "needs_reconnect", "the provider revoked the grant")
            await db.commit()
        ring_call(broken)
        editor = person.get(f"/workflows/{using}").text
        banner = re.search(rf'id="reconnect-banner-{credential_id}">(.*?)</p>', editor, re.S).group(1)
        assert "Flaky key" in banner and "the provider revoked the grant" in banner
        assert f'href="/credentials/{credential_id}">Reconnect</a>' in banner
        assert "reconnect-banner" not in person.get(f"/workflows/{other}").text
        listing = person.get("/workflows/").text
        assert f'id="workflow-{using}-reconnect"' in listing and f'id="workflow-{other}-reconnect"' not in listing
        assert 'data-status="needs_reconnect"' in person.get("/credentials").text


def test_json_clients_get_problem_details(person: Recorder, ring_call: Any) -> None:
    person.register("api@example.com")
    response = person.post("/credentials", {"type": "http_header", "name": "", "public.header_name": "bad name",
                                            "secret.value": "json-secret-4242"},
                           htmx=False, headers={"accept": "application/json"})
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    problems = {p["field"]: p["message"] for p in response.json()["problems"]}
    assert set(problems) == {"name", "header_name"} and count(ring_call) == 0
    assert person.leaked("json-secret-4242") == []


def test_a_credential_whose_key_is_gone_says_so(person: Recorder, ring_call: Any) -> None:
    person.register("nokey@example.com")
    credential_id = header_key(person)

    async def lose_key(db: Any) -> None:
        await db.execute(update(Credential).where(Credential.id == credential_id).values(key_id="retired"))
        await db.commit()
    ring_call(lose_key)
    page = person.get(f"/credentials/{credential_id}")
    assert page.status_code == 200
    assert f"It cannot be opened: credential {credential_id} was sealed with key &#39;retired&#39;" in page.text
    edit = person.post(f"/credentials/{credential_id}", {"name": "x", "public.header_name": "X-Key",
                                                         "secret.value": "new-value-1234"}, htmx=False)
    assert edit.status_code == 409, edit.text
    assert "PATCHWIRE_CREDENTIALS_KEY does not hold" in edit.text, re.search(r"<main.*</main>", edit.text, re.S).group(0)
    deleted = person.post(f"/credentials/{credential_id}/delete", htmx=False, follow_redirects=False)
    assert deleted.status_code == 303 and count(ring_call) == 0
