"""One aggregation rule for every level: excerpt -> track -> album -> artist page.

Each level is the mean of the L2-normalised vectors below it, re-normalised (the direction of the
mean of unit vectors). Training, ingest, audit and evaluation all call :func:`mean_normalized` so
that a track vector means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

from artdb.core.errors import ArtdbError

_EPS = 1e-12


def l2_normalize(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero). Returns float32."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norms, _EPS)


def mean_normalized(vectors: np.ndarray, group_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate rows by group: normalise each row, average per group, normalise the mean.

    Args:
        vectors: ``[n, d]`` vectors (any float dtype; normalised here first).
        group_ids: ``[n]`` group id of each row (any sortable dtype: track, album or artist ids).

    Returns:
        ``(unique_groups [g], means [g, d] float32)``, groups in sorted order (``np.unique``).
    """
    x = np.asarray(vectors)
    g = np.asarray(group_ids)
    if x.ndim != 2:
        raise ArtdbError(f"mean_normalized: vectors must be [n, d], got shape {x.shape}")
    if g.shape != (x.shape[0],):
        raise ArtdbError(
            f"mean_normalized: group_ids must be [n]={x.shape[0]}, got shape {g.shape}"
        )
    unique, inverse = np.unique(g, return_inverse=True)
    sums = np.zeros((len(unique), x.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse.reshape(-1), l2_normalize(x).astype(np.float64))
    return unique, l2_normalize(sums)


def excerpts_to_tracks(excerpt_vectors: np.ndarray) -> np.ndarray:
    """``[n_tracks, k, d]`` excerpt embeddings -> ``[n_tracks, d]`` track vectors (same rule)."""
    x = np.asarray(excerpt_vectors, dtype=np.float32)
    if x.ndim != 3:
        raise ArtdbError(f"excerpts_to_tracks: expected [n_tracks, k, d], got shape {x.shape}")
    return l2_normalize(l2_normalize(x).mean(axis=1))
