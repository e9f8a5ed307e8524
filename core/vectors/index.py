"""The vector index beside the catalog: one per model and level, kept consistent with the DB.

``core`` owns both sides. The catalog is the truth that every writer shares: its ``embeddings``
rows say which tracks a model has embedded, from which audio (``content_hash``), and hold the
vectors themselves (``vector``, float32). The track index in a data directory is that directory's
own copy, vector id = track id, built from the catalog: several data directories (homes) may
share one catalog, each with its own feature store and index.

Writes go *catalog first, index second*: a vector is embedded from this home's feature store and
inserted as a row (ON CONFLICT DO NOTHING: another writer may have embedded the same track), then
added to the local index. Reconciliation (:func:`open_track_index`, and every sync) brings the
local index in line with the rows and never the other way round: vectors without a row, or made
from other audio than the row's (a track another writer re-ingested), leave the local index;
rows without a local vector are copied from the catalog. No reconciliation deletes a row, so a
reader or another home can never drop vectors it did not write. Rows only go when their track's
audio changes or the track goes (ingest) or on ``--rebuild-index``. A local file records which
audio each local vector was made from (``track.content.npy``), and an exclusive lock in the
model's directory (``index.lock``) serialises the processes of one home that rewrite its index.

Album and artist-page vectors are derived (mean of their tracks' vectors, re-normalised) and
rebuilt when the track index has changed since they were made.

The public functions raise :mod:`artdb.core.errors` only: the indexer's exceptions are translated
(:func:`~artdb.core.vectors.indexer_errors.indexer_errors`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update

from artdb.core.config import Paths
from artdb.core.errors import CatalogError, IndexCorruptError, IndexMismatchError
from artdb.core.faults import kill_point
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.provenance import content_key, current_features
from artdb.core.features.store import FeatureStore, feature_store_dir, open_feature_store
from artdb.core.learn.adapt import served_standardisation
from artdb.core.learn.backbone import SERVED_KEY
from artdb.core.learn.embedders import BACKBONE_KIND, BackboneEmbedder, load_embedder
from artdb.core.learn.registry import active_model
from artdb.core.progress import Progress, report as report_progress
from artdb.core.vectors.aggregate import mean_normalized
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.db.models import CatalogMeta, Embedding, Model, Track, TrackCredit, utcnow
from artdb.db.session import Catalog, insert_ignoring_conflicts
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
    embedded: int = 0  # new vectors (embedded here, rows written)
    removed: int = 0  # local vectors without a row, or made from other audio than the row's
    copied: int = 0  # vectors taken from the catalog into the local index (another writer's, or
    #                  lost by an interrupted index write)
    filled: int = 0  # rows of an older catalog without a vector, embedded here and filled in
    unavailable: int = 0  # rows without a vector whose features this home lacks: not indexed here
    total: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# Model.config key: which full (re)build of the model's index the embedding rows belong to. A
# rebuild changes it in the transaction that replaces the rows; it is part of the model's function
# (``_model_key``), so every home's copies made before it are stale as a whole, never patched by ids.
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


def _model_key(model: Model) -> int:
    """An int64 that changes whenever the function a model embeds with may change (its config,
    e.g. a standardisation refitted by a rebuild, its checkpoint, its size)."""
    token = json.dumps([model.config, model.checksum, model.dim], sort_keys=True, default=str)
    return int(hashlib.sha256(token.encode()).hexdigest()[:16], 16) - (1 << 63)


def _vector_key(model: Model, content_hash: str) -> int:
    """What a vector was made from, as one int64: the audio (its content hash) and the model's
    function. A local vector whose key differs from its row's is stale."""
    return content_key(content_hash) ^ _model_key(model)


