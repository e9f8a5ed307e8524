"""Turning stored log-mel features into track vectors with a registered model.

Every model kind in the registry maps to an ``Embedder`` here, so ingest, audit, neighbors and
evaluation embed through one place:

- ``cl`` / ``ml`` / ``joint`` / ``untrained``: a CNN checkpoint (``artdb.core.learn.checkpoint``);
- ``mfcc``: the paper's plain no-learning baseline — MFCCs computed from the stored log-mels (a DCT
  over mel bands), mean and std over frames and excerpts, without c0 (loudness);
- ``stats``: a stronger no-learning embedding — MFCC and delta-MFCC mean+std
  (``features.mfcc.stats_features``), each dimension standardised with a mean and std fitted once on
  a catalog (``features.mfcc.fit_standardizer``)
  and stored in the model's config, so every track is embedded by the same fixed function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from artdb.core.errors import CatalogError
from artdb.core.features.mfcc import STATS_N_MFCC, fit_standardizer, mfcc_mean_std, stats_features
from artdb.core.learn.backbone import SERVED_KEY, embed_backbone, set_standardisation
from artdb.core.learn.checkpoint import checkpoint_file, load_checkpoint
from artdb.core.learn.networks import embed
from artdb.core.vectors.aggregate import l2_normalize

__all__ = ["BACKBONE_KIND", "BackboneEmbedder", "CNN_KINDS", "STATS_N_MFCC", "CheckpointEmbedder", "Embedder",
           "MfccEmbedder", "StatsEmbedder", "fit_standardizer", "load_embedder", "stats_features"]

CNN_KINDS = ("cl", "ml", "joint", "untrained")
BACKBONE_KIND = "backbone"  # a BackboneHead on stored backbone features (learn.backbone)


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
        return l2_normalize(mfcc_mean_std(features, self.n_mfcc))


@dataclass
class StatsEmbedder:
    """Standardised MFCC + delta mean+std (no learning; ``mean``/``std`` fitted on a catalog)."""

    frontend: dict[str, Any]
    mean: np.ndarray
    std: np.ndarray
    n_mfcc: int = STATS_N_MFCC

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        want = 4 * (self.n_mfcc - 1)
        if self.mean.shape != (want,) or self.std.shape != (want,):
            raise CatalogError(f"stats standardisation must have {want} dims for n_mfcc={self.n_mfcc}, "
                               f"got {self.mean.shape} and {self.std.shape}")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def config(self) -> dict[str, Any]:
        return {"frontend": self.frontend, "n_mfcc": self.n_mfcc,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StatsEmbedder:
        try:
            return cls(frontend=config.get("frontend", {}), mean=config["mean"], std=config["std"],
                       n_mfcc=int(config.get("n_mfcc", STATS_N_MFCC)))
        except KeyError as e:
            raise CatalogError(f"stats model config lacks {e.args[0]!r} (register it with "
                               "`artdb models add-baseline stats`)") from None

    @classmethod
    def fit(cls, features, frontend: dict[str, Any] | None = None, n_mfcc: int = STATS_N_MFCC,
            rows: np.ndarray | None = None) -> StatsEmbedder:
        mean, std = fit_standardizer(features, n_mfcc, rows=rows)
        return cls(frontend=frontend or {}, mean=mean, std=std, n_mfcc=n_mfcc)

    def standardized(self, features: np.ndarray) -> np.ndarray:
        return (stats_features(features, self.n_mfcc) - self.mean) / self.std

    def embed(self, features: np.ndarray) -> np.ndarray:
        return l2_normalize(self.standardized(features).astype(np.float32))


@dataclass
class BackboneEmbedder:
    """A :class:`~artdb.core.learn.backbone.BackboneHead` over stored backbone features.

    ``frontend`` is the :class:`~artdb.core.features.backbone.BackboneConfig` dict of the store it
    reads (``features.backbone.open_layout_store`` opens either kind from such a dict).
    """

    model: Any
    frontend: dict[str, Any]
    device: str = "cpu"
    batch_size: int = 256

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    def embed(self, features: np.ndarray) -> np.ndarray:
        return embed_backbone(self.model, features, batch_size=self.batch_size, device=self.device)


def load_embedder(model_row, device: str = "cpu", frontend=None, served: bool = True,
                  paths=None) -> Embedder:
    """The embedder of a registered model (``artdb.db.models.Model`` row).

    A backbone model applies the standardisation refitted on the catalog it serves
    (``learn.adapt``) when its config holds one and ``served``; else its checkpoint's own.
    ``paths`` (the :class:`~artdb.core.config.Paths` of the home) locates its checkpoint
    (:func:`~artdb.core.learn.checkpoint.checkpoint_file`).
    """
    kind = model_row.kind
    config = model_row.config or {}
    if kind == "mfcc":
        return MfccEmbedder(frontend=config.get("frontend", {}), n_mfcc=int(config.get("n_mfcc", 20)))
    if kind == "stats":
        return StatsEmbedder.from_config(config)
    if kind in CNN_KINDS:
        if not model_row.checkpoint_path:
            raise CatalogError(f"model {model_row.name!r} has no checkpoint file recorded")
        ckpt = load_checkpoint(checkpoint_file(model_row.checkpoint_path, paths), expect_frontend=frontend,
                               map_location=device, expect_sha256=model_row.checksum)
        return CheckpointEmbedder(ckpt.model, ckpt.frontend or {}, device=device)
    if kind == BACKBONE_KIND:
        if not model_row.checkpoint_path:
            raise CatalogError(f"model {model_row.name!r} has no checkpoint file recorded")
        ckpt = load_checkpoint(checkpoint_file(model_row.checkpoint_path, paths), map_location=device,
                               expect_sha256=model_row.checksum)
        if served and config.get(SERVED_KEY):
            set_standardisation(ckpt.model, config[SERVED_KEY])
        return BackboneEmbedder(ckpt.model, ckpt.frontend or config.get("backbone", {}), device=device)
    raise CatalogError(f"model {model_row.name!r} has kind {kind!r}, which artdb cannot embed with")
