"""Turning stored log-mel features into track vectors with a registered model.

Every model kind in the registry maps to an ``Embedder`` here, so ingest, audit, neighbors and
evaluation embed through one place:

- ``cl`` / ``ml`` / ``joint`` / ``untrained``: a CNN checkpoint (``artdb.core.checkpoint``);
- ``mfcc``: the no-learning baseline — MFCCs computed from the stored log-mels (a DCT over mel
  bands), mean and std over frames and excerpts, without c0 (loudness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from artdb.core.aggregate import l2_normalize
from artdb.core.errors import CatalogError

CNN_KINDS = ("cl", "ml", "joint", "untrained")


class Embedder(Protocol):
    dim: int
    frontend: dict[str, Any]

    def embed(self, features: np.ndarray) -> np.ndarray:
        """``[n, k, mels, frames]`` features -> ``[n, dim]`` unit vectors."""


@dataclass
class CheckpointEmbedder:
    model: Any
    frontend: dict[str, Any]
    device: str = "cpu"
    batch_size: int = 64

    @property
    def dim(self) -> int:
        return int(self.model.cfg.embedding_dim)

    def embed(self, features: np.ndarray) -> np.ndarray:
        from artdb.core.models import embed

        return embed(self.model, features, device=self.device, batch_size=self.batch_size)


@dataclass
class MfccEmbedder:
    """MFCC mean+std from log-mel features (no learning)."""

    frontend: dict[str, Any]
    n_mfcc: int = 20

    @property
    def dim(self) -> int:
        return 2 * (self.n_mfcc - 1)

    def embed(self, features: np.ndarray) -> np.ndarray:
        from scipy.fft import dct

        x = np.asarray(features, dtype=np.float32)  # [n, k, mels, frames]
        ceps = dct(x, type=2, axis=2, norm="ortho")[:, :, 1:self.n_mfcc, :]  # drop c0 (loudness)
        ceps = ceps.transpose(0, 2, 1, 3).reshape(x.shape[0], self.n_mfcc - 1, -1)
        stats = np.concatenate([ceps.mean(axis=2), ceps.std(axis=2)], axis=1)
        return l2_normalize(stats.astype(np.float32))


def load_embedder(model_row, device: str = "cpu", frontend=None) -> Embedder:
    """The embedder of a registered model (``artdb.db.models.Model`` row)."""
    kind = model_row.kind
    config = model_row.config or {}
    if kind == "mfcc":
        return MfccEmbedder(frontend=config.get("frontend", {}), n_mfcc=int(config.get("n_mfcc", 20)))
    if kind in CNN_KINDS:
        from artdb.core.checkpoint import load_checkpoint

        if not model_row.checkpoint_path:
            raise CatalogError(f"model {model_row.name!r} has no checkpoint file recorded")
        ckpt = load_checkpoint(model_row.checkpoint_path, expect_frontend=frontend,
                               map_location=device, expect_sha256=model_row.checksum)
        return CheckpointEmbedder(ckpt.model, ckpt.frontend or {}, device=device)
    raise CatalogError(f"model {model_row.name!r} has kind {kind!r}, which artdb cannot embed with")
