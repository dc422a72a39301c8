"""retention: indexes for pruning finished executions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the prune pass finds executions that finished before a cutoff without scanning the table
    op.create_index('ix_executions_finished_at', 'executions', ['finished_at'])
    # deleting an execution sets retry_of_id = NULL on its retries: without an index every deleted row
    # would scan the whole table for them (on PostgreSQL and SQLite alike)
    op.create_index('ix_executions_retry_of_id', 'executions', ['retry_of_id'])


def downgrade() -> None:
    op.drop_index('ix_executions_retry_of_id', table_name='executions')
    op.drop_index('ix_executions_finished_at', table_name='executions')
