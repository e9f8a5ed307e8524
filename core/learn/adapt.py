"""A backbone model's standardisation refit on the catalog it serves (no labels).

A :class:`~artdb.core.learn.backbone.BackboneHead` standardises the pretrained vector per dimension
before comparing tracks by cosine. Those statistics describe a catalog, not artists: fitted on the
catalog the model was trained on, they fit a different catalog less well. On the real dev catalog,
standardising with the statistics of the served catalog instead of the training catalog's lifted
random homonym groups from 0.555 to 0.619 ARI and same-source groups from 0.25 to 0.42
(docs/training.md). So the statistics are refitted on the catalog being served whenever it is
embedded from scratch (``artdb index --rebuild-index``, ``artdb evaluate --model`` on another
catalog), and stored in the model's registry config (``served_standardisation``), which
:func:`~artdb.core.learn.embedders.load_embedder` applies over the checkpoint's own. Tracks ingested
later are embedded with the stored statistics, so every vector of an index comes from one fixed
function; the next full rebuild refits.

Scored on *another* catalog (``artdb evaluate --model``: its tracks are not the training tracks),
the statistics are those of both catalogs pooled (``prior_tracks``), not of the scored catalog
alone: a small scored catalog dominated by one artist is centred on that artist, and the
whitening, fitted in the training catalog's coordinates, no longer fits. Trained on the 19 dev
artists and scored on the 6 of dev-extra (50 tracks, one artist 27 of them), random groups went
0.306 (scored catalog alone) → 0.618 (pooled), the training statistics alone 0.560; the other way
round (trained on 6, scored on 19) 0.681 → 0.643 (training alone 0.593): pooled is the only choice
above the TensorFlow peer both ways (0.331 / 0.579; docs/training.md). A catalog the model serves
holds its training tracks, so ``--rebuild-index`` fits on it alone: that is already the pool.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import select

from artdb.core.config import Paths
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.store import StoreFeatureArray, open_backbone_store
from artdb.core.learn.backbone import (
    BackboneHead,
    fit_standardisers,
    moments_to_mean_std,
    set_standardisation,
    standardisation,
)
from artdb.core.learn.embedders import BACKBONE_KIND, load_embedder
from artdb.db.models import Model, Track
from artdb.db.session import Catalog

MIN_TRACKS = 20  # fewer tracks than this give unstable statistics: the model's own are kept


def fitted_on(features, model: BackboneHead, prior_tracks: int = 0) -> dict[str, Any]:
    """``model`` restandardised on every row of ``features`` (``[n, patches, dim]``, array or
    store view); returns the JSON state (statistics + ``n_tracks``). Modifies ``model``.

    ``prior_tracks`` > 0: the model's current statistics describe that many *other* tracks (the
    ones it was trained on); they are pooled with ``features``' (weighted by tracks: every track
    has the same number of patches)."""
    before = standardisation(model) if prior_tracks > 0 else None
    fit_standardisers(model, features)
    n = int(len(features))
    if before is not None:
        set_standardisation(model, pooled_standardisation(before, prior_tracks, standardisation(model), n))
        n += int(prior_tracks)
    return {**standardisation(model), "n_tracks": n}


def pooled_standardisation(a: dict[str, Any], n_a: int, b: dict[str, Any], n_b: int) -> dict[str, Any]:
    """The per-dimension mean and std of two sets of tracks together, from each one's (``a`` of
    ``n_a`` tracks, ``b`` of ``n_b``; :func:`~artdb.core.learn.backbone.standardisation` states)."""
    out = {}
    for part in ("pooled", "patch"):
        ma, mb = np.asarray(a[f"{part}_mean"], np.float64), np.asarray(b[f"{part}_mean"], np.float64)
        sa, sb = np.asarray(a[f"{part}_std"], np.float64), np.asarray(b[f"{part}_std"], np.float64)
        mean, std = moments_to_mean_std((n_a * ma + n_b * mb) / (n_a + n_b),
                                        (n_a * (sa ** 2 + ma ** 2) + n_b * (sb ** 2 + mb ** 2)) / (n_a + n_b))
        out[f"{part}_mean"], out[f"{part}_std"] = mean.tolist(), std.tolist()
    return out


def served_standardisation(catalog: Catalog, paths: Paths, model: Model,
                           min_tracks: int = MIN_TRACKS) -> dict[str, Any] | None:
    """A backbone model's standardisation refitted on every catalogued track with its backbone
    features (the ``served_standardisation`` state, with ``fitted_at``), computed without storing
    it; None for other kinds and for catalogs of fewer than ``min_tracks`` such tracks."""
    if model.kind != BACKBONE_KIND:
        return None
    embedder = load_embedder(model, served=False, paths=paths)
    backbone = BackboneConfig.from_dict(embedder.frontend)
    with catalog.session() as s:
        ids = [int(t) for t in s.scalars(select(Track.id).order_by(Track.id))]
    with open_backbone_store(paths, backbone, mode="r") as store:
        ids = [t for t in ids if t in store]
        if len(ids) < min_tracks:
            return None
        state = fitted_on(StoreFeatureArray(store, ids), embedder.model)
    state["fitted_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return state

