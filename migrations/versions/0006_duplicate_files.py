"""duplicate files: paths whose bytes are a catalogued track's, with their size and mtime

A file holding the same content as a catalogued track at another path (a copy, a compilation's
track) is not a track; ``duplicate_files`` remembers it (path, size, mtime, the content hash seen,
the track it duplicates), so that a rerun settles it without reading it while it, the track and
the track's file are unchanged. A row goes with its track (ON DELETE CASCADE). The table starts
empty: the duplicates of an existing catalog are remembered by their next ingest.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('duplicate_files',
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('file_mtime', sa.Float(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('track_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], name=op.f('fk_duplicate_files_track_id_tracks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('path', name=op.f('pk_duplicate_files'))
    )
    with op.batch_alter_table('duplicate_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_files_track_id'), ['track_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('duplicate_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duplicate_files_track_id'))
    op.drop_table('duplicate_files')
