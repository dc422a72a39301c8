"""Webhook authentication presets, as pure functions: right, wrong, missing, empty, malformed, stale, too long.
The GitHub and Slack cases use the vectors of their documentation."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from engine.triggers.webhook_auth import (
    MAX_HEADER,
    AuthFailure,
    check_basic,
    check_github,
    check_header_token,
    check_hmac,
    check_slack,
    check_stripe,
)

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
              b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
              b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
              b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SLACK_STAMP = 1531420618
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
STRIPE_SECRET = "whsec_test_secret"


def refused(status: int, text: str, call, *args, **kwargs) -> AuthFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthFailure) as info:
        call(*args, **kwargs)
    assert info.value.status == status, info.value.message
    assert text in info.value.message
    return info.value


def stripe_header(body: bytes, stamp: int, secret: str = STRIPE_SECRET, extra: str = "") -> str:
    """As stripe-python's ``generate_signature_header``: HMAC-SHA256 of ``"{t}.{body}"`` keyed by the whole secret."""
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},{extra}v1={signature}"


def test_github_docs_vector_and_its_refusals() -> None:
    body = b"Hello, World!"
    ok = check_github({"x-hub-signature-256": GITHUB_SIGNATURE, "x-github-delivery": "d-1"}, body, GITHUB_SECRET)
    assert ok.event_id == "github:d-1"
    assert check_github({"x-hub-signature-256": GITHUB_SIGNATURE}, body, GITHUB_SECRET).event_id is None
    refused(403, "does not match", check_github, {"x-hub-signature-256": GITHUB_SIGNATURE}, body + b"!", GITHUB_SECRET)
    refused(403, "does not match", check_github, {"x-hub-signature-256": GITHUB_SIGNATURE}, body, "other")
    refused(401, "missing", check_github, {}, body, GITHUB_SECRET)
    refused(401, "empty", check_github, {"x-hub-signature-256": "  "}, body, GITHUB_SECRET)
    refused(401, "sha256=<hex digest>", check_github, {"x-hub-signature-256": "sha1=abc"}, body, GITHUB_SECRET)
    refused(401, "64 hexadecimal", check_github, {"x-hub-signature-256": "sha256=zz"}, body, GITHUB_SECRET)
    refused(401, "longer than", check_github, {"x-hub-signature-256": "sha256=" + "a" * MAX_HEADER}, body, GITHUB_SECRET)


def test_stripe_signature_with_tolerance_and_several_v1() -> None:
    body = b'{"id": "evt_123", "type": "charge.succeeded"}'
    now = 1_700_000_000
    assert check_stripe({"stripe-signature": stripe_header(body, now)}, body, STRIPE_SECRET, now).event_id == \
        "stripe:evt_123"
    rolled = stripe_header(body, now, extra="v1=" + "0" * 64 + ",v0=ignored,")  # another secret's signature first
    assert check_stripe({"stripe-signature": rolled}, body, STRIPE_SECRET, now + 299).event_id == "stripe:evt_123"
    refused(403, "stale", check_stripe, {"stripe-signature": stripe_header(body, now)}, body, STRIPE_SECRET, now + 301)
    refused(403, "No Stripe-Signature v1 signature matches", check_stripe,
            {"stripe-signature": stripe_header(body, now, "whsec_other")}, body, STRIPE_SECRET, now)
    refused(401, "no timestamp", check_stripe, {"stripe-signature": "v1=" + "a" * 64}, body, STRIPE_SECRET, now)
    refused(401, "no v1 signature", check_stripe, {"stripe-signature": f"t={now}"}, body, STRIPE_SECRET, now)
    refused(401, "key=value", check_stripe, {"stripe-signature": "garbage"}, body, STRIPE_SECRET, now)
    refused(401, "Unix timestamp", check_stripe, {"stripe-signature": "t=abc,v1=" + "a" * 64}, body, STRIPE_SECRET, now)
    refused(401, "64 hexadecimal", check_stripe, {"stripe-signature": f"t={now},v1=xyz"}, body, STRIPE_SECRET, now)
    refused(401, "missing", check_stripe, {}, body, STRIPE_SECRET, now)
    not_json = b"plain"
    plain = check_stripe({"stripe-signature": stripe_header(not_json, now)}, not_json, STRIPE_SECRET, now)
    assert plain.event_id is not None and plain.event_id.startswith(f"stripe:{now}:")


