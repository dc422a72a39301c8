"""Accounts: registration and password checks (argon2id).

No enumeration: whether an e-mail has an account is never told apart from any other failure. A
registration that fails for a reason that is not visible in the form itself (an e-mail not accepted, a
refused password, an e-mail that has an account) gets one generic refusal, after a hash like every other
path; only the form's shape (an empty e-mail, a password too short or too long) is named. Logging in with
an unknown e-mail checks the password against a dummy hash and answers as a wrong password does.

Hashing and verifying take ~100 ms of CPU each (argon2id's defaults, on purpose) and run in a small
thread pool of their own, never on the event loop: done inline, each login or registration stopped
every live WebSocket, request and (embedded) workflow step of the process for that long. argon2-cffi
releases the GIL while it hashes. The pool bounds how many run at once (each takes 64 MiB).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.models import User

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("timing-equaliser")
HASH_THREADS = 2
_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
PASSWORD_HASHES = Counter("patchwire_password_hashes", "argon2 hashes and checks computed (log-in, registration).")


async def _off_loop(fn: Any, *args: Any) -> Any:
    PASSWORD_HASHES.inc()
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


GENERIC_REFUSAL = ("This account could not be created — check the e-mail and password, "
                   "or log in if you already have an account.")
"""The one answer to every registration failure that could tell whether an e-mail has an account."""
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyui", "qwerty123",
    "11111111", "00000000", "iloveyou", "sunshine", "princess", "football", "baseball", "welcome1", "letmein1",
    "abcdefgh", "abc12345", "passw0rd", "trustno1", "superman", "1q2w3e4r", "zaq12wsx", "patchwire"})
"""Refused as passwords (compared case-insensitively), with any password that contains the e-mail's name."""


class AccountError(ValueError):
    """A refused registration. ``field_errors`` is what the form shows; ``reason`` is the specific cause,
    for the operator's ``patchwire createuser`` only (a visitor is never told it)."""

    def __init__(self, field_errors: dict[str, str], reason: str = "") -> None:
        self.field_errors = field_errors
        super().__init__(reason or "; ".join(field_errors.values()))


def normalize_email(email: str) -> str:
    return email.strip().lower()


def form_problems(email: str, password: str) -> dict[str, str]:
    """What is wrong with the form's shape, visible in the input itself: safe to name."""
    errors = {}
    if not email.strip():
        errors["email"] = "Enter your e-mail address."
    if len(password) < MIN_PASSWORD:
        errors["password"] = f"Use at least {MIN_PASSWORD} characters."
    elif len(password) > MAX_PASSWORD:
        errors["password"] = f"Use at most {MAX_PASSWORD} characters."
    return errors


def refusal_reason(email: str, password: str) -> str | None:
    """Why a well-formed registration is refused (never shown to the visitor), or ``None``."""
    normalized = normalize_email(email)
    if len(email) > 320 or not _EMAIL.match(normalized):
        return f"{email!r} is not a valid e-mail address"
    name = normalized.split("@", 1)[0]
    if password.lower() in COMMON_PASSWORDS or (len(name) >= 3 and name in password.lower()):
        return "the password is too easy to guess (a common password, or it contains the e-mail's name)"
    return None


async def register(db: AsyncSession, email: str, password: str) -> User:
    if errors := form_problems(email, password):
        raise AccountError(errors)
    password_hash = await _off_loop(_hasher.hash, password)  # every well-formed attempt costs one hash: same time
    if reason := refusal_reason(email, password):
        raise AccountError({"form": GENERIC_REFUSAL}, reason)
    user = User(email=normalize_email(email), password_hash=password_hash)
    db.add(user)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise AccountError({"form": GENERIC_REFUSAL}, f"an account with the e-mail {email!r} exists") from None
    return user


async def any_account_exists(db: AsyncSession) -> bool:
    """False on a fresh instance: the log-in page then says how to start."""
    found = await db.scalar(select(User.id).limit(1))
    await db.commit()
    return found is not None


async def authenticate(db: AsyncSession, email: str, password: str) -> User | None:
    user = await db.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))
    await db.commit()  # ends the read: no pooled connection (or SQLite snapshot) is held while the hash runs
    if user is None:
        await _off_loop(_verify, _DUMMY_HASH, password[:MAX_PASSWORD])  # same cost whether or not the account exists
        return None
    if not await _off_loop(_verify, user.password_hash, password[:MAX_PASSWORD]):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await _off_loop(_hasher.hash, password)
        await db.commit()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
