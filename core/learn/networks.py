"""Embedding networks on log-mel excerpts.

``ConvEncoder``: per-excerpt gain removal + per-mel-band BatchNorm on the input, four conv blocks
(3x3 conv, BN, ReLU, 2x2 max-pool), mean over frequency, mean+max pooling over time, and a linear
layer to a ``d``-dim embedding that is L2-normalised. Small enough to train on a CPU in minutes.

``ArtistNet`` wraps the encoder and, for the classification (CL) and joint (ML+CL) methods, a linear
softmax head over the training artists on the (un-normalised) penultimate layer. Only the encoder is
used at inference time; the head is dropped from the embedding but kept in checkpoints.

*Hybrid* embedding (``stats_dim > 0``): the track vector is the concatenation of the CNN vector
and the standardised MFCC + delta statistics vector (:mod:`artdb.core.learn.embedders`), each
L2-normalised and weighted by ``sqrt(1 - stats_weight)`` and ``sqrt(stats_weight)``, so its cosine
similarity is ``(1 - w) * cos_cnn + w * cos_stats``. The standardisation (mean, std) is fitted on
the training catalog and kept as buffers in the state dict; ``embedding_dim`` is then the whole
vector's size and the CNN learns ``embedding_dim - stats_dim`` of it (:attr:`ModelConfig.cnn_dim`).

The whole architecture is described by a plain ``dict`` (:meth:`ArtistNet.config`) so checkpoints
can rebuild it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artdb.core.errors import ConfigError
from artdb.core.features.mfcc import stats_features
from artdb.core.vectors.aggregate import excerpts_to_tracks, l2_normalize

INPUT_NORMS = ("gain_bn", "bn", "instance", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`ArtistNet`; plain values only (stored in checkpoints)."""

    n_mels: int
    embedding_dim: int = 128
    channels: tuple[int, ...] = (32, 64, 96, 128)
    input_norm: str = "gain_bn"
    n_classes: int = 0  # 0: no classification head (pure metric learning)
    dropout: float = 0.0
    # hybrid: the last stats_dim dims of the embedding are standardised MFCC + delta statistics
    stats_dim: int = 0
    stats_weight: float = 0.0
    stats_n_mfcc: int = 20

    @property
    def cnn_dim(self) -> int:
        """Size of the learned (CNN) part of the embedding."""
        return self.embedding_dim - self.stats_dim

    def __post_init__(self):
        if self.n_mels < 4:
            raise ConfigError(f"n_mels must be >= 4, got {self.n_mels}")
        if self.embedding_dim < 2:
            raise ConfigError(f"embedding_dim must be >= 2, got {self.embedding_dim}")
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ConfigError(f"channels must be positive ints, got {self.channels}")
        if self.input_norm not in INPUT_NORMS:
            raise ConfigError(f"input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")
        if self.n_classes < 0:
            raise ConfigError("n_classes must be >= 0")
        if self.stats_dim:
            if self.stats_dim != 4 * (self.stats_n_mfcc - 1):
                raise ConfigError(f"stats_dim must be 4 * (stats_n_mfcc - 1) = {4 * (self.stats_n_mfcc - 1)}")
            if not 0.0 < self.stats_weight < 1.0:
                raise ConfigError(f"a hybrid model needs 0 < stats_weight < 1, got {self.stats_weight}")
            if self.cnn_dim < 2:
                raise ConfigError(f"embedding_dim {self.embedding_dim} leaves {self.cnn_dim} dims for the "
                                  f"CNN beside {self.stats_dim} stats dims")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{**d, "channels": tuple(d.get("channels", cls.channels))})


class InputNorm(nn.Module):
    """Input normalisation so that production loudness does not dominate.

    - ``gain_bn``: subtract each excerpt's mean log-energy (a gain is an additive constant in the
      log-mel domain), then BatchNorm per mel band (dataset statistics, learnt affine).
    - ``bn``: BatchNorm per mel band only.  ``instance``: per excerpt and band, zero mean/unit std
      over time (also removes a static EQ, and with it the stationary timbre). ``none``.
    """

    def __init__(self, n_mels: int, mode: str):
        super().__init__()
        self.mode = mode
        self.bn = nn.BatchNorm1d(n_mels) if mode in ("gain_bn", "bn") else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, mels, frames]
        if self.mode == "gain_bn":
            x = x - x.mean(dim=(1, 2), keepdim=True)
        if self.bn is not None:
            return self.bn(x)
        if self.mode == "instance":
            mu = x.mean(dim=2, keepdim=True)
            sd = x.std(dim=2, keepdim=True).clamp_min(1e-3)
            return (x - mu) / sd
        return x


