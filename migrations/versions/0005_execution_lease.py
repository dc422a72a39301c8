"""execution lease and interruption count

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('interruptions', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('interruptions')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_token')
