"""publish: a version records when (and by whom) it was published

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('published_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_workflow_versions_published_by_id_users', 'users', ['published_by_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('ix_workflow_versions_published', ['workflow_id', 'published_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_versions_published')
        batch_op.drop_constraint('fk_workflow_versions_published_by_id_users', type_='foreignkey')
        batch_op.drop_column('published_by_id')
        batch_op.drop_column('published_at')
