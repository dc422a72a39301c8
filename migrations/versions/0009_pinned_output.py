"""test while building: a node's pinned output, an execution's scope

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    # editor test data: not part of the versioned graph, never used by production triggers
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned_output', JSON, nullable=True))
    # the node ids a test run from the editor may run (NULL: every node, as always)
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('scope')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_column('pinned_output')