def _pack(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


@dataclass
class _Rows:
    """The catalog's embedding rows of one model, sorted by track id."""

    ids: np.ndarray  # int64
    content: np.ndarray  # int64 (``_vector_key`` of the row's content hash, under today's model)
    has_vector: np.ndarray  # bool

    @classmethod
    def read(cls, catalog: Catalog, model: Model) -> _Rows:
        with catalog.session() as s:
            rows = s.execute(
                select(Embedding.track_id, Embedding.content_hash, Embedding.vector.is_not(None))
                .where(Embedding.model_id == model.id).order_by(Embedding.track_id)).all()
        return cls(np.array([r[0] for r in rows], dtype=np.int64),
                   np.array([_vector_key(model, r[1]) for r in rows], dtype=np.int64),
                   np.array([bool(r[2]) for r in rows], dtype=bool))


# -- the local copy: which audio each vector of this home's index was made from ---------------------
def content_path(paths: Paths, model: Model) -> Path:
    return model_dir(paths, model) / "track.content.npy"


def _load_content(paths: Paths, model: Model) -> dict[int, int]:
    """track id -> ``_vector_key`` of what its local vector was made from (empty when unknown: an
    index written before this file existed, whose vectors are then taken as current)."""
    try:
        pairs = np.load(content_path(paths, model), allow_pickle=False)
        return dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
    except (OSError, ValueError, IndexError) as exc:
        if content_path(paths, model).exists():
            log.warning("%s unreadable (%s): local vectors taken as current", content_path(paths, model), exc)
        return {}


def _save_local(index, paths: Paths, model: Model, content: dict[int, int], revision: str) -> None:
    """Index first, then the provenance of its vectors: a crash in between leaves provenance that
    disagrees with the rows, so those vectors are copied from the catalog again (never kept stale)."""
    index.save(index_path(paths, model), catalog_revision=revision, step=kill_point)
    ids = index.index_ids()
    pairs = np.stack([ids, np.array([content[int(i)] for i in ids], dtype=np.int64)], axis=1) \
        if len(ids) else np.empty((0, 2), np.int64)
    target = content_path(paths, model)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, pairs.astype(np.int64))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


@contextlib.contextmanager
def _index_lock(paths: Paths, model: Model, wait: bool) -> Iterator[bool]:
    """Exclusive right to rewrite this home's index of ``model`` (flock on ``index.lock``,
    released by the kernel if the holder dies). ``wait=False`` yields False when another process
    holds it, instead of waiting."""
    directory = model_dir(paths, model)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "index.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            log.info("waiting for another process writing the index of %s in %s", model.name, directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)


