"""Accounts: registration and password checks (argon2id).

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


async def _off_loop(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


class AccountError(ValueError):
    def __init__(self, field_errors: dict[str, str]) -> None:
        self.field_errors = field_errors
        super().__init__("; ".join(field_errors.values()))


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_registration(email: str, password: str) -> dict[str, str]:
    errors = {}
    if len(email) > 320 or not _EMAIL.match(normalize_email(email)):
        errors["email"] = "Enter a valid email address."
    if len(password) < MIN_PASSWORD:
        errors["password"] = f"Use at least {MIN_PASSWORD} characters."
    elif len(password) > MAX_PASSWORD:
        errors["password"] = f"Use at most {MAX_PASSWORD} characters."
    return errors


async def register(db: AsyncSession, email: str, password: str) -> User:
    if errors := check_registration(email, password):
        raise AccountError(errors)
    user = User(email=normalize_email(email), password_hash=await _off_loop(_hasher.hash, password))
    db.add(user)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise AccountError({"email": "An account with this email already exists."}) from None
    return user


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
