"""In-memory state of the provider fakes: clients, codes, tokens, switches and counters.

Everything the fake server knows lives here, behind one lock (the server answers on its own thread
while a test reads and flips switches on another). ``reset()`` puts a provider back to its defaults;
the ``fake_providers`` fixture calls it before every test.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.mailbox import Mailbox

PROVIDERS = ("oauth2", "google", "slack", "notion", "telegram")
DEFAULT_ACCOUNT = "ada@example.com"
CODE_LIFETIME = 600.0  # seconds; RFC 6749 §4.1.2 recommends at most 10 minutes

# Access-token lifetimes the real providers announce (seconds).
DEFAULT_EXPIRES_IN = {"oauth2": 3600, "google": 3599, "slack": 43200, "notion": 3600, "telegram": 0}


def stable_id(prefix: str, *parts: str, length: int = 9) -> str:
    """A short id derived from ``parts`` (same account → same id across resets), like ``U0A1B2C3D``."""
    digest = hashlib.sha256(":".join(parts).encode()).hexdigest().upper()
    return prefix + digest[: max(length - len(prefix), 4)]


@dataclass
class FakeClient:
    """A registered OAuth client (Authlib's ``ClientMixin`` contract).

    ``redirect_uris`` empty means any redirect URI is accepted (handy for servers on random ports);
    ``auth_methods`` are the token-endpoint authentication methods the provider accepts.
    """

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return not self.redirect_uris or redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == "none":
            return not self.client_secret
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class FakeCode:
    """An authorization code (Authlib's ``AuthorizationCodeMixin`` contract)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    account: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float
    params: dict[str, str] = field(default_factory=dict)  # the authorize request's other parameters

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class FakeToken:
    """One issued token pair (Authlib's ``TokenMixin`` contract); revocation is a flag, never a delete."""

    provider: str
    client_id: str
    account: str | None
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_in: int
    grant_type: str
    access_revoked: bool = False
    refresh_revoked: bool = False
    clock: Any = None  # the owning ProviderState's clock (so a test can move time forward)

    def check_client(self, client: FakeClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        now = self.clock() if self.clock else time.time()
        return bool(self.expires_in) and now >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> str | None:
        return self.account

    def get_client(self) -> None:
        return None

    def access_valid(self) -> bool:
        return not self.access_revoked and not self.is_expired()


@dataclass
class RecordedRequest:
    """A request the fake received (method, path, query, lower-cased headers, form or JSON body)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class ProviderState:
    """One provider dialect's state and test switches. Attributes may be set directly by tests:

    ``expires_in`` (access-token lifetime in seconds), ``down`` (every request answers 503),
    ``delay`` (seconds before answering), ``rate_limit`` (the next N requests answer 429 with
    ``Retry-After: retry_after``), ``account`` (the signed-in user's e-mail on the consent page),
    ``auto_consent`` (authorize GET approves at once, no page), ``pkce_required``,
    ``token_rotation`` (Slack: rotating refresh tokens on; off → long-lived ``xoxb-`` token only),
    ``token_error`` (``(error, description)``: the next token request fails with it, in the dialect's shape),
    ``hold`` (requests wait at the door until ``FakeProviders.release(name)``; ``held`` counts them).
    Counters: ``code_grants``, ``refresh_grants``, ``client_credentials_grants``, ``revocations``.
    """

    def __init__(self, name: str, lock: threading.RLock) -> None:
        self.name = name
        self.lock = lock
        self.clock_offset = 0.0
        self.changed = threading.Condition(lock)  # notified on every recorded / held request
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.expires_in = DEFAULT_EXPIRES_IN[self.name]
            self.down = False
            self.delay = 0.0
            self.rate_limit = 0
            self.retry_after = 1
            self.account = DEFAULT_ACCOUNT
            self.auto_consent = False
            self.pkce_required = self.name == "oauth2"
            self.token_rotation = True
            self.token_error: tuple[str, str] | None = None
            self.hold = False
            self.held = 0
            self.clock_offset = 0.0
            self.code_grants = 0
            self.refresh_grants = 0
            self.client_credentials_grants = 0
            self.revocations = 0
            self.clients: dict[str, FakeClient] = {}
            self.codes: dict[str, FakeCode] = {}
            self.tokens: list[FakeToken] = []
            self.consented: set[tuple[str, str]] = set()  # (account, client id) pairs that consented before
            self.requests: list[RecordedRequest] = []
            self.bot_tokens: dict[str, str] = {}  # Telegram: bot token → bot username
            self.mailbox = Mailbox(self.now)  # Google: the Gmail messages (tests/fakes/mailbox.py)
            self.default_client = self.register_client(f"{self.name}-client-id", f"{self.name}-client-secret")

    # --- clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move this provider's clock forward: tokens and codes age without the test sleeping."""
        with self.lock:
            self.clock_offset += seconds

    # --- clients -------------------------------------------------------------------------------
    def register_client(self, client_id: str, client_secret: str, redirect_uris: tuple[str, ...] = (),
                        auth_methods: tuple[str, ...] | None = None) -> FakeClient:
        """Register (or replace) an OAuth client. Notion accepts HTTP Basic only, like the real one."""
        methods = auth_methods or (("client_secret_basic",) if self.name == "notion"
                                   else ("client_secret_basic", "client_secret_post"))
        client = FakeClient(client_id, client_secret, tuple(redirect_uris), methods)
        with self.lock:
            self.clients[client_id] = client
        return client

    # --- tokens --------------------------------------------------------------------------------
    def new_token(self, client_id: str, account: str | None, scope: str, grant_type: str, access_prefix: str,
                  refresh_prefix: str | None) -> FakeToken:
        token = FakeToken(
            provider=self.name, client_id=client_id, account=account, scope=scope,
            access_token=access_prefix + secrets.token_urlsafe(24),
            refresh_token=refresh_prefix + secrets.token_urlsafe(24) if refresh_prefix else None,
            issued_at=self.now(), expires_in=self.expires_in, grant_type=grant_type, clock=self.now)
        with self.lock:
            self.tokens.append(token)
        return token

    def issue_token(self, account: str | None = None, scope: str = "", client_id: str | None = None,
                    refresh: bool = True) -> FakeToken:
        """A token pair issued without a flow (as if the account had consented), for tests that need a
        connected credential quickly. Same token shapes as the token endpoint's."""
        from tests.fakes.authserver import TOKEN_PREFIXES

        access, refresh_prefix = TOKEN_PREFIXES.get(self.name, ("at-", "rt-"))
        return self.new_token(client_id or self.default_client.client_id, account or self.account, scope,
                              "authorization_code", access, refresh_prefix if refresh else None)

    def by_access_token(self, value: str) -> FakeToken | None:
        with self.lock:
            return next((t for t in self.tokens if secrets.compare_digest(t.access_token, value)), None)

    def by_refresh_token(self, value: str) -> FakeToken | None:
        with self.lock:
            return next((t for t in self.tokens if t.refresh_token
                         and secrets.compare_digest(t.refresh_token, value)), None)

    def valid_access(self, value: str | None) -> FakeToken | None:
        """The token whose access token is ``value``, if it is neither expired nor revoked."""
        token = self.by_access_token(value) if value else None
        return token if token is not None and token.access_valid() else None

    def revoke_all(self, account: str | None = None) -> int:
        """Revoke every grant (or one account's): access and refresh tokens stop working."""
        with self.lock:
            hit = [t for t in self.tokens if account is None or t.account == account]
            for token in hit:
                token.access_revoked = token.refresh_revoked = True
            self.revocations += len(hit)
            return len(hit)

    def expire_all(self) -> None:
        """Make every access token issued so far expired (refresh tokens stay valid)."""
        with self.lock:
            for token in self.tokens:
                token.expires_in = token.expires_in or 1
                token.issued_at = min(token.issued_at, self.now() - token.expires_in)

    def live_tokens(self) -> list[FakeToken]:
        with self.lock:
            return [t for t in self.tokens if t.access_valid()]

    # --- Telegram ------------------------------------------------------------------------------
    def add_bot(self, token: str | None = None, username: str = "patchwire_test_bot") -> str:
        """Register a Telegram bot token (``<id>:<secret>``) that ``getMe`` accepts; returns it."""
        token = token or f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(26)}"
        with self.lock:
            self.bot_tokens[token] = username
        return token

    # --- switches the middleware applies ---------------------------------------------------------
    def take_token_error(self) -> tuple[str, str] | None:
        with self.lock:
            error, self.token_error = self.token_error, None
            return error

    def take_rate_limit(self) -> bool:
        """True (and one fewer left) if this request must be answered with 429."""
        with self.lock:
            if self.rate_limit > 0:
                self.rate_limit -= 1
                return True
            return False

    def record(self, request: RecordedRequest) -> None:
        with self.changed:
            self.requests.append(request)
            self.changed.notify_all()

    def note_held(self, delta: int) -> None:
        with self.changed:
            self.held += delta
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[ProviderState], bool], timeout: float = 10.0) -> None:
        """Block the test until ``predicate(state)`` holds (checked on every request), or fail after
        ``timeout`` seconds. E.g. ``fake.slack.wait_for(lambda s: s.held == 2)``."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"fake {self.name}: condition not reached in {timeout} s "
                                     f"({len(self.requests)} requests, {self.held} held)")