def _differences(index, content: dict[int, int], rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """``(stale, missing)``: local vectors the rows do not back (no row, or made from other audio
    than the row's), and rows with no local vector."""
    stored = index.index_ids()
    missing = np.setdiff1d(rows.ids, stored)
    if not len(rows.ids):
        return stored, missing
    pos = np.minimum(np.searchsorted(rows.ids, stored), len(rows.ids) - 1)
    has_row = rows.ids[pos] == stored
    made_from = rows.content[pos].copy()  # unknown provenance (an older index): taken as current
    if content:
        known_ids = np.fromiter(content.keys(), np.int64, len(content))
        known = np.fromiter(content.values(), np.int64, len(content))
        order = np.argsort(known_ids)
        known_ids, known = known_ids[order], known[order]
        at = np.minimum(np.searchsorted(known_ids, stored), len(known_ids) - 1)
        hit = known_ids[at] == stored
        made_from[hit] = known[at[hit]]
    return stored[~has_row | (made_from != rows.content[pos])], missing


class _LazyEmbedder:
    """The model's embedder, loaded (checkpoint read) only when something must be embedded here."""

    def __init__(self, model: Model, paths: Paths, device: str, embedder=None):
        self.model, self.paths, self.device, self._embedder = model, paths, device, embedder

    def get(self):
        if self._embedder is None:
            self._embedder = load_embedder(self.model, self.device, paths=self.paths)
        return self._embedder


def _store_config(model: Model, embedder: _LazyEmbedder) -> FrontendConfig | BackboneConfig:
    """The features ``model`` embeds: a backbone model reads the backbone's patch vectors, every
    other model the log-mels. Taken from the model's registered config (no checkpoint read), else
    from its embedder."""
    config = model.config or {}
    if model.kind == BACKBONE_KIND and config.get("backbone"):
        return BackboneConfig.from_dict(config["backbone"])
    if model.kind != BACKBONE_KIND and config.get("frontend"):
        return FrontendConfig.from_dict(config["frontend"])
    loaded = embedder.get()
    kind = BackboneConfig if isinstance(loaded, BackboneEmbedder) else FrontendConfig
    return kind.from_dict(loaded.frontend)


def model_store_config(model: Model, paths: Paths) -> FrontendConfig | BackboneConfig:
    """The config of the feature store ``model`` embeds from (log-mels or backbone features)."""
    return _store_config(model, _LazyEmbedder(model, paths, "cpu"))


def store_vectors(catalog: Catalog, model: Model, rows: list[tuple[int, str]], vectors: np.ndarray) -> int:
    """Write vectors made elsewhere (a Dask worker) as ``model``'s embedding rows of ``rows`` =
    (track id, content hash of the audio they were made from), skipping tracks that have a row;
    the local index copies them from the catalog at its next sync. Nothing is written when the
    model was rebuilt since ``model`` was read (its vectors are of the old function). Returns the
    rows written."""
    if not rows:
        return 0
    with catalog.session() as s:
        config = s.scalar(select(Model.config).where(Model.id == model.id).with_for_update()) or {}
        if config.get(GENERATION_KEY, "0") != (model.config or {}).get(GENERATION_KEY, "0"):
            log.info("model %s was rebuilt meanwhile: %d vectors of the old one not written",
                     model.name, len(rows))
            return 0
        written = s.scalars(insert_ignoring_conflicts(s, Embedding).values([
            dict(track_id=int(t), model_id=model.id, vector_id=int(t), content_hash=h, vector=_pack(v),
                 created_at=utcnow()) for (t, h), v in zip(rows, vectors)]).returning(Embedding.track_id))
        count = len(list(written))
    kill_point("after embedding rows committed")
    return count


def _feature_store(paths: Paths, model: Model, embedder: _LazyEmbedder):
    """This home's feature store that the model reads, or an empty one when nothing was ingested
    here yet."""
    config = _store_config(model, embedder)
    if not (feature_store_dir(paths, config) / "frontend.json").exists():
        # A model registered before any ingest: create the (empty) store so readers can open it.
        FeatureStore.open(feature_store_dir(paths, config), config, mode="a").close()
    return open_feature_store(paths, config, mode="r")


def _current(catalog: Catalog, model: Model) -> Model:
    """``model`` as the catalog has it now (a rebuild elsewhere may have changed its config)."""
    with catalog.session() as s:
        row = s.get(Model, model.id)
    if row is None:
        raise CatalogError(f"model {model.name!r} is no longer registered")
    return row


def _new_index(model: Model):
    return FaissIndex(model.dim, "IDMap2,Flat", model=model.name, name="track")


def _load_local(catalog: Catalog, paths: Paths, model: Model) -> tuple[object, dict[int, int]]:
    """This home's index of the model and what each of its vectors was made from; an index of
    another generation than the rows (a rebuild here or elsewhere, or one killed after its rows
    committed) is dropped whole: the catalog's vectors replace it."""
    index, new = _load_or_new(paths, model)
    if not new and _generation_of(index.catalog_revision) != _generation(catalog, model):
        log.info("index %s predates the rebuild the catalog's rows come from: copying them again",
                 index_path(paths, model))
        return _new_index(model), {}
    return index, _load_content(paths, model)


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


def _copy_from_catalog(catalog: Catalog, model: Model, index, content: dict[int, int],
                       ids: np.ndarray) -> int:
    """Add the catalog's vectors of ``ids`` (rows that hold one) to the local index."""
    copied = 0
    for start in range(0, len(ids), EMBED_BATCH):
        chunk = [int(i) for i in ids[start:start + EMBED_BATCH]]
        with catalog.session() as s:
            rows = s.execute(select(Embedding.track_id, Embedding.content_hash, Embedding.vector)
                             .where(Embedding.model_id == model.id, Embedding.track_id.in_(chunk),
                                    Embedding.vector.is_not(None))).all()
        if not rows:
            continue
        vectors = np.stack([np.frombuffer(v, dtype="<f4") for _, _, v in rows])
        if vectors.shape[1] != model.dim:
            raise IndexMismatchError(f"the catalog holds {vectors.shape[1]}-d vectors for model "
                                     f"{model.name}, which is {model.dim}-d")
        index.add(vectors.astype(np.float32), np.array([t for t, _, _ in rows], dtype=np.int64))
        content.update((int(t), _vector_key(model, h)) for t, h, _ in rows)
        copied += len(rows)
    return copied


def _fill_vectors(catalog: Catalog, paths: Paths, model: Model, index, content: dict[int, int],
                  rows: _Rows, ids: np.ndarray, embedder: _LazyEmbedder, report: SyncReport) -> None:
    """Rows of an older catalog without a vector: embed those whose features this home holds, and
    write the vector into the row (the catalog then serves it to every home)."""
    row_content = dict(zip(rows.ids.tolist(), rows.content.tolist()))
    with catalog.session() as s:
        tracks = s.execute(select(Embedding.track_id, Embedding.content_hash).where(
            Embedding.model_id == model.id, Embedding.track_id.in_(ids.tolist()))).all()
    with _feature_store(paths, model, embedder) as store:
        have = np.array(sorted(current_features(store, tracks)), dtype=np.int64)
        report.unavailable += len(ids) - len(have)
        for start in range(0, len(have), EMBED_BATCH):
            chunk = have[start:start + EMBED_BATCH]
            vectors = embedder.get().embed(store.get_many(chunk))
            with catalog.session() as s:
                for t, v in zip(chunk.tolist(), vectors):
                    s.execute(update(Embedding).where(
                        Embedding.model_id == model.id, Embedding.track_id == t,
                        Embedding.vector.is_(None)).values(vector=_pack(v)))
            index.add(vectors, chunk)
            content.update((t, row_content[t]) for t in chunk.tolist())
            report.filled += len(chunk)


def _reconcile(catalog: Catalog, paths: Paths, model: Model, index, content: dict[int, int],
               embedder: _LazyEmbedder, report: SyncReport) -> None:
    """Bring the local index in line with the catalog's rows (the catalog is never changed here,
    except that a row without a vector gets the one embedded from this home's features)."""
    rows = _Rows.read(catalog, model)
    stale, _ = _differences(index, content, rows)
    if stale.size:
        report.removed += index.remove(stale)
        for i in stale.tolist():
            content.pop(i, None)
    # Vectors of an index written before provenance was recorded are taken as current.
    for i in np.setdiff1d(index.index_ids(), np.fromiter(content.keys(), np.int64, len(content))).tolist():
        content[i] = int(rows.content[np.searchsorted(rows.ids, i)])
    missing = np.setdiff1d(rows.ids, index.index_ids())  # stale vectors of rows come back new
    if missing.size:
        with_vector = rows.has_vector[np.searchsorted(rows.ids, missing)]
        report.copied += _copy_from_catalog(catalog, model, index, content, missing[with_vector])
        if (~with_vector).any():
            _fill_vectors(catalog, paths, model, index, content, rows, missing[~with_vector],
                          embedder, report)
    if report.unavailable:
        log.warning("%d tracks embedded with %s in the catalog have no vector there and no features "
                    "in %s: not in this home's index (run `artdb index` where their features are)",
                    report.unavailable, model.name, paths.home)


@indexer_errors()
def open_track_index(catalog: Catalog, paths: Paths, model: Model, embedder=None,
                     device: str = "cpu", repair: bool = True):
    """This home's index of the model, brought in line with the catalog when they disagree
    (vectors other writers added are copied from the catalog; no catalog row is ever deleted).
    ``repair=False`` raises :class:`IndexMismatchError` instead."""
    model = _current(catalog, model)
    index, content = _load_local(catalog, paths, model)
    if not getattr(index, "assignment_exact", True):
        log.warning("index %s was built before vectors were placed in their nearest list exactly: "
                    "searches may miss some tracks until the next `artdb index` rebuilds it",
                    index_path(paths, model))
    stale, missing = _differences(index, content, _Rows.read(catalog, model))
    if not stale.size and not missing.size:
        return index
    if not repair:
        raise IndexMismatchError(
            f"index of model {model.name} in {paths.home} holds {index.ntotal} vectors, "
            f"{len(stale)} of them not backed by the catalog, and lacks {len(missing)} that the "
            f"catalog records; rebuild it with {REBUILD_HINT}")
    with _index_lock(paths, model, wait=False) as locked:
        if locked:  # another process may have brought it in line meanwhile
            index, content = _load_local(catalog, paths, model)
        report = SyncReport(model.name)
        _reconcile(catalog, paths, model, index, content, _LazyEmbedder(model, paths, device, embedder),
                   report)
        if locked:  # else a writer holds it and saves its own reconciled copy: use this one in memory
            _save_local(index, paths, model, content, _revision(catalog, model))
    log.info("index of %s brought in line with the catalog: %s", model.name, report.to_dict())
    return index


@indexer_errors()
def sync_model_index(catalog: Catalog, paths: Paths, model: Model, device: str = "cpu",
                     progress: Progress | None = None) -> SyncReport:
    """Embed every track whose features this home holds and that the model has not embedded yet
    (rows first, then the local index), and bring the local index in line with the catalog."""
    model = _current(catalog, model)
    report = SyncReport(model.name)
    embedder = _LazyEmbedder(model, paths, device)
    with _index_lock(paths, model, wait=True):
        index, content = _load_local(catalog, paths, model)
        _reconcile(catalog, paths, model, index, content, embedder, report)
        with catalog.session() as s:
            # Tracks without a row, and tracks whose row was made from audio they no longer have
            # (written by a writer that embedded them while another re-ingested them).
            todo = s.execute(
                select(Track.id, Track.content_hash, Embedding.content_hash)
                .outerjoin(Embedding, (Embedding.track_id == Track.id) & (Embedding.model_id == model.id))
                .where(Embedding.track_id.is_(None) | (Embedding.content_hash != Track.content_hash))
                .order_by(Track.id)
            ).all()
        if todo:
            with _feature_store(paths, model, embedder) as store:
                current = set(current_features(store, [(t, h) for t, h, _ in todo]))
                todo = [tuple(row) for row in todo if row[0] in current]
                report_progress(progress, f"embed ({model.name})", 0, len(todo))
                for start in range(0, len(todo), EMBED_BATCH):
                    chunk = todo[start:start + EMBED_BATCH]
                    ids = np.array([t for t, _, _ in chunk], dtype=np.int64)
                    vectors = embedder.get().embed(store.get_many(ids))
                    report.embedded += _insert_rows(catalog, model, index, content, chunk, vectors)
                    report_progress(progress, f"embed ({model.name})", start + len(chunk), len(todo))
            # Rows another writer inserted first (same tracks, at the same time): theirs are copied.
            _reconcile(catalog, paths, model, index, content, embedder, report)
        index = _maybe_upgrade_index_type(index, model)
        _save_local(index, paths, model, content, _revision(catalog, model))
    report.total = index.ntotal
    return report


def _insert_rows(catalog: Catalog, model: Model, index, content: dict[int, int],
                 chunk: list[tuple[int, str, str | None]], vectors: np.ndarray) -> int:
    """Catalog first, then the index: rows (with their vectors) for ``chunk`` = (track id, its
    content hash, the content hash of its outdated row or None), replacing outdated rows and
    skipping tracks another writer embedded meanwhile. A crash before the index write is repaired
    on the next open (the vectors are in the catalog)."""
    with catalog.session() as s:
        # A rebuild that began a new generation since this embedder was loaded: these vectors are
        # of the old function and are not written (the next sync embeds them with the new one).
        config = s.scalar(select(Model.config).where(Model.id == model.id).with_for_update()) or {}
        if config.get(GENERATION_KEY, "0") != (model.config or {}).get(GENERATION_KEY, "0"):
            log.info("model %s was rebuilt meanwhile: %d vectors of the old one not written",
                     model.name, len(chunk))
            return 0
        for t, _, old in chunk:
            if old is not None:
                s.execute(delete(Embedding).where(Embedding.model_id == model.id, Embedding.track_id == t,
                                                  Embedding.content_hash == old))
        inserted = set(s.scalars(
            insert_ignoring_conflicts(s, Embedding).values([
                dict(track_id=int(t), model_id=model.id, vector_id=int(t), content_hash=h,
                     vector=_pack(v), created_at=utcnow()) for (t, h, _), v in zip(chunk, vectors)])
            .returning(Embedding.track_id)))
    kill_point("after embedding rows committed")
    keep = [i for i, (t, _, _) in enumerate(chunk) if t in inserted]
    if keep:
        ids = np.array([chunk[i][0] for i in keep], dtype=np.int64)
        index.remove(ids[index.contains(ids)])  # a vector of the outdated row
        index.add(vectors[keep], ids)
        content.update((chunk[i][0], _vector_key(model, chunk[i][1])) for i in keep)
    return len(keep)


def _maybe_upgrade_index_type(index, model: Model):
    """Swap an exact index for an approximate one once the collection outgrows exact search, and
    rebuild (from its own vectors) an index whose vectors were not placed in their nearest list
    (built before exact assignment: ``FaissIndex.assignment_exact``)."""

    spec = choose_index(index.ntotal, index.dim, memory_budget_bytes=1 << 62)
    misplaced = not getattr(index, "assignment_exact", True)
    if not misplaced and (spec.factory == index.factory or spec.factory == "IDMap2,Flat"):
        return index
    ids = index.index_ids()
    vectors = index.reconstruct(ids)
    if misplaced:
        log.warning("index of %s (%s, %d vectors) was built before vectors were placed in their "
                    "nearest list exactly; some sit where no search looks: rebuilding it as %s",
                    model.name, index.factory, len(ids), spec.factory)
    else:
        log.info("rebuilding index of %s as %s (%d vectors)", model.name, spec.factory, len(ids))
    return FaissIndex.build(vectors, ids, spec, model=model.name, name="track")


def sync_active_index(catalog: Catalog, paths: Paths, device: str = "cpu",
                      progress: Progress | None = None) -> SyncReport | None:

    model = active_model(catalog)
    if model is None:
        return None
    return sync_model_index(catalog, paths, model, device, progress)


# Embeds batches of stored features with a (staged) model elsewhere, e.g. on a Dask cluster
# (``artdb.core.ingest.cluster``): ``embed_many(model, batches)`` yields one vector array per batch.
EmbedMany = Callable[[Model, Iterable[np.ndarray]], Iterator[np.ndarray]]


@indexer_errors()
def rebuild_index(catalog: Catalog, paths: Paths, model: Model, device: str = "cpu",
                  progress: Progress | None = None,
                  config_update: dict[str, Any] | None = None,
                  embed_many: EmbedMany | None = None) -> SyncReport:
    """Embed again, with ``model`` (its config updated by ``config_update``, e.g. a backbone's
    refitted standardisation), every track whose current features this home holds, into a new
    index, and swap it in when complete.

    The model is loaded first: a checkpoint that does not load changes nothing. The new index is
    built beside the old one (in memory; the old file stays in place and valid). Then one
    transaction applies ``config_update``, starts a new index generation (``GENERATION_KEY``) and
    replaces the rows of the tracks embedded here (with their vectors). The rows of other tracks
    (another home's, whose features are not here) stay, unless the rebuild changed the model's
    function (``config_update``): then every row goes, and each home embeds its own tracks again
    on its next sync. The new generation makes every home's copies stale as a whole (each copies
    the catalog's vectors again); killed after the transaction, this home's old file is replaced
    the same way, never mixing two configs. Album and artist indexes follow the new revision.
    ``embed_many``: where the embedding runs (default: here, with the loaded model).
    """
    with catalog.session() as s:
        row = s.get(Model, model.id)
        if row is None:
            raise CatalogError(f"model {model.name!r} is no longer registered")
        old_config = dict(row.config or {})
    config = {**old_config, **(config_update or {}), GENERATION_KEY: uuid.uuid4().hex[:12]}
    function_changed = {k: v for k, v in config.items() if k != GENERATION_KEY} != \
        {k: v for k, v in old_config.items() if k != GENERATION_KEY}
    staged = Model(id=row.id, name=row.name, kind=row.kind, version=row.version, config=config,
                   checkpoint_path=row.checkpoint_path, checksum=row.checksum, dim=row.dim)
    embedder = _LazyEmbedder(staged, paths, device, load_embedder(staged, device, paths=paths))
    report = SyncReport(model.name)
    with catalog.session() as s:
        tracks = s.execute(select(Track.id, Track.content_hash).order_by(Track.id)).all()
    with _index_lock(paths, model, wait=True):
        index, content = _new_index(model), {}
        with _feature_store(paths, staged, embedder) as store:
            current = set(current_features(store, [(int(t), h) for t, h in tracks]))
            todo = [(int(t), h) for t, h in tracks if int(t) in current]
            stage = f"rebuild ({model.name})"
            report_progress(progress, stage, 0, len(todo))
            chunks = [np.array([t for t, _ in todo[start:start + EMBED_BATCH]], dtype=np.int64)
                      for start in range(0, len(todo), EMBED_BATCH)]
            batches = (store.get_many(ids) for ids in chunks)
            embedded = (embed_many(staged, batches) if embed_many is not None
                        else (embedder.get().embed(x) for x in batches))
            done = 0
            for ids, vectors in zip(chunks, embedded):
                index.add(vectors, ids)
                done += len(ids)
                report_progress(progress, stage, done, len(todo))
        with catalog.session() as s:
            row = s.get(Model, model.id, with_for_update=True)
            if row is None:
                raise CatalogError(f"model {model.name!r} was removed during the rebuild")
            row.config = config
            ours = [t for t, _ in todo]
            if function_changed:
                s.execute(delete(Embedding).where(Embedding.model_id == model.id))
            for start in range(0, len(ours), 10_000):
                s.execute(delete(Embedding).where(Embedding.model_id == model.id,
                                                  Embedding.track_id.in_(ours[start:start + 10_000])))
            for start in range(0, len(todo), EMBED_BATCH):
                chunk = todo[start:start + EMBED_BATCH]
                vectors = index.reconstruct(np.array([t for t, _ in chunk], dtype=np.int64))  # exact: flat
                s.execute(insert_ignoring_conflicts(s, Embedding).values([
                    dict(track_id=t, model_id=model.id, vector_id=t, content_hash=h, vector=_pack(v),
                         created_at=utcnow()) for (t, h), v in zip(chunk, vectors)]))
        model.config = config
        kill_point("after rebuild rows committed")
        content.update((t, _vector_key(staged, h)) for t, h in todo)
        report.embedded = len(todo)
        _reconcile(catalog, paths, staged, index, content, embedder, report)  # the other homes' rows
        index = _maybe_upgrade_index_type(index, model)
        _save_local(index, paths, staged, content, _revision(catalog, model))
    report.total = index.ntotal
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
    # This home's track index may lack rows it cannot make (see SyncReport.unavailable) and gain
    # them later without the catalog changing: its size is part of what the level was made from.
    revision = f"{_revision(catalog, model)}:n{track_index.ntotal}"
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
                         progress: Progress | None = None, embed_many: EmbedMany | None = None) -> SyncReport:
    """``artdb index --rebuild-index``: the active model's vectors embedded again into a new index
    (:func:`rebuild_index`), a backbone model's standardisation refitted on the catalog
    (``learn.adapt``) and stored with the new rows; a catalog without an active model has nothing
    to rebuild."""
    model = active_model(catalog)
    if model is None:
        raise CatalogError("no active model: nothing to rebuild")
    # a full re-embedding is when a backbone model's standardisation follows the catalog it serves;
    # it is stored with the new rows, in one transaction
    state = served_standardisation(catalog, paths, model)
    return rebuild_index(catalog, paths, model, device, progress,
                         config_update={SERVED_KEY: state} if state is not None else None,
                         embed_many=embed_many)
