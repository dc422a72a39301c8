"""Webhook bodies that carry bytes: multipart files and raw bodies become binary data of the item (stored by
reference, never base64); file names and ``files`` / ``filepath`` keys are only data; malformed multipart is 400."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.binary import BinaryStore
from engine.models import BinaryData, Execution
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, logged, url_of


def store(client: Any) -> BinaryStore:
    runtime = client.app.state.runtime
    return BinaryStore(runtime.sessions, runtime.settings.data_dir, runtime.settings.binary_storage)


def read(browser: Browser, owner_id: int, ref: dict[str, Any]) -> bytes:
    return browser.client.blocking_portal.call(store(browser.client).read, owner_id, ref)


def test_multipart_files_become_binary_references(browser: Browser, db_call: Any) -> None:
    browser.register("bodies-multi@example.com")
    wid, hook, _ = build(browser, set_value="x", response_node="Webhook")
    activate(browser, db_call, wid)
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40
    response = browser.client.post(url_of(db_call, hook), data={"title": "Q3", "tag": ["a", "b"]}, files=[
        ("report", ("../../etc/report.pdf", pdf, "application/pdf")),
        ("report", ("C:\\Users\\x\\second.txt", b"second", "text/plain")),
    ])
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["body"] == {"title": "Q3", "tag": ["a", "b"]}
    first, second = item["binary"]["report"], item["binary"]["report_1"]
    assert first["file_name"] == "report.pdf" and first["mime_type"] == "application/pdf"
    assert first["size"] == len(pdf) and first["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert second["file_name"] == "second.txt"
    run = db_call(lambda db: db.scalar(select(Execution).where(Execution.workflow_id == wid)))
    assert read(browser, run.owner_id, first) == pdf and read(browser, run.owner_id, second) == b"second"
    rows = db_call(lambda db: db.scalars(select(BinaryData)))
    assert {r.execution_id for r in rows} == {run.id}  # pruned with the execution
    assert "%PDF" not in str(run.input) and "%PDF" not in str(logged(db_call, hook)[-1].input)
    data_dir = Path(browser.client.app.state.runtime.settings.data_dir)
    assert not (data_dir.parent / "etc").exists() and not (data_dir / "etc").exists()


def test_raw_bytes_and_the_raw_body_option(browser: Browser, db_call: Any) -> None:
    browser.register("bodies-raw@example.com")
    wid, hook, _ = build(browser, set_value="x", response_node="Webhook")
    activate(browser, db_call, wid)
    blob = b"\x89PNG\r\n\x1a\n\xff\xfe"
    response = browser.client.post(url_of(db_call, hook), content=blob, headers={"content-type": "image/png"})
    item = response.json()
    assert item["body"] is None and item["binary"]["data"]["mime_type"] == "image/png"
    owner = db_call(lambda db: db.scalar(select(Execution.owner_id).where(Execution.workflow_id == wid)))
    assert read(browser, owner, item["binary"]["data"]) == blob

    other, other_hook, _ = build(browser, set_value="x", response_node="Webhook", raw_body="on")
    activate(browser, db_call, other)
    text = browser.client.post(url_of(db_call, other_hook), json={"a": 1})
    ref = text.json()["binary"]["data"]
    assert text.json()["body"] is None and ref["mime_type"] == "application/json"
    assert read(browser, owner, ref) == b'{"a":1}'


def test_file_keys_in_json_are_only_data(browser: Browser, db_call: Any) -> None:
    browser.register("bodies-ni8mare@example.com")
    wid, hook, _ = build(browser, set_value="x", response_node="Webhook")
    activate(browser, db_call, wid)
    body = {"files": {"upload": {"filepath": "/etc/passwd", "originalFilename": "x"}}, "filepath": "/etc/shadow",
            "binary": {"data": {"$binary": "../../etc/passwd"}}}
    response = browser.client.post(url_of(db_call, hook), json=body)
    item = response.json()
    assert item["body"] == body and "binary" not in item  # a body's keys never become the item's binary data
    assert db_call(lambda db: db.scalar(select(BinaryData.id))) is None


def test_malformed_multipart_is_400(browser: Browser, db_call: Any) -> None:
    browser.register("bodies-badmulti@example.com")
    wid, hook, _ = build(browser, set_value="x")
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    no_boundary = browser.client.post(url, content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["detail"]
    broken = browser.client.post(url, content=b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
                                 headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert broken.status_code == 400
    assert [e.outcome for e in logged(db_call, hook)] == ["rejected", "rejected"]


def test_nul_characters_are_refused_or_kept_as_bytes(browser: Browser, db_call: Any) -> None:
    browser.register("bodies-nul@example.com")
    wid, hook, _ = build(browser, set_value="x", response_node="Webhook")
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    json_nul = browser.client.post(url, content=b'{"a": "x\\u0000y"}', headers={"content-type": "application/json"})
    assert json_nul.status_code == 400 and "NUL" in json_nul.json()["detail"]
    form_nul = browser.client.post(url, content=b"a=x%00y", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form_nul.status_code == 400
    query_nul = browser.client.post(url + "?q=a%00b", json={})
    assert query_nul.status_code == 400 and "query" in query_nul.json()["detail"]
    assert logged(db_call, hook)[-1].input["query"] == {"q": "a\ufffdb"}  # the log keeps what it can store
    text_nul = browser.client.post(url, content=b"raw \x00 bytes", headers={"content-type": "text/plain"})
    assert text_nul.status_code == 200 and text_nul.json()["binary"]["data"]["size"] == 11
    assert browser.client.post("/webhook/a%00b", json={}).status_code == 404
    assert browser.client.post(url, json={"a": "\\u0000 is fine as text"}).status_code == 200
