"""Client-side helpers for tests that talk to the fakes directly (the fakes' own tests, and tests that
need a code or a token without going through Patchwire): PKCE pairs and the consent round trip."""

from __future__ import annotations

import base64
import hashlib
import secrets
from contextlib import nullcontext
from urllib.parse import parse_qs, urlsplit

import httpx


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4.1–4.2."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent(authorize_url: str, params: dict[str, str] | None = None, decision: str = "allow",
            http: httpx.Client | None = None) -> dict[str, str]:
    """Open the consent page, press Allow (or Deny), and return the redirect's query parameters
    (``code`` + ``state``, or ``error``). Raises if the page is not a consent page."""
    with httpx.Client(timeout=10) if http is None else nullcontext(http) as client:
        page = client.get(authorize_url, params=params or None)  # {} would drop the URL's own query
        if page.status_code == 302:  # auto_consent
            return query_of(page.headers["location"])
        if page.status_code != 200 or 'name="decision"' not in page.text:
            raise AssertionError(f"no consent page: {page.status_code} {page.text[:300]}")
        decided = client.post(str(page.url), data={"decision": decision})
    if decided.status_code != 302:
        raise AssertionError(f"the decision did not redirect: {decided.status_code} {decided.text[:300]}")
    return query_of(decided.headers["location"])


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
