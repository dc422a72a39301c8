"""The database alone reveals no secret: after credentials of several types were created with known secrets,
a Google account connected through the fake provider and a workflow run with one of them, neither the SQLite
file (nor its WAL) nor a ``pg_dump`` of the PostgreSQL database holds any of those secrets — in clear, in
base64 (standard or URL-safe, padded or not) or in hex (how ``pg_dump`` writes ``bytea``)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from engine.models import Credential
from engine.settings import load_settings
from tests.fakes import FakeProviders, settings_env
from tests.fakes.flows import consent, query_of
from tests.nodes.auth_server import AuthServer, serve
from tests.webapp.conftest import LOOPBACK, Browser
from tests.webapp.test_runs import _all_runs, run
from webapp.app import create_app

SECRETS = {
    "http_header": ({"header_name": "X-Api-Key"}, {"value": "hdr-9f3b1c7e5a2d4b6c"}),
    "http_bearer": ({}, {"token": "brr-2e4a6c8e0b1d3f57"}),
    "http_basic": ({"username": "ada"}, {"password": "pwd-7d9f1b3c5e7a9c1e"}),
    "smtp": ({"host": "smtp.example.com", "port": "587", "username": "ada", "security": "starttls",
              "from_address": "ada@example.com"}, {"password": "smtp-4c6e8a0b2d4f6a8c"}),
    "telegram_bot": ({}, {"bot_token": "123456789:AAEtelegramSecretValue0123456789"}),
    "oauth2_client_credentials": ({"token_url": "https://auth.example.com/token", "client_id": "machine",
                                   "scopes": "read"}, {"client_secret": "ccs-5b7d9f1a3c5e7b9d"}),
}


@pytest.fixture
def api() -> Iterator[AuthServer]:
    yield from serve(AuthServer())


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path, fake_providers: FakeProviders) -> Callable[[], Any]:
    """The app with the fake Google as its provider (and loopback allowed, for the fake and the echo API)."""
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", **settings_env(fake_providers, "google"),
           "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}
    return lambda: create_app(load_settings(env))


def create(browser: Browser, type_name: str, public: dict[str, str], secret: dict[str, str]) -> Any:
    form = {"type": type_name, "name": f"My {type_name}", **{f"public.{k}": v for k, v in public.items()},
            **{f"secret.{k}": v for k, v in secret.items()}}
    return browser.post("/credentials", form, htmx=False, follow_redirects=False)


def connect_google(browser: Browser) -> int:
    """Create a Google credential and connect it: Patchwire → the fake's consent page (Allow) → the callback."""
    response = create(browser, "google", {}, {})
    assert response.status_code == 303, response.text
    credential_id = int(re.search(r"/credentials/(\d+)", response.headers["location"]).group(1))
    connect = browser.get(f"/credentials/{credential_id}/connect", follow_redirects=False)
    assert connect.status_code in (302, 303), connect.text
    location = connect.headers["location"]
    answer = consent(location.split("?", 1)[0], query_of(location))  # its own query: params replace a URL's query
    callback = browser.get(f"/oauth/callback?code={answer['code']}&state={answer['state']}", follow_redirects=False)
    assert callback.status_code in (302, 303), callback.text
    return int(re.search(r"/credentials/(\d+)", callback.headers["location"]).group(1))


def encodings(secret: str) -> list[bytes]:
    """The secret as it would appear in a dump: clear, base64 (standard / URL-safe, with or without padding),
    hex (``bytea`` in a plain ``pg_dump``) — upper and lower case."""
    raw = secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms += [encoded, encoded.rstrip(b"=")]
    return forms


def found_in(data: bytes, secrets: dict[str, str]) -> list[str]:
    """Which of ``secrets`` (label → value) appear in ``data`` in any of their encodings."""
    return [label for label, value in secrets.items() if any(form in data for form in encodings(value))]


def database_bytes(database_url: str, data_dir: Path) -> dict[str, bytes]:
    """SQLite: the database file, its WAL and every other file of the data directory except the key file.
    PostgreSQL: a plain ``pg_dump`` of the test's database."""
    if database_url.startswith("sqlite"):
        path = Path(urlsplit(database_url).path)
        files = [p for p in path.parent.glob(f"{path.name}*")]
        files += [p for p in data_dir.rglob("*") if p.is_file() and p.name != "credentials.key"]
        return {str(p): p.read_bytes() for p in files}
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is not installed (postgresql-client)")
    dump = subprocess.run([pg_dump, "--no-owner", "--dbname", database_url], capture_output=True, check=True,
                          timeout=60)
    return {"pg_dump": dump.stdout}


def test_a_dump_of_the_database_holds_no_secret(browser: Browser, database_url: str, tmp_path: Path, db_call: Any,
                                                fake_providers: FakeProviders, api: AuthServer) -> None:
    browser.register("dump@example.com")
    secrets: dict[str, str] = {}
    ids = {}
    for type_name, (public, secret) in SECRETS.items():
        response = create(browser, type_name, public, secret)
        assert response.status_code == 303, response.text
        ids[type_name] = int(re.search(r"/credentials/(\d+)", response.headers["location"]).group(1))
        secrets.update({f"{type_name}.{k}": v for k, v in secret.items()})
    secrets["http_basic as sent"] = "ada:pwd-7d9f1b3c5e7a9c1e"  # the Basic header's base64 is of this

    # A connected Google account: the fake issued an access and a refresh token, now sealed in the row.
    google = connect_google(browser)
    [token] = fake_providers.google.live_tokens()
    secrets |= {"google.access_token": token.access_token, "google.refresh_token": token.refresh_token}
    assert browser.get(f"/credentials/{google}").status_code == 200

    # A run whose HTTP Request node sends the bearer token to an API that echoes every header back: the stored
    # node run, events and execution hold the answer, with the token redacted.
    api.bearer = SECRETS["http_bearer"][1]["token"]
    wid = browser.create_workflow("Echo")
    trigger, http = browser.add_node(wid, "manual_trigger"), browser.add_node(wid, "http_request")
    assert browser.configure(wid, http, {"name": "Echo", "url": f"{api.url}/echo",
                                         "credential": str(ids["http_bearer"])}).status_code == 200
    assert browser.connect(wid, trigger, http).status_code == 201
    execution = run(browser, wid)
    assert browser.wait_for_execution(execution) == "succeeded"
    [request] = api.received("/echo")
    assert request["headers"]["authorization"] == f"Bearer {api.bearer}", "the token was really sent"
    [echo] = [r for r in db_call(lambda db: _all_runs(db, execution)) if r.node_id == http]
    assert echo.output["main"][0]["body"]["headers"]["authorization"] == "[redacted]"

    dumps = database_bytes(database_url, tmp_path / "data")
    assert any(len(data) > 10_000 for data in dumps.values()), "the dump holds the database"
    for where, data in dumps.items():
        assert found_in(data, secrets) == [], f"secrets readable in {where}"
    # The check can fail: the non-secret fields are there in clear, and each sealed blob as it is stored
    # (raw bytes in SQLite, hex in pg_dump) — a secret stored the same way would have been found.
    everything = b"".join(dumps.values())
    assert b"smtp.example.com" in everything and b"X-Api-Key" in everything
    blobs = db_call(lambda db: _sealed_blobs(db))
    assert len(blobs) == len(SECRETS) + 1
    for blob in blobs:
        assert blob in everything or blob.hex().encode() in everything


async def _sealed_blobs(db: Any) -> list[bytes]:
    return list((await db.execute(select(Credential.secret))).scalars())
