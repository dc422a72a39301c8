"""waiting

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 01:56:46.245300
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('node_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('node_runs', schema=None) as batch_op:
        batch_op.drop_column('resume_at')

    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('resume_at')

