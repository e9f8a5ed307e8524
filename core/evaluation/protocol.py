"""The paper's evaluation protocol as pure functions (numpy in, numbers out).

Royo-Letelier et al. (ISMIR 2018), section 4: test artists (never seen in training) are put into
artificial homonym groups of 2-4 artists; the units (albums in the paper, or tracks) of each group
are clustered agglomeratively with a distance threshold; the threshold is chosen by 5-fold
cross-validation over groups, so the threshold that scores a group was fitted on the other folds
only; the score is the mean adjusted Rand index (ARI) over groups (AMI reported beside it).

Nothing here trains, reads files or prints; the clusterer is the one in
:mod:`artdb.core.analysis.clustering` (the same code training validation and audit use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

from artdb.core.analysis.clustering import (
    UnitDistances,
    adjusted_rand,
    cluster_with_threshold,
    codes,
    cut_tree,
    cv_thresholds,
    distance_tree,
    fit_threshold,
    make_homonym_groups,
)
from artdb.core.analysis.fusion import fit_fusion
from artdb.core.analysis.metadata import AlbumMeta
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import ConfigError
from artdb.core.vectors.aggregate import l2_normalize, mean_normalized

UNITS = ("album", "track")


@dataclass
class Units:
    """What is clustered: one row per unit (album or track) of the selected tracks."""

    unit: str
    of_track: np.ndarray  # [n_tracks] unit index of each track
    artist: np.ndarray  # [n_units] true artist of each unit
    album: np.ndarray  # [n_units] album of each unit

    @property
    def n(self) -> int:
        return len(self.artist)


def make_units(artists, albums, unit: str) -> Units:
    """Units of ``unit`` kind: an album is an (artist, album) pair; a track is itself."""
    if unit not in UNITS:
        raise ConfigError(f"unit must be one of {UNITS}, got {unit!r}")
    artists, albums = np.asarray(artists), np.asarray(albums)
    if unit == "track":
        return Units(unit, np.arange(len(artists)), artists.copy(), albums.copy())
    if len(artists) == 0:
        return Units(unit, np.zeros(0, np.int64), artists[:0], albums[:0])
    pairs = np.stack([codes(artists), codes(albums)], axis=1)
    _, first, inv = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    return Units(unit, inv.reshape(-1), artists[first], albums[first])


def unit_vectors(track_vectors: np.ndarray, units: Units) -> np.ndarray:
    """Unit vectors: each unit's tracks mean-normalised (:func:`mean_normalized`)."""
    if units.unit == "track":
        return l2_normalize(track_vectors)
    _, vecs = mean_normalized(track_vectors, units.of_track)
    return vecs


def units_per_artist(artists, albums, unit: str) -> dict:
    """``{artist: number of units}``."""
    u = make_units(artists, albums, unit)
    ids, counts = np.unique(u.artist, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))


