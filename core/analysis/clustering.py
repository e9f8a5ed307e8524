"""Homonym-detection clustering and its score, shared by training, audit and evaluation.

A *homonym group* is a set of 2-4 distinct artists whose albums are put on one artificial page; a
good embedding lets hierarchical clustering of the album vectors recover the artists. The score is
the adjusted Rand index (ARI) between the clusters and the true artists, averaged over groups.

The clustering is agglomerative with a distance threshold (the number of artists on a page is
unknown in production). :func:`cluster_with_threshold` is the production call (scikit-learn);
:func:`fit_threshold` sweeps thresholds on the same hierarchy built once per group with SciPy
(identical merges, tested in ``tests/test_clustering.py``) so the sweep stays cheap.

The SciPy hierarchy is built by :func:`linkage_tree` and cut at a threshold by :func:`cut_tree`
(the one place that turns scikit-learn's "stop merging at distances >= t" into SciPy's terms), used
by the sweep here and by the audit's per-page clustering. :func:`cv_thresholds` is the one
cross-validation over groups (a threshold fitted on the other folds, for each fold), shared by the
audit's calibration and the evaluation protocol. :func:`codes` turns any labels (artist names,
album ids) into dense integer codes, for everyone who pairs or one-hots labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage as scipy_linkage
from sklearn.cluster import AgglomerativeClustering

from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import ConfigError

LINKAGES = ("average", "complete", "single", "ward")


def codes(x) -> np.ndarray:
    """Dense integer codes ``0..n_unique-1`` of any sortable labels."""
    return np.unique(np.asarray(x), return_inverse=True)[1].reshape(-1)


def adjusted_rand(labels_true, labels_pred) -> float:
    """sklearn's ``adjusted_rand_score`` (same pair-counting formula, same limit cases), without its
    input validation, which took ~90 % of threshold fitting: it is called once per group and
    candidate threshold. Inputs: two equal-length label arrays (any sortable labels)."""
    a, b = codes(labels_true), codes(labels_pred)
    n = len(a)
    if n != len(b):
        raise ConfigError(f"label arrays differ in length ({n} and {len(b)})")
    if n == 0:
        return 1.0
    joint = np.bincount(a * (int(b.max()) + 1) + b).astype(np.float64)
    sum_squares = float(joint @ joint)
    true_sizes = np.bincount(a).astype(np.float64)
    pred_sizes = np.bincount(b).astype(np.float64)
    tp = sum_squares - n
    fp = float(pred_sizes @ pred_sizes) - sum_squares
    fn = float(true_sizes @ true_sizes) - sum_squares
    tn = float(n) * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def check_linkage(linkage: str, metric: str) -> None:
    """A ConfigError unless ``linkage`` is known and ``metric`` suits it (ward: euclidean only)."""
    if linkage not in LINKAGES:
        raise ConfigError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if linkage == "ward" and metric != "euclidean":
        raise ConfigError("ward linkage needs metric='euclidean'")


def linkage_tree(vectors: np.ndarray, linkage: str = DEFAULT_LINKAGE,
                 metric: str = DEFAULT_METRIC) -> np.ndarray:
    """SciPy's linkage matrix of >= 2 rows (the same merges as scikit-learn's clustering)."""
    return scipy_linkage(np.asarray(vectors, dtype=np.float64), method=linkage, metric=metric)


def distance_tree(condensed: np.ndarray, linkage: str = DEFAULT_LINKAGE) -> np.ndarray:
    """SciPy's linkage matrix from precomputed pairwise distances (condensed, ``pdist`` order), for
    distances that are not a metric between vectors (the fused audio + metadata distance of
    :mod:`artdb.core.analysis.fusion`). Ward needs vectors: refused."""
    if linkage == "ward":
        raise ConfigError("ward linkage needs vectors, not precomputed distances: use average")
    if linkage not in LINKAGES:
        raise ConfigError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    return scipy_linkage(np.asarray(condensed, dtype=np.float64), method=linkage)


# Precomputed distances of some units: unit indices -> condensed distance matrix between them.
UnitDistances = Callable[[np.ndarray], np.ndarray]


def _unit_tree(idx: np.ndarray, vectors_by_unit: np.ndarray | None, linkage: str, metric: str,
               distances: UnitDistances | None) -> np.ndarray | None:
    """The hierarchy of units ``idx`` (None for fewer than 2): from their vectors, or from
    ``distances`` when given."""
    if len(idx) < 2:
        return None
    if distances is not None:
        return distance_tree(distances(idx), linkage)
    return linkage_tree(np.asarray(vectors_by_unit[idx], dtype=np.float64), linkage, metric)


def cut_tree(tree: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster labels (1-based, SciPy's) of a :func:`linkage_tree` cut at distance ``threshold``.

    scikit-learn stops merging at distances >= threshold; ``fcluster`` keeps heights <= t, so the
    cut is taken just below ``threshold``: the partition :func:`cluster_with_threshold` gives.
    """
    return fcluster(tree, t=np.nextafter(threshold, -np.inf), criterion="distance")


