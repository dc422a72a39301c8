"""Key rings, users and credentials for the credential tests (engine, webapp, e2e)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.credentials import Key, KeyRing, create_credential
from engine.models import Credential, Node, User, Workflow
from nodes.credentials import credential_registry


def ring(*ids: str, keys: dict[str, Key] | None = None) -> KeyRing:
    """A key ring of new random keys with these ids (first seals); ``keys`` reuses given ones by id."""
    given = keys or {}
    return KeyRing(tuple(given.get(i) or Key(i, secrets.token_bytes(32)) for i in ids or ("k1",)), "test")


async def user(session: AsyncSession, email: str | None = None) -> int:
    row = User(email=email or f"u{secrets.token_hex(4)}@example.com", password_hash="x")
    session.add(row)
    await session.flush()
    return row.id


async def credential(session: AsyncSession, keys: KeyRing, owner_id: int, *, type_name: str = "http_bearer",
                     name: str | None = None, public: dict[str, Any] | None = None,
                     secret: dict[str, Any] | None = None) -> Credential:
    return await create_credential(session, keys, credential_registry(), owner_id=owner_id, type_name=type_name,
                                   name=name or f"cred {secrets.token_hex(3)}", public=public or {},
                                   secret=secret if secret is not None else {"token": secrets.token_urlsafe(24)})


async def workflow_using(session: AsyncSession, owner_id: int, credential_id: int, name: str = "Uses it") -> int:
    """A workflow whose draft has an HTTP Request node naming the credential."""
    wf = Workflow(owner_id=owner_id, name=name)
    session.add(wf)
    await session.flush()
    session.add(Node(id=secrets.token_hex(8), workflow_id=wf.id, type_name="http_request", name="Call",
                     config={"url": "https://example.com", "credential": credential_id}))
    await session.flush()
    return wf.id
