"""Webhook authentication through the route, per preset: right, wrong, missing, stale, replayed; secrets come
from the owner's credentials; refusals are logged and start nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any

from sqlalchemy import func, select

from engine.models import Execution
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import WEBHOOK_DEFAULTS, activate, build, logged, url_of

PUBLIC_FIELDS = ("header_name", "username")


def credential(browser: Browser, type_name: str, **fields: str) -> int:
    form = {f"{'public' if name in PUBLIC_FIELDS else 'secret'}.{name}": value for name, value in fields.items()}
    response = browser.post("/credentials", {"type": type_name, "name": f"{type_name} {time.monotonic_ns()}", **form},
                            htmx=False, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(re.search(r"/credentials/(\d+)", response.headers["location"]).group(1))


def runs(db_call: Any, workflow_id: int) -> int:
    return db_call(lambda db: db.scalar(select(func.count(Execution.id)).where(Execution.workflow_id == workflow_id)))


def hooked(browser: Browser, db_call: Any, authentication: str, credential_id: int, **config: str) -> tuple[int, str, str]:
    wid, hook, _ = build(browser, set_value="ok", response_mode="immediately", authentication=authentication,
                         credential=str(credential_id), **config)
    activate(browser, db_call, wid)
    return wid, hook, url_of(db_call, hook)


def sign(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_github_signature_right_wrong_missing_replayed(browser: Browser, db_call: Any) -> None:
    browser.register("auth-gh@example.com")
    secret = "It's a Secret to Everybody"
    wid, hook, url = hooked(browser, db_call, "github", credential(browser, "webhook_secret", secret=secret))
    body = b'{"action": "opened"}'
    good = {"content-type": "application/json", "x-hub-signature-256": "sha256=" + sign(secret, body),
            "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert browser.client.post(url, content=body, headers=good).status_code == 202
    replayed = browser.client.post(url, content=body, headers=good)
    assert replayed.status_code == 403 and "already received" in replayed.json()["detail"]
    wrong = browser.client.post(url, content=body + b" ", headers={**good, "x-github-delivery": "other"})
    assert wrong.status_code == 403 and "does not match" in wrong.json()["detail"]
    missing = browser.client.post(url, content=body, headers={"content-type": "application/json"})
    assert missing.status_code == 401 and "X-Hub-Signature-256 header is missing" in missing.json()["detail"]
    malformed = browser.client.post(url, content=body, headers={**good, "x-hub-signature-256": "sha256=xyz"})
    assert malformed.status_code == 401
    too_long = browser.client.post(url, content=body, headers={**good, "x-hub-signature-256": "sha256=" + "a" * 9000})
    assert too_long.status_code == 401 and "longer than" in too_long.json()["detail"]
    assert runs(db_call, wid) == 1
    log = logged(db_call, hook)
    assert [e.outcome for e in log] == ["ran", "rejected", "rejected", "rejected", "rejected", "rejected"]
    assert all(e.input["headers"]["x-hub-signature-256"] == "***" for e in log if "x-hub-signature-256" in e.input["headers"])


def test_stripe_signature_tolerance_and_replayed_event(browser: Browser, db_call: Any) -> None:
    browser.register("auth-stripe@example.com")
    secret = "whsec_abc123"
    wid, _, url = hooked(browser, db_call, "stripe", credential(browser, "webhook_secret", secret=secret))
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    now = int(time.time())

    def header(stamp: int, payload: bytes = body) -> dict[str, str]:
        return {"content-type": "application/json",
                "stripe-signature": f"t={stamp},v1={sign(secret, f'{stamp}.'.encode() + payload)}"}

    assert browser.client.post(url, content=body, headers=header(now)).status_code == 202
    again = browser.client.post(url, content=body, headers=header(now + 1))  # the same event, signed anew
    assert again.status_code == 403 and "already received" in again.json()["detail"]
    other = b'{"id": "evt_2"}'
    stale = browser.client.post(url, content=other, headers=header(now - 600, other))
    assert stale.status_code == 403 and "stale" in stale.json()["detail"]
    garbage = browser.client.post(url, content=other, headers={"stripe-signature": "t=1,v1=zz"})
    assert garbage.status_code == 401
    assert browser.client.post(url, content=other, headers=header(now, other)).status_code == 202
    assert runs(db_call, wid) == 2


def test_slack_signature_with_timestamp(browser: Browser, db_call: Any) -> None:
    browser.register("auth-slack@example.com")
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    wid, _, url = hooked(browser, db_call, "slack", credential(browser, "webhook_secret", secret=secret))
    body = b"token=x&text=hello"
    stamp = str(int(time.time()))
    headers = {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": stamp,
               "x-slack-signature": "v0=" + sign(secret, f"v0:{stamp}:".encode() + body)}
    assert browser.client.post(url, content=body, headers=headers).status_code == 202
    assert browser.client.post(url, content=body, headers=headers).status_code == 403  # replayed
    old = str(int(time.time()) - 400)
    stale = {**headers, "x-slack-request-timestamp": old,
             "x-slack-signature": "v0=" + sign(secret, f"v0:{old}:".encode() + body)}
    assert browser.client.post(url, content=body, headers=stale).status_code == 403
    no_stamp = {k: v for k, v in headers.items() if k != "x-slack-request-timestamp"}
    assert browser.client.post(url, content=body, headers=no_stamp).status_code == 401
    assert runs(db_call, wid) == 1


def test_generic_hmac_base64_with_prefix(browser: Browser, db_call: Any) -> None:
    browser.register("auth-hmac@example.com")
    cred = credential(browser, "webhook_secret", secret="k3y")
    wid, _, url = hooked(browser, db_call, "hmac", cred, signature_header="X-Body-Signature",
                         signature_encoding="base64", signature_prefix="sha256=")
    body = b"raw bytes \x00\x01"
    digest = base64.b64encode(hmac.new(b"k3y", body, hashlib.sha256).digest()).decode()
    ok = browser.client.post(url, content=body, headers={"x-body-signature": "sha256=" + digest,
                                                         "content-type": "application/octet-stream"})
    assert ok.status_code == 202, ok.text
    bad_base64 = browser.client.post(url, content=body, headers={"x-body-signature": "sha256=%%%"})
    assert bad_base64.status_code == 401 and "base64" in bad_base64.json()["detail"]
    no_prefix = browser.client.post(url, content=body, headers={"x-body-signature": digest})
    assert no_prefix.status_code == 401 and "must start with" in no_prefix.json()["detail"]
    empty = browser.client.post(url, content=body, headers={"x-body-signature": ""})
    assert empty.status_code == 401 and "empty" in empty.json()["detail"]
    assert runs(db_call, wid) == 1


def test_header_token_and_basic_auth(browser: Browser, db_call: Any) -> None:
    browser.register("auth-basic@example.com")
    token = credential(browser, "http_header", header_name="X-Hook-Token", value="t0ken")
    wid, hook, url = hooked(browser, db_call, "header", token)
    assert browser.client.post(url, json={}, headers={"x-hook-token": "t0ken"}).status_code == 202
    assert browser.client.post(url, json={}, headers={"x-hook-token": "nope"}).status_code == 403
    assert browser.client.post(url, json={}).status_code == 401
    assert logged(db_call, hook)[0].input["headers"]["x-hook-token"] == "***"
    basic = credential(browser, "http_basic", username="ada", password="s3cret")
    other, _, basic_url = hooked(browser, db_call, "basic", basic)
    assert browser.client.post(basic_url, json={}, auth=("ada", "s3cret")).status_code == 202
    wrong = browser.client.post(basic_url, json={}, auth=("ada", "nope"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    bearer = browser.client.post(basic_url, json={}, headers={"authorization": "Bearer abc"})
    assert bearer.status_code == 401 and "scheme" in bearer.json()["detail"]
    assert browser.client.post(basic_url, json={}, headers={"authorization": "Basic !!!"}).status_code == 401
    assert (runs(db_call, wid), runs(db_call, other)) == (1, 1)


def test_the_form_refuses_a_credential_of_the_wrong_type_or_another_owners(browser: Browser, second_browser: Browser,
                                                                           db_call: Any) -> None:
    browser.register("auth-form@example.com")
    header = credential(browser, "http_header", header_name="X-T", value="v")
    wid = browser.create_workflow()
    hook = browser.add_node(wid, "webhook_trigger")
    wrong_type = browser.configure(wid, hook, {**WEBHOOK_DEFAULTS, "authentication": "github", "credential": str(header)})
    assert wrong_type.status_code == 422 and "webhook_secret" in wrong_type.text
    missing = browser.configure(wid, hook, {**WEBHOOK_DEFAULTS, "authentication": "github"})
    assert missing.status_code == 422 and "Choose the credential" in missing.text
    second_browser.register("auth-form-2@example.com")
    theirs = credential(second_browser, "webhook_secret", secret="x")
    stolen = browser.configure(wid, hook, {**WEBHOOK_DEFAULTS, "authentication": "github", "credential": str(theirs)})
    assert stolen.status_code == 422
