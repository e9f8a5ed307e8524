"""``artdb index`` as one library call: the catalog, its features and the active model's index.

``index_catalog`` = ingest (``artdb.core.ingest``) + the feature stage (front-end + feature
store, and the backbone's features when wanted) + bringing the active model's vector index in
line with the catalog. ``ensure_backbone_features`` fills in the backbone features of a catalog
that was ingested without them (``artdb train`` calls it).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from artdb.core.analysis.placement import (
    IngestPlacement,
    new_releases_under_shared_names,
    place_new_releases,
)
from artdb.core.config import Paths
from artdb.core.errors import AudioError, ConfigError, MissingExtraError
from artdb.core.executor import dask_client
from artdb.core.features.backbone import BACKBONES, BackboneConfig, BackboneExtractor
from artdb.core.features.frontend.pipeline import FeatureExtractor
from artdb.core.features.provenance import current_features, record_content
from artdb.core.features.store import open_feature_store
from artdb.core.ingest.pipeline import ADDED, IngestOptions, IngestSummary, ingest
from artdb.core.learn.registry import active_model, adopt_checkpoint_paths, default_frontend_config
from artdb.core.progress import Progress
from artdb.core.recovery import remove_stale_temporary_files
from artdb.core.vectors.index import (
    SyncReport,
    model_store_config,
    rebuild_active_index,
    store_vectors,
    sync_active_index,
)
from artdb.db.models import IngestFile, Track
from artdb.db.session import Catalog

BACKBONE_CHOICES = ("auto", "none", *BACKBONES)
_SAVE_EVERY = 256  # tracks per durable write in ensure_backbone_features


class StoreFeatureStage:
    """Ingest's ``FeatureStage``: an extractor's worker pool writing into one feature store.

    ``name`` labels its failures when it runs inside a :class:`CompositeFeatureStage` after
    another stage (the first stage's reasons are reported as they are).
    """

    def __init__(self, store, extractor, progress: Progress | None = None, name: str = "log-mels"):
        self.store = store  # the FeatureStore
        self.extractor = extractor
        self.progress = progress
        self.name = name
        self.extracted = 0

    def missing(self, track_ids: Sequence[int]) -> set[int]:
        return {int(t) for t in track_ids if int(t) not in self.store}

    def extract(self, paths: Sequence[str],
                track_ids: Sequence[int | None] | None = None) -> list[np.ndarray | str]:
        out: list[np.ndarray | str] = [""] * len(paths)
        for index, _path, result in self.extractor.extract(list(paths)):
            out[index] = result.reason if isinstance(result, AudioError) else result
        self.extracted += len(paths)
        return out

    def save(self, track_ids: Sequence[int], features: Sequence[np.ndarray],
             content_hashes: Sequence[str] | None = None) -> None:
        self.store.put_many(list(track_ids), np.stack(features))
        if content_hashes is not None:
            record_content(self.store.directory, track_ids, content_hashes)

    def remove(self, track_ids: Sequence[int]) -> None:
        self.store.delete(list(track_ids))

    def committed(self) -> None:
        """Nothing more to write: the features are the whole product."""


class CompositeFeatureStage:
    """Several kinds of features for one ingest (log-mels, then backbone features), each in its
    own store: a track gets every kind its stores lack, and nothing it already has.

    ``extract`` returns per path a dict {stage number: features} or the first failure's reason
    (a file that fails one kind is not tried for the next: it becomes one error of the run);
    ``save`` writes each kind into its store, durably, before the catalog commits.
    """

    def __init__(self, stages: Sequence[StoreFeatureStage]):
        self.stages = list(stages)

    def missing(self, track_ids: Sequence[int]) -> set[int]:
        return set().union(*(stage.missing(track_ids) for stage in self.stages))

    def extract(self, paths: Sequence[str],
                track_ids: Sequence[int | None] | None = None) -> list[dict[int, np.ndarray] | str]:
        ids = list(track_ids) if track_ids is not None else [None] * len(paths)
        known = [t for t in ids if t is not None]
        results: list[dict[int, np.ndarray] | str] = [{} for _ in paths]
        for n, stage in enumerate(self.stages):
            lacking = stage.missing(known) if known else set()
            todo = [i for i, t in enumerate(ids)
                    if (t is None or t in lacking) and not isinstance(results[i], str)]
            if not todo:
                continue
            for i, out in zip(todo, stage.extract([paths[i] for i in todo], [ids[i] for i in todo])):
                if isinstance(out, str):
                    results[i] = f"{stage.name}: {out}" if n else out
                else:
                    results[i][n] = out
        return results

    def save(self, track_ids: Sequence[int], features: Sequence[dict[int, np.ndarray]],
             content_hashes: Sequence[str] | None = None) -> None:
        hashes = list(content_hashes) if content_hashes is not None else [None] * len(track_ids)
        for n, stage in enumerate(self.stages):
            rows = [(t, parts[n], h) for t, parts, h in zip(track_ids, features, hashes) if n in parts]
            if rows:
                stage.save([t for t, _, _ in rows], [x for _, x, _ in rows],
                           [h for _, _, h in rows] if content_hashes is not None else None)

    def remove(self, track_ids: Sequence[int]) -> None:
        for stage in self.stages:
            stage.remove(track_ids)

    def committed(self) -> None:
        for stage in self.stages:
            stage.committed()


def active_backbone_config(catalog: Catalog) -> BackboneConfig | None:
    """The backbone config the active model reads (``model.config["backbone"]``), if any."""
    model = active_model(catalog)
    data = model.config.get("backbone") if model is not None else None
    if not data:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"model {model.name!r}: config['backbone'] must be a BackboneConfig dict, "
                          f"got {data!r}")
    return BackboneConfig.from_dict(data)


def resolve_backbone(catalog: Catalog, backbone: BackboneConfig | str | None = None
                     ) -> BackboneConfig | None:
    """Which backbone features to compute: ``None``/``"auto"``: those the active model reads
    (none when it reads none); ``"none"``: none; a backbone name (``"musicnn"``): the active
    model's config when it reads that backbone, else the default config; a
    :class:`BackboneConfig`: that one."""
    if isinstance(backbone, BackboneConfig):
        return backbone
    choice = "auto" if backbone is None else backbone
    if choice not in BACKBONE_CHOICES:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONE_CHOICES)}, got {backbone!r}")
    if choice == "none":
        return None
    wanted = active_backbone_config(catalog)
    if choice == "auto" or (wanted is not None and wanted.name == choice):
        return wanted
    return BackboneConfig(name=choice)


def index_catalog(catalog: Catalog, paths: Paths, root: str | Path,
                  options: IngestOptions | None = None, with_features: bool = True,
                  device: str = "cpu", progress: Progress | None = None,
                  backbone: BackboneConfig | str | None = None,
                  place: bool = True) -> IngestSummary:
    """Ingest ``root``; with features, extract log-mels (and backbone features, see
    :func:`resolve_backbone`: by default those the active model reads) for new/changed tracks and
    for catalogued tracks lacking them, then embed them with the active model (if any) into its
    index. With ``place``, new releases under a name a split shared out are then placed by audio
    among its pages (:func:`place_releases_of_run`). ``options.executor_backend == "dask"``: all
    of that but the writing runs on a Dask cluster (:mod:`artdb.core.ingest.cluster`)."""
    options = options or IngestOptions()
    # after a killed run: its temporary files go, and rows of a copied/moved home find its files
    remove_stale_temporary_files(paths)
    adopt_checkpoint_paths(catalog, paths)
    if options.executor_backend == "dask":
        summary = _index_on_cluster(catalog, paths, root, options, with_features, progress, backbone)
    elif not with_features:
        return ingest(catalog, root, options, features=None, progress=progress)
    else:
        config = default_frontend_config(catalog)
        backbone_config = resolve_backbone(catalog, backbone)
        with ExitStack() as stack:
            store = stack.enter_context(open_feature_store(paths, config))
            extractor = stack.enter_context(FeatureExtractor(config, workers=options.workers, device=device))
            stage = StoreFeatureStage(store, extractor)
            if backbone_config is not None:
                backbone_store = stack.enter_context(open_feature_store(paths, backbone_config))
                backbone_extractor = stack.enter_context(
                    BackboneExtractor(backbone_config, workers=options.workers, device=device))
                stage = CompositeFeatureStage([stage, StoreFeatureStage(
                    backbone_store, backbone_extractor, name=f"backbone features ({backbone_config.name})")])
            summary = ingest(catalog, root, options, features=stage, progress=progress)
    if with_features:
        sync_active_index(catalog, paths, device=device, progress=progress)
        if place:
            summary.placements, note = place_releases_of_run(catalog, paths, summary.run_id)
            if note:
                summary.warnings.append(("(placement)", note))
    return summary


def place_releases_of_run(catalog: Catalog, paths: Paths, run_id: int
                          ) -> tuple[list[IngestPlacement], str | None]:
    """After an ingest: the new releases of run ``run_id`` delivered under a name several pages
    share (after a split) are placed by audio among those pages, as ``artdb place --apply`` does
    (:func:`~artdb.core.analysis.placement.place_new_releases`). Returns the placements and, when
    none could be made (no active model, no threshold), why."""
    with catalog.session() as s:
        tracks = list(s.scalars(select(IngestFile.track_id).where(
            IngestFile.run_id == run_id, IngestFile.outcome == ADDED, IngestFile.track_id.is_not(None))))
    albums = new_releases_under_shared_names(catalog, tracks)
    if not albums:
        return [], None
    model = active_model(catalog)
    if model is None:
        return [], (f"{len(albums)} new release(s) under a split name left where they landed: no "
                    "active model to place them by audio (artdb train, then artdb place)")
    try:
        return place_new_releases(catalog, paths, model, albums,
                                  note=f"placed at ingest run #{run_id}"), None
    except ConfigError as exc:  # e.g. a model without an audit threshold
        return [], f"{len(albums)} new release(s) under a split name not placed: {exc}"


def _index_on_cluster(catalog: Catalog, paths: Paths, root: str | Path, options: IngestOptions,
                      with_features: bool, progress: Progress | None,
                      backbone: BackboneConfig | str | None) -> IngestSummary:
    """:func:`index_catalog`'s ingest with the workers of a Dask cluster analysing, extracting and
    embedding; this process writes (the vectors as embedding rows, which the sync that follows
    copies into the index)."""
    cluster = _cluster_module()
    window = options.window or 2 * options.batch_size
    with ExitStack() as stack:
        client = stack.enter_context(dask_client(options.workers, options.scheduler_address))
        stores: list = []
        model, reads = None, None
        if with_features:
            configs = [default_frontend_config(catalog)]
            backbone_config = resolve_backbone(catalog, backbone)
            if backbone_config is not None:
                configs.append(backbone_config)
            for config in configs:
                name = f"backbone features ({config.name})" if isinstance(config, BackboneConfig) \
                    else "log-mels"
                stores.append((stack.enter_context(open_feature_store(paths, config)), config, name))
            model = active_model(catalog)
            if model is not None:
                wanted = model_store_config(model, paths).fingerprint()
                reads = next((n for n, c in enumerate(configs) if c.fingerprint() == wanted), None)
        spec = cluster.ModelSpec.of(model, paths) if model is not None and reads is not None else None

        def write_vectors(rows, vectors):
            store_vectors(catalog, model, rows, vectors)

        stage = stack.enter_context(cluster.ClusterStage(client, stores, spec, reads, window, write_vectors,
                                                         device=options.worker_device))
        return ingest(catalog, root, options, features=stage if stores else None, progress=progress,
                      analyser=stage)


def rebuild_catalog_index(catalog: Catalog, paths: Paths, options: IngestOptions | None = None,
                          device: str = "cpu", progress: Progress | None = None) -> SyncReport:
    """``artdb index --rebuild-index``: :func:`rebuild_active_index`, embedding on the executor of
    ``options`` (Dask: on the cluster's workers; else here)."""
    options = options or IngestOptions()
    if options.executor_backend != "dask":
        return rebuild_active_index(catalog, paths, device, progress)
    cluster = _cluster_module()
    with dask_client(options.workers, options.scheduler_address) as client:
        return rebuild_active_index(catalog, paths, device, progress,
                                    embed_many=cluster.cluster_embedding(client, paths,
                                                                         device=options.worker_device))


def _cluster_module():
    """:mod:`artdb.core.ingest.cluster`, which needs the optional ``dist`` extra (distributed)."""
    try:  # imported on demand: an optional extra, slow to import
        return importlib.import_module("artdb.core.ingest.cluster")
    except ImportError as exc:
        raise MissingExtraError("distributed", "dist") from exc


@dataclass
class BackboneFill:
    """What :func:`ensure_backbone_features` did: ``computed`` of ``lacking`` catalogued tracks
    (out of ``tracks``) got features; ``errors`` lists ``(audio path, reason)`` for the rest."""

    tracks: int
    lacking: int
    computed: int
    errors: list[tuple[str, str]] = field(default_factory=list)


def ensure_backbone_features(catalog: Catalog, paths: Paths, config: BackboneConfig, workers: int = 2,
                             device: str = "cpu", progress: Progress | None = None) -> BackboneFill:
    """Compute ``config``'s backbone features for every catalogued track that lacks them, from
    its ``audio_path``; a missing or unreadable file is listed in ``errors``, never raised.
    Features are saved every few hundred tracks, so an interrupted call loses little and a rerun
    resumes. ``progress("backbone", done, total, path=...)`` after each file."""
    with catalog.session() as s:
        rows = s.execute(select(Track.id, Track.audio_path, Track.content_hash).order_by(Track.id)).all()
    with open_feature_store(paths, config) as store:
        current = set(current_features(store, [(int(i), h) for i, _, h in rows]))
        todo = [(int(i), p, h) for i, p, h in rows if int(i) not in current]
        fill = BackboneFill(tracks=len(rows), lacking=len(todo), computed=0)
        if not todo:
            return fill
        done: list[tuple[int, np.ndarray, str]] = []

        def save() -> None:
            store.put_many([t for t, _, _ in done], np.stack([x for _, x, _ in done]))
            record_content(store.directory, [t for t, _, _ in done], [h for _, _, h in done])
            fill.computed += len(done)
            done.clear()

        with BackboneExtractor(config, workers=workers, device=device) as extractor:
            for index, path, out in extractor.extract([p for _, p, _ in todo], progress):
                if isinstance(out, AudioError):
                    fill.errors.append((path, out.reason))
                    continue
                done.append((todo[index][0], out, todo[index][2]))
                if len(done) >= _SAVE_EVERY:
                    save()
        if done:
            save()
    return fill