def split_test_artists(artists, albums, rng: np.random.Generator, test_fraction: float = 0.4,
                       n_test: int | None = None, unit: str = "track", min_units: int = 2
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(train_artists, test_artists)``: a disjoint split by artist.

    Test artists are drawn among artists with at least ``min_units`` units of ``unit`` kind (they
    must be clusterable); the others always go to training.
    """
    counts = units_per_artist(artists, albums, unit)
    all_ids = np.unique(np.asarray(artists))
    eligible = np.array(sorted(a for a, c in counts.items() if c >= min_units), dtype=all_ids.dtype)
    if n_test is None:
        n_test = int(round(test_fraction * len(all_ids)))
    n_test = min(int(n_test), len(eligible))
    test = np.sort(rng.choice(eligible, size=n_test, replace=False)) if n_test else eligible[:0]
    return np.setdiff1d(all_ids, test), test


def make_groups(unit_artists, test_artists, rng: np.random.Generator, sizes=(2, 4),
                min_units: int = 2, strata=None) -> list[np.ndarray]:
    """Homonym groups of ``sizes`` artists among ``test_artists`` (each artist in one group).

    ``strata``: optional ``{artist: key}``; groups are then formed inside each key (e.g. genre:
    every group's artists share a genre, the hard case).
    """
    ua = np.asarray(unit_artists)
    keep = np.isin(ua, np.asarray(test_artists))
    if strata is None:
        return make_homonym_groups(ua[keep], rng, sizes=sizes, min_albums=min_units)
    groups: list[np.ndarray] = []
    for key in sorted({strata[a] for a in np.unique(ua[keep]).tolist()}, key=str):
        members = np.array([a for a in np.unique(ua[keep]).tolist() if strata[a] == key])
        sel = keep & np.isin(ua, members)
        groups += make_homonym_groups(ua[sel], rng, sizes=sizes, min_albums=min_units)
    return groups


def fold_of_groups(n_groups: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index of each group: a random balanced assignment to ``min(folds, n_groups)`` folds."""
    k = max(1, min(int(folds), n_groups))
    return rng.permutation(np.arange(n_groups) % k)


@dataclass
class GroupScores:
    """Per-group scores of one system on one set of groups."""

    ari: list[float] = field(default_factory=list)
    ami: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)  # threshold used on each group
    sizes: list[int] = field(default_factory=list)  # artists per group
    units: list[int] = field(default_factory=list)  # units per group

    def extend(self, other: GroupScores) -> None:
        for name in ("ari", "ami", "thresholds", "sizes", "units"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> dict:
        a = np.asarray(self.ari, dtype=float)
        m = np.asarray(self.ami, dtype=float)
        if len(a) == 0:
            return {"n_groups": 0, "ari": None, "ari_std": None, "ari_sem": None, "ami": None}
        return {
            "n_groups": int(len(a)),
            "ari": float(a.mean()),
            "ari_std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "ari_sem": float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0,
            "ami": float(m.mean()),
            "threshold_median": float(np.median(self.thresholds)),
        }


def score_groups(groups: Sequence[np.ndarray], vectors: np.ndarray, unit_artists, threshold: float,
                 linkage: str = DEFAULT_LINKAGE, metric: str = DEFAULT_METRIC,
                 distances: UnitDistances | None = None) -> GroupScores:
    """Cluster each group's units at ``threshold``; ARI and AMI against the true artists.
    ``distances``: cluster these precomputed (fused) distances instead of the vectors'."""
    ua = np.asarray(unit_artists)
    out = GroupScores()
    for g in groups:
        idx = np.flatnonzero(np.isin(ua, g))
        if len(idx) == 0:
            continue
        if distances is None:
            pred = cluster_with_threshold(vectors[idx], threshold, linkage, metric)
        elif len(idx) < 2:
            pred = np.zeros(len(idx), dtype=np.int64)
        else:
            pred = cut_tree(distance_tree(distances(idx), linkage), threshold)
        out.ari.append(adjusted_rand(ua[idx], pred))
        out.ami.append(float(adjusted_mutual_info_score(ua[idx], pred)))
        out.thresholds.append(float(threshold))
        out.sizes.append(int(len(g)))
        out.units.append(int(len(idx)))
    return out


def cross_validated_scores(groups: Sequence[np.ndarray], vectors: np.ndarray, unit_artists,
                           folds: int = 5, rng: np.random.Generator | None = None,
                           fold_ids: np.ndarray | None = None, linkage: str = DEFAULT_LINKAGE,
                           metric: str = DEFAULT_METRIC, max_candidates: int = 64) -> GroupScores:
    """Score every group with a threshold fitted (:func:`fit_threshold`) on the *other* folds only
    (:func:`~artdb.core.analysis.clustering.cv_thresholds`, the audit calibration's CV too).

    With a single group there is nothing to fit on: its threshold is fitted on itself and the
    result is flagged by returning it all the same (callers report ``n_groups``); the protocol
    asks for at least ``folds`` groups.
    """
    if fold_ids is None:
        fold_ids = fold_of_groups(len(groups), folds, rng or np.random.default_rng(0))
    out = GroupScores()
    for _, t, test in cv_thresholds(groups, fold_ids, vectors, unit_artists, linkage=linkage,
                                    metric=metric, max_candidates=max_candidates):
        out.extend(score_groups(test, vectors, unit_artists, t, linkage, metric))
    return out


def cross_validated_fused_scores(groups: Sequence[np.ndarray], vectors: np.ndarray, unit_artists,
                                 metas: Sequence[AlbumMeta], evidence: str = "both",
                                 folds: int = 5, fold_ids: np.ndarray | None = None,
                                 linkage: str = DEFAULT_LINKAGE,
                                 metric: str = DEFAULT_METRIC) -> GroupScores:
    """:func:`cross_validated_scores` with audio and metadata fused: for each fold, a fusion
    (:func:`~artdb.core.analysis.fusion.fit_fusion`: its weights and its threshold) fitted on the
    *other* folds' groups scores this fold's groups. ``metas``: each unit's album metadata."""
    if fold_ids is None:
        fold_ids = fold_of_groups(len(groups), folds, np.random.default_rng(0))
    fold_ids = np.asarray(fold_ids)
    out = GroupScores()
    for f in np.unique(fold_ids):
        test = [g for g, k in zip(groups, fold_ids) if k == f]
        train = [g for g, k in zip(groups, fold_ids) if k != f] or test
        fusion = fit_fusion(vectors, metas, np.asarray(unit_artists), train, evidence, folds=0,
                            linkage=linkage, metric=metric)
        out.extend(score_groups(test, vectors, unit_artists, fusion.threshold, linkage, metric,
                                distances=fusion.unit_distances(vectors, metas)))
    return out


def fitted_threshold(groups: Sequence[np.ndarray], vectors: np.ndarray, unit_artists,
                     linkage: str = DEFAULT_LINKAGE, metric: str = DEFAULT_METRIC,
                     max_candidates: int = 64) -> float:
    t, _, _ = fit_threshold(groups, vectors, unit_artists, linkage=linkage, metric=metric,
                            max_candidates=max_candidates)
    return t


# -- controls --------------------------------------------------------------------------------------
def random_embedding(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Gaussian unit vectors: a system that knows nothing (expected ARI ~ 0)."""
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)))


def production_embedding(*keys) -> np.ndarray:
    """One-hot of each track's album and/or source (concatenated, unit rows).

    It knows only *which release a track comes from*: any score it earns measures production
    identity, not artist identity (at album level it sees every album as equally far apart).
    """
    parts = []
    for k in keys:
        c = codes(k)
        parts.append(np.eye(int(c.max()) + 1 if len(c) else 0, dtype=np.float32)[c])
    return l2_normalize(np.concatenate(parts, axis=1))
