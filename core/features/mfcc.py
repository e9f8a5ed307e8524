"""MFCC statistics of stored log-mels: the no-learning baselines' vectors and the hybrid's side.

MFCCs are a DCT over the mel bands of the stored log-mels (c0, loudness, dropped). ``mfcc_mean_std``
is the paper's baseline; ``stats_features`` adds the first difference over frames, and
``fit_standardizer`` fits the per-dimension mean and std that make it a fixed embedding.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

from artdb.core.errors import CatalogError

STATS_N_MFCC = 20


def mfcc_mean_std(features: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """``[n, 2 * (n_mfcc - 1)]`` float32: mean and std over all frames of all excerpts of MFCCs
    c1..c{n_mfcc-1} of ``[n, k, mels, frames]`` log-mels (unnormalised)."""
    x = np.asarray(features, dtype=np.float32)
    ceps = dct(x, type=2, axis=2, norm="ortho")[:, :, 1:n_mfcc, :]  # drop c0 (loudness)
    ceps = ceps.transpose(0, 2, 1, 3).reshape(x.shape[0], n_mfcc - 1, -1)
    return np.concatenate([ceps.mean(axis=2), ceps.std(axis=2)], axis=1).astype(np.float32)


def stats_features(features: np.ndarray, n_mfcc: int = STATS_N_MFCC) -> np.ndarray:
    """Raw (unstandardised) ``stats`` vectors: ``[n, 4 * (n_mfcc - 1)]`` float32.

    MFCCs c1..c{n_mfcc-1} (c0, loudness, dropped) from ``[n, k, mels, frames]`` log-mels, and their
    first difference over frames; mean and std of each over all frames of all excerpts.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 4:
        raise CatalogError(f"features must be [n_tracks, k, mels, frames], got shape {x.shape}")
    if x.shape[2] < n_mfcc:
        raise CatalogError(f"{n_mfcc} MFCCs need >= {n_mfcc} mel bands, the features have {x.shape[2]}")
    ceps = dct(x, type=2, axis=2, norm="ortho")[:, :, 1:n_mfcc, :]
    delta = np.diff(ceps, axis=3)
    parts = []
    for c in (ceps, delta):
        c = c.transpose(0, 2, 1, 3).reshape(x.shape[0], n_mfcc - 1, -1)
        parts += [c.mean(axis=2), c.std(axis=2)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def fit_standardizer(features, n_mfcc: int = STATS_N_MFCC, chunk: int = 256,
                     rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(mean, std)`` of :func:`stats_features` over ``features`` (read in chunks).

    ``features``: ``[n, k, mels, frames]`` array or anything indexable by row arrays (feature-store
    views). Needs at least two tracks; a constant dimension gets std 1.
    """
    rows = np.arange(features.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        raise CatalogError(f"fitting the stats standardisation needs >= 2 tracks, got {len(rows)}")
    total = total_sq = None
    for i in range(0, len(rows), chunk):
        v = stats_features(np.asarray(features[rows[i:i + chunk]]), n_mfcc).astype(np.float64)
        total = v.sum(0) if total is None else total + v.sum(0)
        total_sq = (v ** 2).sum(0) if total_sq is None else total_sq + (v ** 2).sum(0)
    mean = total / len(rows)
    std = np.sqrt(np.maximum(total_sq / len(rows) - mean ** 2, 0.0))
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