def make_homonym_groups(
    artist_ids: np.ndarray,
    rng: np.random.Generator,
    sizes: tuple[int, int] = (2, 4),
    min_albums: int = 2,
    strata: Mapping[Any, Any] | None = None,
) -> list[np.ndarray]:
    """Partition eligible artists into artificial homonym groups.

    Args:
        artist_ids: the artist id of each unit (one entry per album); counts give albums per artist.
        rng: a seeded ``numpy.random.Generator``.
        sizes: inclusive range of artists per group.
        min_albums: artists with fewer albums are left out.
        strata: artist id -> stratum (e.g. its genre): groups are first drawn within each stratum
            (in sorted stratum order), and the artists left over are pooled and grouped across
            strata. Artists missing from ``strata`` are one stratum of their own.

    Returns:
        A list of int arrays of distinct artist ids; each artist appears in at most one group.
        Leftover artists (fewer than ``sizes[0]``) are dropped.
    """
    lo, hi = int(sizes[0]), int(sizes[1])
    if not 2 <= lo <= hi:
        raise ConfigError(f"group sizes must satisfy 2 <= min <= max, got {sizes}")
    ids, counts = np.unique(np.asarray(artist_ids), return_counts=True)
    eligible = ids[counts >= min_albums]

    def draw(pool: list) -> tuple[list[np.ndarray], list]:
        groups: list[np.ndarray] = []
        while len(pool) >= lo:
            size = min(int(rng.integers(lo, hi + 1)), len(pool))
            groups.append(np.asarray(pool[:size]))
            pool = pool[size:]
        return groups, pool

    if strata is None:
        return draw(list(eligible[rng.permutation(len(eligible))]))[0]
    by_stratum: dict[str, list] = {}
    for a in eligible:
        by_stratum.setdefault(str(strata.get(a.item(), "")), []).append(a)
    groups: list[np.ndarray] = []
    leftover: list = []
    for key in sorted(by_stratum):
        members = by_stratum[key]
        made, rest = draw([members[i] for i in rng.permutation(len(members))])
        groups += made
        leftover += rest
    return groups + draw([leftover[i] for i in rng.permutation(len(leftover))])[0]


def cluster_with_threshold(
    vectors: np.ndarray,
    threshold: float,
    linkage: str = DEFAULT_LINKAGE,
    metric: str = DEFAULT_METRIC,
) -> np.ndarray:
    """Agglomerative clustering cut at ``threshold``; returns a cluster label per row."""
    check_linkage(linkage, metric)
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(len(x), dtype=np.int64)
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=float(threshold), linkage=linkage, metric=metric
    )
    return model.fit_predict(x).astype(np.int64)


def _group_members(groups: Sequence[np.ndarray], labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(np.isin(labels, g)) for g in groups]


def mean_ari(
    groups: Sequence[np.ndarray],
    vectors_by_unit: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    linkage: str = DEFAULT_LINKAGE,
    metric: str = DEFAULT_METRIC,
    distances: UnitDistances | None = None,
) -> float:
    """Mean ARI over groups: cluster the units (albums) of each group's artists, compare to truth.

    Args:
        groups: artist-id arrays from :func:`make_homonym_groups`.
        vectors_by_unit: ``[n_units, d]`` unit vectors (e.g. album vectors).
        labels: ``[n_units]`` true artist id of each unit.
        distances: cluster on these precomputed distances instead of the vectors.
    """
    labels = np.asarray(labels)
    scores = []
    for idx in _group_members(groups, labels):
        if len(idx) == 0:
            continue
        if distances is None:
            pred = cluster_with_threshold(vectors_by_unit[idx], threshold, linkage, metric)
        else:
            z = _unit_tree(idx, None, linkage, metric, distances)
            pred = np.zeros(len(idx), dtype=np.int64) if z is None else cut_tree(z, threshold)
        scores.append(adjusted_rand(labels[idx], pred))
    return float(np.mean(scores)) if scores else float("nan")


