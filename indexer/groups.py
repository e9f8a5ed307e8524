"""Aggregating member vectors into group vectors (album, artist page)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import as_ids
from .errors import VectorIndexError


def mean_normalized(vectors: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the mean of its members' L2-normalised vectors, re-normalised.

    Returns ``(group_ids, group_vectors)`` with ``group_ids`` sorted and unique. A group whose
    members cancel out exactly gets a zero vector (callers should treat it as undefined).
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise VectorIndexError(f"vectors: expected a 2-d array, got shape {x.shape}")
    g = as_ids(groups, x.shape[0], unique=False)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise VectorIndexError("vectors: zero vector among the members")
    x = x / norms
    uniq, inverse = np.unique(g, return_inverse=True)
    sums = np.zeros((uniq.size, x.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, x)
    n = np.linalg.norm(sums, axis=1, keepdims=True)
    out = np.divide(sums, n, out=np.zeros_like(sums), where=n > 0)
    return uniq, out.astype(np.float32)
