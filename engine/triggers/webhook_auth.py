"""Webhook authentication: pure checks over (headers, raw body, secret, now), no I/O.

Presets: a header token, HTTP basic auth, and HMAC-SHA256 signatures — GitHub (``X-Hub-Signature-256``),
Stripe (``Stripe-Signature``: ``t=``, one or more ``v1=``, 300 s tolerance), Slack (``X-Slack-Signature`` v0 with
``X-Slack-Request-Timestamp``, 300 s) and a generic HMAC over the raw body in a chosen header (hex or base64,
optional prefix such as ``sha256=``). Every comparison is ``hmac.compare_digest``.

A failed check raises ``AuthFailure`` with the status to answer (401: the credentials are missing or cannot be
read — missing, empty, wrong scheme, malformed, too long; 403: they are read but wrong, stale or replayed) and a
precise message that never contains a secret. A passed check returns the event id to refuse once seen
(``webhook_events``): GitHub's ``X-GitHub-Delivery``, Stripe's event ``id`` from the body (else its timestamp and
signature), Slack's timestamp and signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

TOLERANCE = 300
"""Seconds a signed timestamp (Stripe, Slack) may be old."""
MAX_HEADER = 4096
"""A credential header longer than this is refused unread."""
MAX_EVENT_ID = 200
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class AuthFailure(Exception):
    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge
        """``WWW-Authenticate`` to send (basic auth)."""


@dataclass(frozen=True)
class Verified:
    event_id: str | None = None
    """Refuse a second request with this id (``None``: the preset has none)."""


def _header(headers: Mapping[str, str], name: str, what: str | None = None) -> str:
    """A present, non-empty header of sane length (names are looked up in lower case)."""
    value = headers.get(name.lower())
    label = what or name
    if value is None:
        raise AuthFailure(401, f"The {label} header is missing.")
    value = value.strip()
    if not value:
        raise AuthFailure(401, f"The {label} header is empty.")
    if len(value) > MAX_HEADER:
        raise AuthFailure(401, f"The {label} header is longer than {MAX_HEADER:,} characters.")
    return value


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def _hex_digest(value: str, label: str) -> bytes:
    if not _HEX64.fullmatch(value):
        raise AuthFailure(401, f"The {label} is not 64 hexadecimal digits.")
    return bytes.fromhex(value)


def _timestamp(value: str, label: str, now: float, *, future_too: bool) -> int:
    if not value.isdigit() or len(value) > 12:
        raise AuthFailure(401, f"The {label} is not a Unix timestamp in seconds.")
    stamp = int(value)
    if now - stamp > TOLERANCE or (future_too and stamp - now > TOLERANCE):
        raise AuthFailure(403, f"The {label} is more than {TOLERANCE} s away from now: the request is stale.")
    return stamp


def check_header_token(headers: Mapping[str, str], header_name: str, expected: str) -> Verified:
    value = _header(headers, header_name)
    if not hmac.compare_digest(value.encode("utf-8"), expected.strip().encode("utf-8")):
        raise AuthFailure(403, f"The {header_name} header does not match.")
    return Verified()


def check_basic(headers: Mapping[str, str], username: str, password: str) -> Verified:
    challenge = 'Basic realm="webhook", charset="UTF-8"'
    try:
        value = _header(headers, "authorization", "Authorization")
    except AuthFailure as exc:
        raise AuthFailure(401, exc.message, challenge=challenge) from None
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        raise AuthFailure(401, f"The Authorization header uses the {scheme[:20]!r} scheme; this webhook takes Basic.",
                          challenge=challenge)
    try:
        pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise AuthFailure(401, "The Basic credentials are not valid base64 of UTF-8 text.", challenge=challenge) from None
    user, colon, given = pair.partition(":")
    if not colon:
        raise AuthFailure(401, "The Basic credentials have no ':' between user name and password.", challenge=challenge)
    user_ok = hmac.compare_digest(user.encode("utf-8"), username.encode("utf-8"))
    password_ok = hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))
    if not (user_ok and password_ok):
        raise AuthFailure(401, "The user name or password is wrong.", challenge=challenge)
    return Verified()


def check_github(headers: Mapping[str, str], body: bytes, secret: str) -> Verified:
    value = _header(headers, "x-hub-signature-256", "X-Hub-Signature-256")
    scheme, sep, digest = value.partition("=")
    if not sep or scheme != "sha256":
        raise AuthFailure(401, "The X-Hub-Signature-256 header must be sha256=<hex digest>.")
    given = _hex_digest(digest, "X-Hub-Signature-256 digest")
    if not hmac.compare_digest(given, _hmac_sha256(secret, body)):
        raise AuthFailure(403, "The X-Hub-Signature-256 signature does not match the body.")
    delivery = headers.get("x-github-delivery", "").strip()
    return Verified(f"github:{delivery}"[:MAX_EVENT_ID] if delivery else None)


def _stripe_parts(value: str) -> tuple[str, list[str]]:
    stamp, signatures = "", []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise AuthFailure(401, "The Stripe-Signature header is not a list of key=value pairs (t=…,v1=…).")
        if key == "t":
            stamp = item
        elif key == "v1":
            signatures.append(item)
    if not stamp:
        raise AuthFailure(401, "The Stripe-Signature header has no timestamp (t=).")
    if not signatures:
        raise AuthFailure(401, "The Stripe-Signature header has no v1 signature.")
    return stamp, signatures


def check_stripe(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> Verified:
    stamp, signatures = _stripe_parts(_header(headers, "stripe-signature", "Stripe-Signature"))
    if not stamp.isdigit() or len(stamp) > 12:
        raise AuthFailure(401, "The Stripe-Signature timestamp is not a Unix timestamp in seconds.")
    expected = _hmac_sha256(secret, stamp.encode("ascii") + b"." + body)
    matched = None
    for signature in signatures:  # any of them (Stripe sends one per active secret while rolling it)
        if _HEX64.fullmatch(signature) and hmac.compare_digest(bytes.fromhex(signature), expected):
            matched = signature
    if matched is None:
        if not any(_HEX64.fullmatch(s) for s in signatures):
            raise AuthFailure(401, "The Stripe-Signature v1 signature is not 64 hexadecimal digits.")
        raise AuthFailure(403, "No Stripe-Signature v1 signature matches the body.")
    _timestamp(stamp, "Stripe-Signature timestamp", now, future_too=False)  # Stripe's rule: too old only
    return Verified(_stripe_event_id(body) or f"stripe:{stamp}:{matched}")


def _stripe_event_id(body: bytes) -> str | None:
    try:
        event = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    event_id = event.get("id") if isinstance(event, dict) else None
    return f"stripe:{event_id}"[:MAX_EVENT_ID] if isinstance(event_id, str) and event_id else None


def check_slack(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> Verified:
    stamp = _header(headers, "x-slack-request-timestamp", "X-Slack-Request-Timestamp")
    value = _header(headers, "x-slack-signature", "X-Slack-Signature")
    version, sep, digest = value.partition("=")
    if not sep or version != "v0":
        raise AuthFailure(401, "The X-Slack-Signature header must be v0=<hex digest>.")
    given = _hex_digest(digest, "X-Slack-Signature digest")
    _timestamp(stamp, "X-Slack-Request-Timestamp", now, future_too=True)
    if not hmac.compare_digest(given, _hmac_sha256(secret, b"v0:" + stamp.encode("ascii") + b":" + body)):
        raise AuthFailure(403, "The X-Slack-Signature signature does not match the body.")
    return Verified(f"slack:{stamp}:{digest.lower()}")


def check_hmac(headers: Mapping[str, str], body: bytes, secret: str, *, header: str, encoding: str,
               prefix: str = "") -> Verified:
    value = _header(headers, header)
    if prefix:
        if not value.startswith(prefix):
            raise AuthFailure(401, f"The {header} header must start with {prefix[:40]!r}.")
        value = value[len(prefix):]
    if encoding == "hex":
        given = _hex_digest(value, f"{header} signature")
    else:
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise AuthFailure(401, f"The {header} signature is not valid base64.") from None
        if len(given) != 32:
            raise AuthFailure(401, f"The {header} signature is not a 32-byte HMAC-SHA256 digest.")
    if not hmac.compare_digest(given, _hmac_sha256(secret, body)):
        raise AuthFailure(403, f"The {header} signature does not match the body.")
    return Verified()
