"""raw tags of cleaned tracks, per-file ingest warnings

A tag value artdb had to change to store it (NUL bytes, control characters, longer than its
column, a number out of range) is kept in full in ``tracks.raw_tags``; the run report says what
was changed in ``ingest_files.warning``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw_tags', sa.JSON(), nullable=True))
    with op.batch_alter_table('ingest_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warning', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ingest_files', schema=None) as batch_op:
        batch_op.drop_column('warning')
    with op.batch_alter_table('tracks', schema=None) as batch_op:
        batch_op.drop_column('raw_tags')
