"""retries and circuit breaker

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 01:51:04.702769
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_executions_retry_of_id', 'executions', ['retry_of_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True))

def downgrade() -> None:
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_column('paused_until')

    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_executions_retry_of_id', type_='foreignkey')
        batch_op.drop_column('retry_of_id')

