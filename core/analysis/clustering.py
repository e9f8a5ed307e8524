"""Homonym-detection clustering and its score, shared by training, audit and evaluation.

A *homonym group* is a set of 2-4 distinct artists whose albums are put on one artificial page; a
good embedding lets hierarchical clustering of the album vectors recover the artists. The score is
the adjusted Rand index (ARI) between the clusters and the true artists, averaged over groups.

The clustering is agglomerative with a distance threshold (the number of artists on a page is
unknown in production). :func:`cluster_with_threshold` is the production call (scikit-learn);
:func:`fit_threshold` sweeps thresholds on the same hierarchy built once per group with SciPy
(identical merges, tested in ``tests/test_clustering.py``) so the sweep stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage as scipy_linkage
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from artdb.core.errors import ConfigError

LINKAGES = ("average", "complete", "single", "ward")


def _check(linkage: str, metric: str) -> None:
    if linkage not in LINKAGES:
        raise ConfigError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if linkage == "ward" and metric != "euclidean":
        raise ConfigError("ward linkage needs metric='euclidean'")


def make_homonym_groups(
    artist_ids: np.ndarray,
    rng: np.random.Generator,
    sizes: tuple[int, int] = (2, 4),
    min_albums: int = 2,
) -> list[np.ndarray]:
    """Partition eligible artists into artificial homonym groups.

    Args:
        artist_ids: the artist id of each unit (one entry per album); counts give albums per artist.
        rng: a seeded ``numpy.random.Generator``.
        sizes: inclusive range of artists per group.
        min_albums: artists with fewer albums are left out.

    Returns:
        A list of int arrays of distinct artist ids; each artist appears in at most one group.
        Leftover artists (fewer than ``sizes[0]``) are dropped.
    """
    lo, hi = int(sizes[0]), int(sizes[1])
    if not 2 <= lo <= hi:
        raise ConfigError(f"group sizes must satisfy 2 <= min <= max, got {sizes}")
    ids, counts = np.unique(np.asarray(artist_ids), return_counts=True)
    eligible = ids[counts >= min_albums]
    order = rng.permutation(len(eligible))
    pool = list(eligible[order])
    groups: list[np.ndarray] = []
    while len(pool) >= lo:
        size = int(rng.integers(lo, hi + 1))
        size = min(size, len(pool))
        groups.append(np.asarray(pool[:size]))
        pool = pool[size:]
    return groups


def cluster_with_threshold(
    vectors: np.ndarray,
    threshold: float,
    linkage: str = "average",
    metric: str = "cosine",
) -> np.ndarray:
    """Agglomerative clustering cut at ``threshold``; returns a cluster label per row."""
    _check(linkage, metric)
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
    linkage: str = "average",
    metric: str = "cosine",
) -> float:
    """Mean ARI over groups: cluster the units (albums) of each group's artists, compare to truth.

    Args:
        groups: artist-id arrays from :func:`make_homonym_groups`.
        vectors_by_unit: ``[n_units, d]`` unit vectors (e.g. album vectors).
        labels: ``[n_units]`` true artist id of each unit.
    """
    labels = np.asarray(labels)
    scores = []
    for idx in _group_members(groups, labels):
        if len(idx) == 0:
            continue
        pred = cluster_with_threshold(vectors_by_unit[idx], threshold, linkage, metric)
        scores.append(adjusted_rand_score(labels[idx], pred))
    return float(np.mean(scores)) if scores else float("nan")


def fit_threshold(
    groups: Sequence[np.ndarray],
    vectors_by_unit: np.ndarray,
    labels: np.ndarray,
    linkage: str = "average",
    metric: str = "cosine",
    thresholds: np.ndarray | None = None,
    max_candidates: int = 200,
) -> tuple[float, float, dict]:
    """Choose the distance threshold that maximises the mean ARI over ``groups``.

    Mean ARI is piecewise constant in the threshold, changing only at merge heights, so by default
    the candidates are midpoints between the groups' sorted merge heights (subsampled to at most
    ``max_candidates``). Among tied best candidates the median one is taken (a plateau's middle).

    Returns:
        ``(threshold, mean_ari, {"thresholds": [...], "ari": [...]})``.
    """
    _check(linkage, metric)
    labels = np.asarray(labels)
    members = [m for m in _group_members(groups, labels) if len(m) > 0]
    if not members:
        return float("nan"), float("nan"), {"thresholds": [], "ari": []}
    trees = []
    heights = []
    for idx in members:
        x = np.asarray(vectors_by_unit[idx], dtype=np.float64)
        if len(x) < 2:
            trees.append(None)
            continue
        z = scipy_linkage(x, method=linkage, metric=metric)
        trees.append(z)
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
            if z is None:
                pred = np.zeros(1, dtype=np.int64)
            else:
                # sklearn stops merging at distances >= threshold; fcluster keeps heights <= t.
                pred = fcluster(z, t=np.nextafter(t, -np.inf), criterion="distance")
            aris[i] += adjusted_rand_score(truth, pred)
    aris /= len(members)
    best = np.flatnonzero(aris >= aris.max() - 1e-12)
    pick = best[len(best) // 2]
    return float(thresholds[pick]), float(aris[pick]), {
        "thresholds": thresholds.tolist(),
        "ari": aris.tolist(),
    }
