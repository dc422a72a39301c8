"""the executions table: indexes for its owner-scoped, filtered keyset pages

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# each serves one filter of /executions as a backwards range scan by id (webapp/executions/listing.py)
INDEXES = {
    'ix_executions_owner_id': ['owner_id', 'id'],
    'ix_executions_owner_status_id': ['owner_id', 'status', 'id'],
    'ix_executions_owner_trigger_id': ['owner_id', 'trigger', 'id'],
    'ix_executions_workflow_id': ['workflow_id', 'id'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, 'executions', columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name='executions')