def test_slack_docs_vector_and_its_refusals() -> None:
    headers = {"x-slack-request-timestamp": str(SLACK_STAMP), "x-slack-signature": SLACK_SIGNATURE}
    ok = check_slack(headers, SLACK_BODY, SLACK_SECRET, SLACK_STAMP + 10)
    assert ok.event_id == f"slack:{SLACK_STAMP}:{SLACK_SIGNATURE[3:]}"
    refused(403, "stale", check_slack, headers, SLACK_BODY, SLACK_SECRET, SLACK_STAMP + 301)
    refused(403, "stale", check_slack, headers, SLACK_BODY, SLACK_SECRET, SLACK_STAMP - 301)
    refused(403, "does not match", check_slack, headers, SLACK_BODY + b"&x=1", SLACK_SECRET, SLACK_STAMP)
    refused(401, "X-Slack-Request-Timestamp header is missing", check_slack,
            {"x-slack-signature": SLACK_SIGNATURE}, SLACK_BODY, SLACK_SECRET, SLACK_STAMP)
    refused(401, "v0=<hex digest>", check_slack, {**headers, "x-slack-signature": "v1=" + "a" * 64}, SLACK_BODY,
            SLACK_SECRET, SLACK_STAMP)
    refused(401, "Unix timestamp", check_slack, {**headers, "x-slack-request-timestamp": "yesterday"}, SLACK_BODY,
            SLACK_SECRET, SLACK_STAMP)


def test_generic_hmac_hex_and_base64_with_prefix() -> None:
    body = b'{"a": 1}'
    digest = hmac.new(b"k3y", body, hashlib.sha256).digest()
    assert check_hmac({"x-sig": digest.hex()}, body, "k3y", header="X-Sig", encoding="hex").event_id is None
    check_hmac({"x-sig": "sha256=" + base64.b64encode(digest).decode()}, body, "k3y", header="X-Sig",
               encoding="base64", prefix="sha256=")
    refused(401, "must start with", check_hmac, {"x-sig": digest.hex()}, body, "k3y", header="X-Sig",
            encoding="hex", prefix="sha256=")
    refused(401, "not valid base64", check_hmac, {"x-sig": "%%%"}, body, "k3y", header="X-Sig", encoding="base64")
    refused(401, "32-byte", check_hmac, {"x-sig": base64.b64encode(b"short").decode()}, body, "k3y", header="X-Sig",
            encoding="base64")
    refused(403, "does not match", check_hmac, {"x-sig": digest.hex()}, body, "other", header="X-Sig", encoding="hex")
    refused(401, "missing", check_hmac, {}, body, "k3y", header="X-Sig", encoding="hex")


def test_header_token_and_basic_auth() -> None:
    check_header_token({"x-api-key": "s3cret"}, "X-API-Key", "s3cret")
    refused(403, "does not match", check_header_token, {"x-api-key": "wrong"}, "X-API-Key", "s3cret")
    refused(401, "missing", check_header_token, {}, "X-API-Key", "s3cret")
    good = "Basic " + base64.b64encode(b"ada:pa:ss").decode()
    check_basic({"authorization": good}, "ada", "pa:ss")
    failure = refused(401, "wrong", check_basic, {"authorization": good}, "ada", "other")
    assert failure.challenge and failure.challenge.startswith("Basic")
    refused(401, "Bearer", check_basic, {"authorization": "Bearer abc"}, "ada", "x")
    refused(401, "base64", check_basic, {"authorization": "Basic ###"}, "ada", "x")
    refused(401, "no ':'", check_basic, {"authorization": "Basic " + base64.b64encode(b"ada").decode()}, "ada", "x")
    refused(401, "missing", check_basic, {}, "ada", "x")
