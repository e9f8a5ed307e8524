"""stable findings: a finding records the one whose evidence it updates

An audit or a synonym search keeps a finding whose evidence (page and proposed split, or pair of
pages and their albums) is unchanged; only changed evidence makes a new finding, and
``replaces_id`` names the finding of the same page (or pair of pages) it replaces.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('synonym_candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('synonym_candidates', schema=None) as batch_op:
        batch_op.drop_column('replaces_id')
    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.drop_column('replaces_id')
