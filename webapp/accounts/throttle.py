"""Log-in limits: growing delays per account and per client address, kept in the database.

Every log-in attempt is counted *before* its password is checked, under two keys: the e-mail it names
(normalised; whether or not an account has it, so a limit never tells one apart) and the client address
(``client_address``). A key's first ``free`` attempts go ahead at once; after that each attempt must wait
``base · 2^(n − free)`` seconds (at most ``cap``) after the previous one, and an attempt that comes too early
is refused with 429 and ``Retry-After`` — without hashing anything. A successful log-in clears its
account's count (and takes its own attempt off the address's); a key with no attempt for ``FORGET`` starts
again from zero.

The counts live in the ``login_throttle`` table, so every web process (the production profile may run
several against PostgreSQL) shares them, and a restart forgets nothing. An attempt is counted with a
compare-and-set ``UPDATE`` (``attempts = n + 1 WHERE attempts = n``), so a burst of concurrent attempts gets
no more than the allowance: the losers of a race read again and wait like everyone else. Keys are SHA-256
digests: the table names neither e-mails nor addresses (the owner's notice keeps the last failed address).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.models import LoginThrottle as Row
from engine.netguard import Network

FORGET = timedelta(hours=1)
"""A key with no attempt for this long starts again from zero."""
NOTICE_KEPT = timedelta(days=30)
"""Failures no successful log-in has reported yet are kept this long (for an owner who comes back late)."""
_RACE_TRIES = 8


@dataclass(frozen=True)
class Limit:
    """``free`` attempts at once, then a delay doubling from ``base`` seconds up to ``cap``."""

    scope: str
    free: int
    base: float
    cap: float

    def delay(self, attempts: int) -> timedelta:
        """How long after the last attempt the next may come, ``attempts`` being counted already."""
        if attempts < self.free:
            return timedelta(0)
        return timedelta(seconds=min(self.cap, self.base * 2 ** min(attempts - self.free, 32)))


ACCOUNT = Limit("account", free=5, base=1.0, cap=900.0)
ADDRESS = Limit("address", free=20, base=1.0, cap=900.0)
"""An address gets more room than an account: several people may share one (an office behind NAT)."""


@dataclass(frozen=True)
class LoginNotice:
    """What the account's owner is told at the next successful log-in."""

    failed: int
    refused: int
    last_failed_at: datetime | None
    last_failed_address: str | None


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The socket peer; when that is a trusted proxy (``PATCHWIRE_TRUSTED_PROXIES``), the right-most
    ``X-Forwarded-For`` entry that is not one (entries left of it could be made up by the client)."""
    chain = [peer or "unknown"]
    if trusted and forwarded_for:
        chain = [hop.strip() for hop in forwarded_for.split(",")] + chain
    for hop in reversed(chain):
        try:
            ip = ip_address(hop)
        except ValueError:
            return hop[:64]
        if not any(ip in network for network in trusted):
            return str(ip)
    return chain[0][:64]


def _utcnow() -> datetime:
    return datetime.now(UTC)


clock: Callable[[], datetime] = _utcnow
"""Where the limits read the time (the one seam tests replace, to step through delays without waiting)."""


def _now() -> datetime:
    return clock()


def _key(limit: Limit, key: str) -> tuple[object, object]:
    return (Row.scope == limit.scope, Row.key == key)


async def reserve(db: AsyncSession, limit: Limit, key: str) -> float:
    """Count one attempt under ``key``: 0 if it may go ahead, else the seconds it must wait (and it is
    counted as refused instead)."""
    for _ in range(_RACE_TRIES):
        now = _now()
        row = (await db.execute(select(Row.attempts, Row.last_attempt_at).where(*_key(limit, key)))).first()
        await db.commit()  # the read ends here (SQLite cannot turn a stale read into a write): the UPDATE checks
        if row is None:
            if await _first_attempt(db, limit, key, now):
                return 0.0
            continue
        attempts = 0 if now - row.last_attempt_at > FORGET else row.attempts
        wait = (row.last_attempt_at + limit.delay(attempts) - now).total_seconds()
        if wait > 0:
            await db.execute(update(Row).where(*_key(limit, key)).values(refused=Row.refused + 1))
            await db.commit()
            return wait
        counted = await db.execute(update(Row).where(*_key(limit, key), Row.attempts == row.attempts)
                                   .values(attempts=attempts + 1, last_attempt_at=now))
        await db.commit()
        if counted.rowcount == 1:  # type: ignore[attr-defined]
            return 0.0
    return limit.base  # lost every race to concurrent attempts on the same key: this one waits


async def _first_attempt(db: AsyncSession, limit: Limit, key: str, now: datetime) -> bool:
    try:
        await db.execute(insert(Row).values(scope=limit.scope, key=key, attempts=1, last_attempt_at=now,
                                            failed=0, refused=0))
        await db.execute(delete(Row).where(  # the forgotten: bounded, whatever e-mails a client makes up
            Row.last_attempt_at < now - FORGET, or_(Row.failed == 0, Row.last_attempt_at < now - NOTICE_KEPT)))
        await db.commit()
        return True
    except IntegrityError:  # a concurrent first attempt made the row: count against it
        await db.rollback()
        return False


async def record_failure(db: AsyncSession, account_key: str, address: str) -> None:
    """A wrong password (or an unknown e-mail): kept for the owner's notice."""
    await db.execute(update(Row).where(*_key(ACCOUNT, account_key)).values(
        failed=Row.failed + 1, last_failed_at=_now(), last_failed_address=address[:64]))
    await db.commit()


async def record_success(db: AsyncSession, account_key: str, address_key: str) -> LoginNotice | None:
    """Clear the account's count and return what its owner should hear about (``None``: nothing)."""
    found = (await db.execute(select(Row.failed, Row.refused, Row.last_failed_at, Row.last_failed_address)
                              .where(*_key(ACCOUNT, account_key)))).first()
    await db.commit()
    await db.execute(delete(Row).where(*_key(ACCOUNT, account_key)))
    await release(db, ADDRESS, address_key)
    if found is None or not (found.failed or found.refused):
        return None
    return LoginNotice(found.failed, found.refused, found.last_failed_at, found.last_failed_address)


async def release(db: AsyncSession, limit: Limit, key: str) -> None:
    """Take back one counted attempt that succeeded (a log-in, a registration)."""
    await db.execute(update(Row).where(*_key(limit, key), Row.attempts > 0).values(attempts=Row.attempts - 1))
    await db.commit()


def retry_after(seconds: float) -> int:
    """Whole seconds for ``Retry-After`` (never 0: the attempt was early)."""
    return max(1, math.ceil(seconds))