class ConvEncoder(nn.Module):
    """log-mel ``[B, mels, frames]`` -> un-normalised ``[B, d]`` (see :meth:`ArtistNet.embed`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_norm = InputNorm(cfg.n_mels, cfg.input_norm)
        blocks = []
        c_in = 1
        for c in cfg.channels:
            blocks += [
                nn.Conv2d(c_in, c, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.proj = nn.Linear(2 * c_in, cfg.cnn_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x.float())
        h = self.blocks(x.unsqueeze(1))  # [B, C, mels', frames']
        h = h.mean(dim=2)  # over frequency -> [B, C, T]
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # mean + max over time
        return self.proj(self.dropout(pooled))


class ArtistNet(nn.Module):
    """Encoder + optional softmax head. ``forward`` returns ``(embedding, logits or None)``.

    ``embedding`` is L2-normalised. ``logits`` come from the un-normalised penultimate layer.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvEncoder(cfg)
        self.classifier = nn.Linear(cfg.cnn_dim, cfg.n_classes) if cfg.n_classes else None
        if cfg.stats_dim:  # hybrid: the standardisation of the stats part (set by training)
            self.register_buffer("stats_mean", torch.zeros(cfg.stats_dim))
            self.register_buffer("stats_std", torch.ones(cfg.stats_dim))

    def set_stats_standardizer(self, mean, std) -> None:
        """Store the stats part's per-dimension mean and std (hybrid models only)."""
        if not self.cfg.stats_dim:
            raise ConfigError("not a hybrid model (stats_dim=0)")
        self.stats_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.stats_std.copy_(torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def stats_vectors(self, features: np.ndarray) -> np.ndarray:
        """Standardised, L2-normalised stats vectors of ``[n, k, mels, frames]`` features."""
        v = stats_features(features, self.cfg.stats_n_mfcc)
        v = (v - self.stats_mean.cpu().numpy()) / self.stats_std.cpu().numpy()
        return l2_normalize(v.astype(np.float32))

    def config(self) -> dict:
        return self.cfg.to_dict()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.encoder(x)
        logits = self.classifier(z) if self.classifier is not None else None
        return F.normalize(z.float(), dim=1), logits

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of a batch of excerpts ``[B, mels, frames]``."""
        return F.normalize(self.encoder(x).float(), dim=1)


def build_model(cfg: ModelConfig | dict, channels_last: bool = True) -> ArtistNet:
    """A fresh :class:`ArtistNet`. ``channels_last`` stores conv weights NHWC, which makes
    convolutions ~1.3-1.7x faster on CPU (measured, docs/training.md) and suits cuDNN with AMP;
    weights and outputs are the same either way."""
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    model = ArtistNet(cfg)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def embed(
    model: ArtistNet,
    features,
    device: str = "cpu",
    batch_size: int = 64,
    tracks: np.ndarray | None = None,
    excerpts: np.ndarray | None = None,
    hybrid: bool = True,
) -> np.ndarray:
    """Track vectors: the mean of each track's excerpt embeddings, re-normalised.

    A hybrid model (``stats_dim > 0``) appends the weighted stats part (module docstring) unless
    ``hybrid=False`` (the CNN part alone, ``cnn_dim`` wide: what index mining searches).

    Args:
        model: an :class:`ArtistNet` (its encoder is used; the head is ignored).
        features: ``[n_tracks, k, mels, frames]`` array (numpy, memmap, or anything with numpy
            fancy indexing), any float dtype.
        device: torch device for inference.
        batch_size: excerpts per forward pass.
        tracks: optional track rows to embed (default all, in order).
        excerpts: optional ``[len(tracks)]`` excerpt index per track: embed that one excerpt only
            (used by index mining to keep refreshes cheap). Default: all ``k`` excerpts.

    Returns:
        ``[len(tracks), d]`` float32, unit rows (``d = embedding_dim``, or ``cnn_dim`` with
        ``hybrid=False``).
    """
    shape = tuple(features.shape)
    if len(shape) != 4:
        raise ConfigError(f"features must be [n_tracks, k, mels, frames], got shape {shape}")
    rows = np.arange(shape[0]) if tracks is None else np.asarray(tracks, dtype=np.int64)
    k = 1 if excerpts is not None else shape[1]
    per = max(1, batch_size // k)
    was_training = model.training
    model.eval()
    use_stats = hybrid and model.cfg.stats_dim > 0
    d_cnn = model.cfg.cnn_dim
    out = np.zeros((len(rows), d_cnn + (model.cfg.stats_dim if use_stats else 0)), dtype=np.float32)
    w = float(model.cfg.stats_weight)
    try:
        with torch.inference_mode():
            for s in range(0, len(rows), per):
                r = rows[s : s + per]
                if excerpts is not None:
                    x = np.asarray(features[r, np.asarray(excerpts)[s : s + per]])[:, None]
                else:
                    x = np.asarray(features[r])
                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
                e = model.embed(t.reshape(-1, shape[2], x.shape[-1]))
                cnn = excerpts_to_tracks(e.reshape(len(r), k, -1).cpu().numpy())
                if use_stats:
                    out[s : s + len(r), :d_cnn] = np.sqrt(1.0 - w) * cnn
                    out[s : s + len(r), d_cnn:] = np.sqrt(w) * model.stats_vectors(x)
                else:
                    out[s : s + len(r)] = cnn
    finally:
        model.train(was_training)
    return out
