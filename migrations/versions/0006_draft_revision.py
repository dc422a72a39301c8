"""draft revision: workflows count their draft's changes; a version records the revision it pinned

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft_revision', sa.Integer(), server_default='0', nullable=False))
    # versions pinned before this migration have none: the first start after it compares the draft
    # with the newest version as before and records the revision on it
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft_revision', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_workflow_versions_draft_revision', ['workflow_id', 'draft_revision'])


def downgrade() -> None:
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_workflow_versions_draft_revision', type_='unique')
        batch_op.drop_column('draft_revision')
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_column('draft_revision')
