"""one track per recording; vectors kept in the catalog

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

- ``tracks.content_hash`` becomes unique (index ``uq_tracks_content_hash``), so concurrent writers
  cannot both insert one recording. Recordings doubled by such races before are merged first: the
  oldest track (lowest id) of each content hash is kept; the others' ingest-file records point at
  it, their credits and embedding rows go, and albums left without tracks go too (as ``--prune``
  does). Nothing else refers to a track.
- ``embeddings.vector``: the vector itself, so every data directory sharing the catalog can build
  its index from the catalog (NULL for existing rows: filled in by the data directory whose
  feature store holds the track, on its next ``artdb index`` or index read).
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _merge_doubled_recordings(conn) -> int:
    doubled = conn.execute(sa.text(
        "SELECT t.id, t.album_id, k.keep FROM tracks t JOIN "
        "(SELECT content_hash, MIN(id) AS keep FROM tracks GROUP BY content_hash "
        " HAVING COUNT(*) > 1) k ON t.content_hash = k.content_hash "
        "WHERE t.id <> k.keep ORDER BY t.id")).all()
    if not doubled:
        return 0
    for track_id, _album_id, keep in doubled:
        params = {"t": track_id, "keep": keep}
        conn.execute(sa.text("UPDATE ingest_files SET track_id = :keep WHERE track_id = :t"), params)
        conn.execute(sa.text("DELETE FROM track_credits WHERE track_id = :t"), params)
        conn.execute(sa.text("DELETE FROM embeddings WHERE track_id = :t"), params)
        conn.execute(sa.text("DELETE FROM tracks WHERE id = :t"), params)
    for album_id in sorted({album_id for _, album_id, _ in doubled}):
        conn.execute(sa.text(
            "DELETE FROM albums WHERE id = :a AND NOT EXISTS "
            "(SELECT 1 FROM tracks WHERE tracks.album_id = :a)"), {"a": album_id})
    log.warning("merged %d doubled recording(s) into the oldest track of each", len(doubled))
    return len(doubled)


def upgrade() -> None:
    _merge_doubled_recordings(op.get_bind())
    op.drop_index('ix_tracks_content_hash', table_name='tracks')
    op.create_index('uq_tracks_content_hash', 'tracks', ['content_hash'], unique=True)
    op.add_column('embeddings', sa.Column('vector', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('embeddings', schema=None) as batch_op:
        batch_op.drop_column('vector')
    op.drop_index('uq_tracks_content_hash', table_name='tracks')
    op.create_index('ix_tracks_content_hash', 'tracks', ['content_hash'], unique=False)