def fit_threshold(
    groups: Sequence[np.ndarray],
    vectors_by_unit: np.ndarray,
    labels: np.ndarray,
    linkage: str = DEFAULT_LINKAGE,
    metric: str = DEFAULT_METRIC,
    thresholds: np.ndarray | None = None,
    max_candidates: int = 200,
    distances: UnitDistances | None = None,
) -> tuple[float, float, dict]:
    """Choose the distance threshold that maximises the mean ARI over ``groups``.

    Mean ARI is piecewise constant in the threshold, changing only at merge heights, so by default
    the candidates are midpoints between the groups' sorted merge heights (subsampled to at most
    ``max_candidates``). Among tied best candidates the median one is taken (a plateau's middle).

    ``distances`` (unit indices -> condensed distances) replaces the vectors' metric.

    Returns:
        ``(threshold, mean_ari, {"thresholds": [...], "ari": [...]})``.
    """
    if distances is None:
        check_linkage(linkage, metric)
    labels = np.asarray(labels)
    members = [m for m in _group_members(groups, labels) if len(m) > 0]
    if not members:
        return float("nan"), float("nan"), {"thresholds": [], "ari": []}
    trees = []
    heights = []
    for idx in members:
        z = _unit_tree(idx, vectors_by_unit, linkage, metric, distances)
        trees.append(z)
        if z is not None:
            heights.append(z[:, 2])
    if thresholds is None:
        h = np.unique(np.concatenate(heights)) if heights else np.array([0.5])
        cand = np.concatenate([[h[0] * 0.5], (h[:-1] + h[1:]) / 2, [h[-1] + 1e-6 + h[-1] * 0.01]])
        if len(cand) > max_candidates:
            cand = np.quantile(cand, np.linspace(0, 1, max_candidates))
        thresholds = cand
    thresholds = np.asarray(thresholds, dtype=np.float64)
    aris = np.zeros(len(thresholds))
    for idx, z in zip(members, trees):
        truth = labels[idx]
        for i, t in enumerate(thresholds):
            pred = np.zeros(1, dtype=np.int64) if z is None else cut_tree(z, t)
            aris[i] += adjusted_rand(truth, pred)
    aris /= len(members)
    best = np.flatnonzero(aris >= aris.max() - 1e-12)
    pick = best[len(best) // 2]
    return float(thresholds[pick]), float(aris[pick]), {
        "thresholds": thresholds.tolist(),
        "ari": aris.tolist(),
    }


def cv_thresholds(
    groups: Sequence[np.ndarray],
    fold_ids: Sequence[int] | np.ndarray,
    vectors_by_unit: np.ndarray,
    labels: np.ndarray,
    linkage: str = DEFAULT_LINKAGE,
    metric: str = DEFAULT_METRIC,
    max_candidates: int = 200,
    distances: UnitDistances | None = None,
) -> Iterator[tuple[int, float, list[np.ndarray]]]:
    """Cross-validation over groups: for each fold, the threshold fitted on the *other* folds.

    Yields ``(fold, threshold, test_groups)`` for each distinct fold id in increasing order, the
    threshold fitted (:func:`fit_threshold`) on the groups of the other folds; with a single fold
    there is nothing else to fit on and the fold's own groups are used. How folds are assigned
    (and how a fold is scored at its threshold) is the caller's: the audit's calibration scores
    mean ARI, the evaluation protocol per-group ARI and AMI.
    """
    fold_ids = np.asarray(fold_ids)
    for f in np.unique(fold_ids):
        test = [g for g, k in zip(groups, fold_ids) if k == f]
        train = [g for g, k in zip(groups, fold_ids) if k != f] or test
        t, _, _ = fit_threshold(train, vectors_by_unit, labels, linkage=linkage, metric=metric,
                                max_candidates=max_candidates, distances=distances)
        yield int(f), t, test
