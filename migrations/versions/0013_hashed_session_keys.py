"""sessions: stored under the SHA-256 of their id, never the id itself (webapp/sessions.py)

Empty and expired sessions are deleted first (before this version every cookieless request stored an
empty one, so an old table can hold many); the live ones are re-keyed, so nobody is logged out. A
downgrade cannot turn a hash back into an id: it deletes every session (everyone logs in again).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

EMPTY_SESSION = b'{}'
"""How Litestar stores a session with nothing in it."""


def upgrade() -> None:
    sessions = sa.table('sessions', sa.column('key', sa.String), sa.column('data', sa.LargeBinary),
                        sa.column('expires_at', sa.DateTime(timezone=True)))
    conn = op.get_bind()
    conn.execute(sa.delete(sessions).where(sessions.c.data == EMPTY_SESSION))
    conn.execute(sa.delete(sessions).where(sessions.c.expires_at <= datetime.now(UTC)))
    for (key,) in conn.execute(sa.select(sessions.c.key)).fetchall():
        hashed = hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()
        conn.execute(sa.update(sessions).where(sessions.c.key == key).values(key=hashed))


def downgrade() -> None:
    op.execute('DELETE FROM sessions')
