"""The vector index beside the catalog: one per model and level, kept consistent with the DB.

``core`` owns both sides. The catalog's ``embeddings`` rows say which tracks a model has embedded;
the track index holds their vectors (vector id = track id). Writes go *catalog first, index
second*: a crash in between leaves rows without vectors, which ``open_track_index`` detects (ids
and counts against the rows) and repairs by re-embedding those tracks from the feature store.
Vectors without rows (deleted or re-ingested tracks) are removed the same way.

Album and artist-page vectors are derived (mean of their tracks' vectors, re-normalised) and
rebuilt when the track index has changed since they were made.

The public functions raise :mod:`artdb.core.errors` only: the indexer's exceptions are translated
(:func:`~artdb.core.vectors.indexer_errors.indexer_errors`).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from artdb.core.config import Paths
from artdb.core.errors import CatalogError, IndexCorruptError, IndexMismatchError
from artdb.core.faults import kill_point
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.store import FeatureStore, feature_store_dir, open_feature_store
from artdb.core.learn.adapt import served_standardisation
from artdb.core.learn.backbone import SERVED_KEY
from artdb.core.learn.embedders import BackboneEmbedder, load_embedder
from artdb.core.learn.registry import active_model
from artdb.core.progress import Progress, report as report_progress
from artdb.core.vectors.aggregate import mean_normalized
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.db.models import CatalogMeta, Embedding, Model, Track, TrackCredit
from artdb.db.session import Catalog
from artdb.indexer import FaissIndex, choose_index, read_sidecar

log = logging.getLogger(__name__)
LEVELS = ("track", "album", "artist")
EMBED_BATCH = 256


def model_dir(paths: Paths, model: Model) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model.name)
    return paths.indexes / f"{model.id}-{safe}"


# What a user runs to rebuild the active model's index (``artdb index`` needs its PATH argument).
REBUILD_HINT = "`artdb index --rebuild-index PATH` (PATH: your catalog folder, ingested after the rebuild)"


def index_path(paths: Paths, model: Model, level: str = "track") -> Path:
    if level not in LEVELS:
        raise CatalogError(f"unknown index level {level!r} (one of {', '.join(LEVELS)})")
    return model_dir(paths, model) / f"{level}.faiss"


@dataclass
class SyncReport:
    model: str
    embedded: int = 0  # new vectors
    removed: int = 0  # vectors of deleted/changed tracks
    repaired: int = 0  # rows that had no vector (an interrupted write)
    dropped_rows: int = 0  # rows whose features are gone: forgotten, re-embedded on next ingest
    total: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# Model.config key: which full (re)build of the model's index the embedding rows belong to. A
# rebuild changes it in the transaction that replaces the rows; an index file of another generation
# is stale as a whole (its vectors may come from another standardisation), never patched by ids.
GENERATION_KEY = "index_generation"


def _generation(catalog: Catalog, model: Model) -> str:
    with catalog.session() as s:
        config = s.scalar(select(Model.config).where(Model.id == model.id)) or {}
    return str(config.get(GENERATION_KEY, "0"))


def _generation_of(revision: str | None) -> str:
    """The generation in a revision token (:func:`_revision`); "0" for tokens written before."""
    return revision[1:].split(":", 1)[0] if revision and revision.startswith("g") else "0"


def _revision(catalog: Catalog, model: Model) -> str:
    """A token that changes whenever the model's index generation, its embedded set, or which page
    an album or credit belongs to (curation: split, merge, undo), changes."""
    generation = _generation(catalog, model)
    with catalog.session() as s:
        n, max_id, last = s.execute(
            select(func.count(), func.max(Embedding.track_id), func.max(Embedding.created_at))
            .where(Embedding.model_id == model.id)
        ).one()
        moves = s.scalar(select(CatalogMeta.value).where(CatalogMeta.key == PAGE_CHANGES_KEY)) or "0"
    return f"g{generation}:{n}:{max_id}:{last.isoformat() if last else ''}:p{moves}"


# -- curation invalidates the derived levels ---------------------------------------------------
PAGE_CHANGES_KEY = "page_changes"


def bump_page_changes(session) -> int:
    """Count one change of album/credit ownership between pages, inside the caller's transaction.

    Album and artist-page vectors are derived from track vectors *and* the catalog's grouping, so a
    curator's split, merge or undo must make :func:`open_level_index` rebuild them: the counter is
    part of :func:`_revision`. Returns the new count.
    """
    row = session.get(CatalogMeta, PAGE_CHANGES_KEY, with_for_update=True)
    if row is None:
        row = CatalogMeta(key=PAGE_CHANGES_KEY, value="0")
        session.add(row)
    row.value = str(int(row.value) + 1)
    session.flush()
    return int(row.value)


def _embedded_ids(catalog: Catalog, model: Model) -> np.ndarray:
    with catalog.session() as s:
        ids = s.scalars(select(Embedding.track_id).where(Embedding.model_id == model.id)).all()
    return np.sort(np.asarray(ids, dtype=np.int64))


def _feature_store(paths: Paths, embedder):
    """The feature store the embedder reads, or an empty one when nothing was ingested yet."""

    # a backbone model reads the backbone's patch vectors, every other model the log-mels
    is_backbone = isinstance(embedder, BackboneEmbedder)
    config = (BackboneConfig if is_backbone else FrontendConfig).from_dict(embedder.frontend)
    if not (feature_store_dir(paths, config) / "frontend.json").exists():
        # A model registered before any ingest: create the (empty) store so readers can open it.
        FeatureStore.open(feature_store_dir(paths, config), config, mode="a").close()
    return open_feature_store(paths, config, mode="r")


def _new_index(model: Model):
    return FaissIndex(model.dim, "IDMap2,Flat", model=model.name, name="track")


def _load_or_new(paths: Paths, model: Model):
    path = index_path(paths, model)
    if not path.exists():
        return _new_index(model), True
    try:
        with indexer_errors():
            return FaissIndex.load(path, expect_model=model.name, expect_dim=model.dim), False
    except IndexMismatchError as exc:
        raise IndexMismatchError(
            f"{exc}; rebuild it with {REBUILD_HINT} (model {model.name})") from exc
    except IndexCorruptError as exc:
        log.warning("index %s is unreadable (%s): rebuilding from the catalog", path, exc)
        return _new_index(model), True


@indexer_errors()
def open_track_index(catalog: Catalog, paths: Paths, model: Model, embedder=None,
                     device: str = "cpu", repair: bool = True):
    """The model's track index, checked against the catalog and repaired if they disagree.

    An index of an older generation than the rows (a rebuild killed after its rows committed)
    is replaced by a new one, re-embedded from the feature store."""
    index, new = _load_or_new(paths, model)
    if not new and _generation_of(index.catalog_revision) != _generation(catalog, model):
        log.warning("index %s predates the rebuild its rows come from: embedding the catalog again",
                    index_path(paths, model))
        index = _new_index(model)
    rows = _embedded_ids(catalog, model)
    stored = index.index_ids()
    if len(rows) == len(stored) and np.array_equal(rows, stored):
        return index
    if not repair:
        raise IndexMismatchError(
            f"index of model {model.name} holds {len(stored)} vectors but the catalog records "
            f"{len(rows)} embedded tracks; rebuild it with {REBUILD_HINT}")
    report = SyncReport(model.name)
    _reconcile(catalog, paths, model, index, rows, stored, embedder, device, report)
    index.save(index_path(paths, model), catalog_revision=_revision(catalog, model), step=kill_point)
    log.warning("repaired index of %s: %s", model.name, report.to_dict())
    return index


def _reconcile(catalog, paths, model, index, rows, stored, embedder, device, report) -> None:
    extra = np.setdiff1d(stored, rows)
    if extra.size:
        report.removed += index.remove(extra)
    missing = np.setdiff1d(rows, stored)
    if missing.size:
        if embedder is None:

            embedder = load_embedder(model, device, paths=paths)
        with _feature_store(paths, embedder) as store:
            have = np.array([i for i in missing if int(i) in store], dtype=np.int64)
            gone = np.setdiff1d(missing, have)
            for start in range(0, len(have), EMBED_BATCH):
                ids = have[start:start + EMBED_BATCH]
                index.add(embedder.embed(store.get_many(ids)), ids)
            report.repaired += len(have)
        if gone.size:
            with catalog.session() as s:
                s.execute(delete(Embedding).where(Embedding.model_id == model.id,
                                                  Embedding.track_id.in_(gone.tolist())))
            report.dropped_rows += len(gone)


@indexer_errors()
def sync_model_index(catalog: Catalog, paths: Paths, model: Model, device: str = "cpu",
                     progress: Progress | None = None) -> SyncReport:
    """Embed every track that has features but no vector for ``model``; drop stale vectors."""

    embedder = load_embedder(model, device, paths=paths)
    report = SyncReport(model.name)
    # Vectors of deleted or re-ingested tracks (their rows are gone) are dropped here.
    index = open_track_index(catalog, paths, model, embedder, device)
    with catalog.session() as s:
        todo = s.execute(
            select(Track.id, Track.content_hash)
            .outerjoin(Embedding, (Embedding.track_id == Track.id) & (Embedding.model_id == model.id))
            .where(Embedding.track_id.is_(None)).order_by(Track.id)
        ).all()
    with _feature_store(paths, embedder) as store:
        todo = [(t, h) for t, h in todo if t in store]
        report_progress(progress, f"embed ({model.name})", 0, len(todo))
        for start in range(0, len(todo), EMBED_BATCH):
            chunk = todo[start:start + EMBED_BATCH]
            ids = np.array([t for t, _ in chunk], dtype=np.int64)
            vectors = embedder.embed(store.get_many(ids))
            # Catalog first, then the index: a crash in between is repaired on the next open.
            with catalog.session() as s:
                s.add_all(Embedding(track_id=int(t), model_id=model.id, vector_id=int(t), content_hash=h)
                          for t, h in chunk)
            kill_point("after embedding rows committed")
            index.add(vectors, ids)
            report.embedded += len(chunk)
            report_progress(progress, f"embed ({model.name})", report.embedded, len(todo))
    index = _maybe_upgrade_index_type(index, model)
    index.save(index_path(paths, model), catalog_revision=_revision(catalog, model), step=kill_point)
    report.total = index.ntotal
    return report


def _maybe_upgrade_index_type(index, model: Model):
    """Swap an exact index for an approximate one once the collection outgrows exact search."""

    spec = choose_index(index.ntotal, index.dim, memory_budget_bytes=1 << 62)
    if spec.factory == index.factory or spec.factory == "IDMap2,Flat":
        return index
    ids = index.index_ids()
    vectors = index.reconstruct(ids)
    log.info("rebuilding index of %s as %s (%d vectors)", model.name, spec.factory, len(ids))
    return FaissIndex.build(vectors, ids, spec, model=model.name, name="track")


def sync_active_index(catalog: Catalog, paths: Paths, device: str = "cpu",
                      progress: Progress | None = None) -> SyncReport | None:

    model = active_model(catalog)
    if model is None:
        return None
    return sync_model_index(catalog, paths, model, device, progress)


@indexer_errors()
def rebuild_index(catalog: Catalog, paths: Paths, model: Model, device: str = "cpu",
                  progress: Progress | None = None,
                  config_update: dict[str, Any] | None = None) -> SyncReport:
    """Embed the catalog again with ``model`` (its config updated by ``config_update``, e.g. a
    backbone's refitted standardisation) into a new index, and swap it in when complete.

    The model is loaded first: a checkpoint that does not load changes nothing. The new index is
    built beside the old one (in memory; the old file stays in place and valid). Then one
    transaction replaces the model's embedding rows, applies ``config_update`` and starts a new
    index generation (``GENERATION_KEY``), and the new file is renamed over the old
    (:meth:`~artdb.indexer.base.VectorIndex.save`). Killed between the two, the old file is of
    the previous generation, which :func:`open_track_index` replaces whole (never mixing vectors
    of two configs). Album and artist indexes follow the new revision.
    """
    with catalog.session() as s:
        row = s.get(Model, model.id)
        if row is None:
            raise CatalogError(f"model {model.name!r} is no longer registered")
        config = {**(row.config or {}), **(config_update or {}), GENERATION_KEY: uuid.uuid4().hex[:12]}
    staged = Model(id=row.id, name=row.name, kind=row.kind, version=row.version, config=config,
                   checkpoint_path=row.checkpoint_path, checksum=row.checksum, dim=row.dim)
    embedder = load_embedder(staged, device, paths=paths)
    report = SyncReport(model.name)
    with catalog.session() as s:
        tracks = s.execute(select(Track.id, Track.content_hash).order_by(Track.id)).all()
    index = _new_index(model)
    with _feature_store(paths, embedder) as store:
        todo = [(int(t), h) for t, h in tracks if t in store]
        stage = f"rebuild ({model.name})"
        report_progress(progress, stage, 0, len(todo))
        for start in range(0, len(todo), EMBED_BATCH):
            ids = np.array([t for t, _ in todo[start:start + EMBED_BATCH]], dtype=np.int64)
            index.add(embedder.embed(store.get_many(ids)), ids)
            report_progress(progress, stage, min(start + EMBED_BATCH, len(todo)), len(todo))
    index = _maybe_upgrade_index_type(index, model)
    with catalog.session() as s:
        row = s.get(Model, model.id, with_for_update=True)
        if row is None:
            raise CatalogError(f"model {model.name!r} was removed during the rebuild")
        row.config = config
        s.execute(delete(Embedding).where(Embedding.model_id == model.id))
        s.add_all(Embedding(track_id=t, model_id=model.id, vector_id=t, content_hash=h) for t, h in todo)
    model.config = config
    kill_point("after rebuild rows committed")
    index.save(index_path(paths, model), catalog_revision=_revision(catalog, model), step=kill_point)
    report.embedded = report.total = index.ntotal
    return report


# -- levels ----------------------------------------------------------------------------------------
def track_groups(catalog: Catalog, level: str, track_ids: np.ndarray) -> np.ndarray:
    """Group id (album id or main-credit page id) of each track."""
    ids = [int(t) for t in track_ids]
    with catalog.session() as s:
        if level == "album":
            mapping = dict(s.execute(select(Track.id, Track.album_id).where(Track.id.in_(ids))).all())
        elif level == "artist":
            mapping = dict(s.execute(
                select(TrackCredit.track_id, TrackCredit.page_id)
                .where(TrackCredit.track_id.in_(ids), TrackCredit.position == 0)).all())
        else:
            raise CatalogError(f"unknown level {level!r}")
    return np.array([mapping.get(t, -1) for t in ids], dtype=np.int64)


@indexer_errors()
def level_vectors(catalog: Catalog, index, level: str) -> tuple[np.ndarray, np.ndarray]:
    """``(group ids, unit vectors)`` for albums or artist pages, from the track vectors."""
    ids = index.index_ids()
    if level == "track":
        return ids, index.reconstruct(ids)
    groups = track_groups(catalog, level, ids)
    keep = groups >= 0
    return mean_normalized(index.reconstruct(ids[keep]), groups[keep])


@indexer_errors()
def open_level_index(catalog: Catalog, paths: Paths, model: Model, level: str, device: str = "cpu"):
    """The album or artist-page index, rebuilt when the track index changed since it was made."""

    track_index = open_track_index(catalog, paths, model, device=device)
    if level == "track":
        return track_index
    path = index_path(paths, model, level)
    revision = _revision(catalog, model)
    if path.exists():
        try:
            if read_sidecar(path).catalog_revision == revision:
                return FaissIndex.load(path, expect_model=model.name, expect_dim=model.dim)
        except Exception as exc:  # noqa: BLE001 - a derived index is rebuilt on any doubt
            log.warning("rebuilding %s index (%s)", level, exc)
    gids, vectors = level_vectors(catalog, track_index, level)
    index = FaissIndex.build(vectors, gids, model=model.name, name=level) if len(gids) else \
        FaissIndex(model.dim, model=model.name, name=level)
    index.save(path, catalog_revision=revision, step=kill_point)
    return index


def rebuild_active_index(catalog: Catalog, paths: Paths, device: str = "cpu",
                         progress: Progress | None = None) -> SyncReport:
    """``artdb index --rebuild-index``: the active model's vectors forgotten and the catalog embedded
    again into a new index (:func:`rebuild_index`), a backbone model's standardisation refitted on
    the catalog (``learn.adapt``) and stored with the new rows; a catalog without an active model has
    nothing to rebuild."""
    model = active_model(catalog)
    if model is None:
        raise CatalogError("no active model: nothing to rebuild")
    # a full re-embedding is when a backbone model's standardisation follows the catalog it serves;
    # it is stored with the new rows, in one transaction
    state = served_standardisation(catalog, paths, model)
    return rebuild_index(catalog, paths, model, device, progress,
                         config_update={SERVED_KEY: state} if state is not None else None)
