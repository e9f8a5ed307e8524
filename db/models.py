"""The catalog: SQLAlchemy 2.0 typed models.

The catalog knows names, releases, files and the bookkeeping of artdb's runs; it knows no audio,
model internals or vector engine. It is the one truth that several writers (processes, data
directories, machines) share: a recording is one track (``tracks.content_hash`` is unique, so two
writers racing on one recording cannot both insert it), and each track's vector per model is kept
here as plain float32 bytes (``embeddings.vector``), from which every data directory builds its own
vector index (keyed by ``Track.id``).

Artist pages are keyed by *normalized name* exactly as a streaming catalog keys them: two tracks
credited to "Eclipse" land on one page whoever made them (homonymy), and "Youssou N'Dour" /
"Youssou Ndour" land on two (synonymy). ``ArtistPage.disambiguation`` separates the pages that a
curator's split creates from the page ingest feeds (whose disambiguation is the empty string).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names, so Alembic migrations are portable between SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Genre(Base):
    __tablename__ = "genres"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)


class ArtistPage(Base):
    __tablename__ = "artist_pages"
    __table_args__ = (UniqueConstraint("normalized_name", "disambiguation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(500))
    normalized_name: Mapped[str] = mapped_column(String(500), index=True)
    # "" for the page ingest feeds; "1", "2", … for pages made by a curator's split.
    disambiguation: Mapped[str] = mapped_column(String(50), default="", server_default="")
    # Set when a curator merged this page into another: ingest then credits the target page.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("artist_pages.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    albums: Mapped[list[Album]] = relationship(back_populates="page")


class Album(Base):
    __tablename__ = "albums"
    __table_args__ = (UniqueConstraint("page_id", "normalized_title"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    normalized_title: Mapped[str] = mapped_column(String(500))
    # The album artist's page (tracks' credits may name other pages too: features, compilations).
    page_id: Mapped[int] = mapped_column(ForeignKey("artist_pages.id"), index=True)
    upc: Mapped[str | None] = mapped_column(String(32), index=True)
    release_date: Mapped[str | None] = mapped_column(String(10))  # as tagged: YYYY[-MM[-DD]]
    year: Mapped[int | None] = mapped_column(Integer)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"), index=True)
    genre_id: Mapped[int | None] = mapped_column(ForeignKey("genres.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    page: Mapped[ArtistPage] = relationship(back_populates="albums")
    label: Mapped[Label | None] = relationship()
    genre: Mapped[Genre | None] = relationship()
    tracks: Mapped[list[Track]] = relationship(back_populates="album")


class Track(Base):
    __tablename__ = "tracks"
    # One track per recording: writers insert with ON CONFLICT DO NOTHING, so the database (not a
    # check-then-insert) decides which of two concurrent writers gets it.
    __table_args__ = (Index("uq_tracks_content_hash", "content_hash", unique=True),)

    # Track ids are also the vector ids in the index (int64 on both sides).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    album_id: Mapped[int] = mapped_column(ForeignKey("albums.id"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    isrc: Mapped[str | None] = mapped_column(String(15), index=True)
    track_number: Mapped[int | None] = mapped_column(Integer)
    disc_number: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)  # seconds
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    audio_format: Mapped[str | None] = mapped_column(String(20))
    audio_path: Mapped[str] = mapped_column(Text, unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))  # blake2b-256 of the file's bytes
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_mtime: Mapped[float] = mapped_column(Float)
    # The original text of tag values ingest had to change to store them (NUL bytes, control
    # characters, longer than their column, numbers out of range), by field; None when none was.
    raw_tags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    album: Mapped[Album] = relationship(back_populates="tracks")
    credits: Mapped[list[TrackCredit]] = relationship(
        back_populates="track", cascade="all, delete-orphan", order_by="TrackCredit.position"
    )


class TrackCredit(Base):
    __tablename__ = "track_credits"

    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True
    )
    page_id: Mapped[int] = mapped_column(ForeignKey("artist_pages.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="main")  # main | featured
    position: Mapped[int] = mapped_column(Integer, default=0)

    track: Mapped[Track] = relationship(back_populates="credits")
    page: Mapped[ArtistPage] = relationship()


class DuplicateFile(Base):
    """A file whose bytes are a catalogued track's (same content hash) at another path: a copy, a
    compilation's track. Not a track (one track per content hash); remembered with the size and
    mtime it had, so that a rerun can settle it without reading it while both files and the track
    are as they were. Goes with its track."""

    __tablename__ = "duplicate_files"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_mtime: Mapped[float] = mapped_column(Float)
    content_hash: Mapped[str] = mapped_column(String(64))  # the bytes seen, as ``Track.content_hash``
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)


class Model(Base):
    """Model registry: one row per trained (or baseline) embedding model."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))  # cl | ml | joint | mfcc | untrained | external
    version: Mapped[str] = mapped_column(String(50))  # artdb version that made it
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checkpoint_path: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """A track's vector under a model (the vector id in every index is the track id).

    ``vector`` holds the float32 vector itself (``model.dim`` values), so a data directory that
    did not compute it can still index it; rows written before it existed hold NULL there, and the
    data directory whose feature store has the track fills it in."""

    __tablename__ = "embeddings"

    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    vector_id: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))  # the audio the vector was made from
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root: Mapped[str] = mapped_column(Text)
    manifest: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|done|interrupted|failed
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The process running it: a run left "running" by a process that provably died (same host, pid
    # gone or reused) is marked "interrupted" by the next ingest.
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_started: Mapped[str | None] = mapped_column(String(64))  # boot id + start time of the pid

    files: Mapped[list[IngestFile]] = relationship(back_populates="run")


class IngestFile(Base):
    """Per-file outcome of an ingest run: ok | updated | moved | unchanged | duplicate | error."""

    __tablename__ = "ingest_files"
    __table_args__ = (Index("ix_ingest_files_run_outcome", "run_id", "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    # What ingest changed in an accepted file's tags to store them (the originals are in
    # ``Track.raw_tags``).
    warning: Mapped[str | None] = mapped_column(Text)
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracks.id", ondelete="SET NULL"), index=True
    )

    run: Mapped[IngestRun] = relationship(back_populates="files")


class AuditRun(Base):
    __tablename__ = "audit_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), default="homonym")  # homonym | synonym
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditFinding(Base):
    """A page whose albums form several audio clusters, with the proposed split."""

    __tablename__ = "audit_findings"
    __table_args__ = (Index("ix_audit_findings_status_score", "status", "score"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("artist_pages.id"), index=True)
    n_clusters: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)  # confidence used for ranking
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # album id -> cluster
    evidence_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open|applied|rejected|superseded
    # The earlier finding of the same page whose evidence this one updates (None: the first).
    # Not a foreign key: undoing a split deletes findings of the pages it made.
    replaces_id: Mapped[int | None] = mapped_column(Integer)


class SynonymCandidate(Base):
    """Two pages with different names that sound like one artist."""

    __tablename__ = "synonym_candidates"
    __table_args__ = (Index("ix_synonym_candidates_status_score", "status", "score"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), index=True)
    page_a_id: Mapped[int] = mapped_column(ForeignKey("artist_pages.id"), index=True)
    page_b_id: Mapped[int] = mapped_column(ForeignKey("artist_pages.id"), index=True)
    audio_score: Mapped[float] = mapped_column(Float)
    name_score: Mapped[float] = mapped_column(Float)
    metadata_score: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open|applied|rejected|superseded
    # The earlier candidate of the same pair of pages whose evidence this one updates.
    replaces_id: Mapped[int | None] = mapped_column(Integer)


class CuratorDecision(Base):
    """A curator's action (split, merge, reject) with what is needed to undo it."""

    __tablename__ = "curator_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(20))  # split | merge | reject | place
    finding_kind: Mapped[str | None] = mapped_column(String(20))  # homonym | synonym
    finding_id: Mapped[int | None] = mapped_column(Integer)
    evidence_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    undo: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CatalogMeta(Base):
    """Small key/value facts about the catalog (e.g. the revision the index was written at)."""

    __tablename__ = "catalog_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
