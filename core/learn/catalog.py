"""``artdb train`` on the catalog: artist pages as (noisy) labels, features from the store.

Training reads excerpts from the feature store (never decodes audio per epoch), saves a
checkpoint in the data dir, registers it, and (by default) activates it and embeds the catalog.
Progress (:mod:`artdb.core.progress`): the training's ``"train"`` events, then the embedding's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from artdb.core.analysis.audit import calibrate_threshold, suspect_pages
from artdb.core.analysis.findings import page_label
from artdb.core.config import Paths
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.store import StoreFeatureArray, open_backbone_store, open_feature_store, store_exists
from artdb.core.ingest.service import ensure_backbone_features
from artdb.core.learn.backbone import BackboneTrainResult, HeadConfig, train_backbone_head
from artdb.core.learn.checkpoint import save_checkpoint
from artdb.core.learn.config import TrainConfig, TrainingData, TrainResult
from artdb.core.learn.embedders import BACKBONE_KIND
from artdb.core.learn.loop import train
from artdb.core.learn.registry import default_frontend_config, get_model, register_model
from artdb.core.names import page_key
from artdb.core.progress import Progress
from artdb.core.vectors.index import sync_model_index
from artdb.db.models import Album, ArtistPage, Model, Track, TrackCredit
from artdb.db.session import Catalog


@dataclass
class CatalogTrainingSet:
    track_ids: np.ndarray
    pages: np.ndarray
    albums: np.ndarray
    genres: np.ndarray

    @property
    def n_pages(self) -> int:
        return len(np.unique(self.pages))


def catalog_training_set(catalog: Catalog, store, exclude_pages: Sequence[str] = (),
                         exclude_page_ids: Collection[int] = ()) -> CatalogTrainingSet:
    """Tracks with features, labelled by their main credit's page, album and genre (pages named in
    ``exclude_pages`` or whose id is in ``exclude_page_ids`` left out)."""
    excluded = {page_key(p) for p in exclude_pages}
    excluded_ids = {int(p) for p in exclude_page_ids}
    with catalog.session() as s:
        rows = s.execute(
            select(Track.id, TrackCredit.page_id, Track.album_id, Album.genre_id, ArtistPage.normalized_name)
            .join(TrackCredit, (TrackCredit.track_id == Track.id) & (TrackCredit.position == 0))
            .join(ArtistPage, ArtistPage.id == TrackCredit.page_id)
            .join(Album, Album.id == Track.album_id)
            .order_by(Track.id)
        ).all()
    rows = [r for r in rows if r[4] not in excluded and r[1] not in excluded_ids and int(r[0]) in store]
    if not rows:
        raise CatalogError("no catalogued tracks with features to train on (run `artdb index` first)")
    arr = np.array([(r[0], r[1], r[2], -1 if r[3] is None else r[3]) for r in rows], dtype=np.int64)
    return CatalogTrainingSet(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


# What ``artdb train`` leaves out (``--leave-out``): pages with an open homonym finding; those and
# the pages whose tags the metadata fusion would split; nothing.
LEAVE_OUT = ("flagged", "flagged+tags", "none")


def training_set_without_suspects(catalog: Catalog, store, exclude_pages: Sequence[str] = (),
                                  leave_out: str = "flagged", seed: int = 0,
                                  ) -> tuple[CatalogTrainingSet, dict[int, str]]:
    """The training set without the pages :func:`~artdb.core.analysis.audit.suspect_pages` names
    (``leave_out``: :data:`LEAVE_OUT`; nothing is left out when that would leave fewer than 2
    pages); returns it and the pages left out, each with why."""
    if leave_out not in LEAVE_OUT:
        raise ConfigError(f"leave_out must be one of {LEAVE_OUT}, got {leave_out!r}")
    suspects = {} if leave_out == "none" else suspect_pages(catalog, tags=leave_out == "flagged+tags",
                                                            seed=seed)
    ts = catalog_training_set(catalog, store, exclude_pages, suspects)
    if suspects and ts.n_pages < 2:
        return catalog_training_set(catalog, store, exclude_pages), {}
    return ts, suspects


def _suspect_summary(catalog: Catalog, left_out: dict[int, str]) -> dict[str, str]:
    """Page label -> why it was left out of training (stored with the model)."""
    if not left_out:
        return {}
    with catalog.session() as s:
        rows = s.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
                         .where(ArtistPage.id.in_(list(left_out)))).all()
    return {page_label(n, d): left_out[int(i)] for i, n, d in rows}


def _require_tracks(catalog: Catalog) -> None:
    """Refuse an empty catalog with what to do, before any store or model is looked for."""
    with catalog.session() as s:
        if not s.scalar(select(func.count()).select_from(Track)):
            raise CatalogError("the catalog holds no tracks to train on: ingest audio first "
                               "(artdb index PATH)")


def train_from_catalog(catalog: Catalog, paths: Paths, config: TrainConfig, name: str | None = None,
                       exclude_pages: Sequence[str] = (), activate: bool = True,
                       progress: Progress | None = None,
                       leave_out: str = "flagged") -> tuple[Model, TrainResult]:
    """Train on the catalog with ``config``; returns (registered model, result).

    Pages with an open homonym finding are left out (``leave_out``: :data:`LEAVE_OUT`).

    ``progress`` hears the training (stage ``"train"``) and, when activated, the embedding of
    the catalog with the new model.
    """
    _require_tracks(catalog)
    frontend = default_frontend_config(catalog)
    name = name or f"{config.method}-{config.mining}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    with catalog.session() as s:
        if s.scalar(select(Model.id).where(Model.name == name)) is not None:
            raise ConfigError(f"a model named {name!r} already exists; choose another --name")
    if not store_exists(paths, frontend):
        raise CatalogError(f"no catalogued track has log-mel features in {paths.home}: run "
                           "artdb index PATH without --no-features")
    with open_feature_store(paths, frontend, mode="r") as store:
        ts, suspects = training_set_without_suspects(catalog, store, exclude_pages, leave_out,
                                                     seed=config.seed)
        data = TrainingData(StoreFeatureArray(store, ts.track_ids), artists=ts.pages,
                            albums=ts.albums, genres=ts.genres, track_ids=ts.track_ids)
        result = train(data, config, progress=progress)
    ckpt = paths.models / f"{name}.pt"
    sha = save_checkpoint(ckpt, result, frontend=frontend)
    summary = result.summary()
    model = register_model(
        catalog, name=name, kind=config.method, dim=int(result.model.cfg.embedding_dim),
        config={
            "frontend": frontend.to_dict(), "train": config.to_dict(), "model": result.model_config,
            "audit": {"threshold": result.threshold, "linkage": config.linkage, "metric": config.metric,
                      "source": "validation homonym groups of held-out training artists"},
            "excluded_pages": list(exclude_pages),
            "suspect_pages": _suspect_summary(catalog, suspects),
        },
        metrics={"val_ari": result.best_val_ari, "initial_val_ari": result.initial_val_ari,
                 "n_tracks": int(len(ts.track_ids)), "n_pages": ts.n_pages, **summary},
        checkpoint_path=paths.relative(ckpt), checksum=sha, activate=activate,
    )
    if activate:
        sync_model_index(catalog, paths, model, device=config.device, progress=progress)
        if not math.isfinite(result.threshold):
            model = recalibrate_audit_threshold(catalog, paths, model, seed=config.seed)
    return model, result


def recalibrate_audit_threshold(catalog: Catalog, paths: Paths, model: Model, seed: int = 0) -> Model:
    """Learn the audit threshold by cross-validation over artificial homonym groups of the catalog's
    pages — used only when validation could not fit one (no held-out artist with two albums):
    pages the model was trained on cluster more cleanly than unseen artists, so a threshold fitted
    on them splits too little (measured in docs/audit.md); the validation threshold is preferred."""
    for folds in (5, 3):
        try:
            calibrate_threshold(catalog, paths, model, folds=folds, seed=seed)
            break
        except (ConfigError, CatalogError):
            continue
    return get_model(catalog, model.id)


def train_backbone_from_catalog(catalog: Catalog, paths: Paths, backbone: BackboneConfig,
                                head: HeadConfig | None = None, name: str | None = None,
                                exclude_pages: Sequence[str] = (), activate: bool = True,
                                workers: int = 2, device: str = "cpu",
                                progress: Progress | None = None,
                                leave_out: str = "flagged") -> tuple[Model, BackboneTrainResult]:
    """``artdb train --backbone musicnn``: a :class:`BackboneHead` fitted on the catalog's pages.

    The backbone's features are computed first for every catalogued track that lacks them (stored
    once, reused by every later model and ingest), then the head is trained and its share chosen on
    held-out artists (``learn.backbone``); the model is registered (kind ``backbone``) and, by
    default, activated and the catalog embedded with it.
    """
    _require_tracks(catalog)
    head = head or HeadConfig()
    name = name or f"{backbone.name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    with catalog.session() as s:
        if s.scalar(select(Model.id).where(Model.name == name)) is not None:
            raise ConfigError(f"a model named {name!r} already exists; choose another --name")
    ensure_backbone_features(catalog, paths, backbone, workers=workers, device=device, progress=progress)
    slices = {k: (v.start, v.stop) for k, v in backbone.layer_slices().items()}
    with open_backbone_store(paths, backbone, mode="r") as store:
        ts, suspects = training_set_without_suspects(catalog, store, exclude_pages, leave_out,
                                                     seed=head.seed)
        if ts.n_pages < 2:
            raise CatalogError(f"artdb train needs at least 2 artist pages with backbone features "
                               f"(found {ts.n_pages})")
        genres = np.where(ts.genres < 0, "", ts.genres.astype(str))  # genre ids; "" untagged
        result = train_backbone_head(StoreFeatureArray(store, ts.track_ids), ts.pages.astype(str), head,
                                     layer_slices=slices, genres=genres, progress=progress)
    ckpt = paths.models / f"{name}.pt"
    sha = save_checkpoint(ckpt, result.model, frontend=backbone, train_config=head.to_dict(),
                          summary=result.summary(), metrics={"val_ari": result.summary()["val_ari"]})
    threshold = result.threshold if result.threshold is not None else float("nan")
    model = register_model(
        catalog, name=name, kind=BACKBONE_KIND, dim=int(result.model.dim),
        config={
            # the log-mel front-end stays the catalog's (ingest keeps computing it); the model reads
            # the backbone store
            "frontend": default_frontend_config(catalog).to_dict(), "backbone": backbone.to_dict(),
            "train": head.to_dict(), "model": result.model.config(),
            "audit": {"threshold": threshold, "linkage": head.linkage, "metric": head.metric,
                      "source": f"{result.threshold_groups} validation homonym groups of training "
                                f"artists held out in {result.threshold_splits} split(s)"},
            "excluded_pages": list(exclude_pages),
            "suspect_pages": _suspect_summary(catalog, suspects),
        },
        metrics={"n_tracks": int(len(ts.track_ids)), "n_pages": ts.n_pages, **result.summary()},
        checkpoint_path=paths.relative(ckpt), checksum=sha, activate=activate,
    )
    if activate:
        sync_model_index(catalog, paths, model, device=device, progress=progress)
        if not math.isfinite(threshold):
            model = recalibrate_audit_threshold(catalog, paths, model, seed=head.seed)
    return model, result
