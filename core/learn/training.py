"""Training loop for artist embeddings: CL, ML (triplet) and joint ML+CL.

Entry point: :func:`train` ``(data, config, progress=None, model=None) -> TrainResult``.

- Batches: ``P`` artists x ``m`` tracks (:class:`~artdb.core.sampling.ArtistBatchSampler`); one
  random excerpt of the ``k`` per track and, optionally, a random crop in time, read straight from
  the feature array (no audio decoding).
- ML mining: semi-hard or hard in-batch mining with album/genre side information
  (:class:`~artdb.core.sampling.SideInfoTripletMiner`), optionally switching from semi-hard to hard
  after a share of the steps; ``mining="index"`` also re-embeds the training tracks every
  ``index_refresh_every`` steps, refreshes an exact index and builds batches from anchors and their
  nearest other-artist neighbours (:class:`~artdb.core.sampling.NeighbourBatchSampler`), within a
  time budget (``index_budget``, share of training time).
- Validation is split by artist: held-out artists are put in artificial homonym groups of 2-4, their
  album vectors clustered (agglomerative, cosine/average, threshold fitted on those groups), and the
  mean ARI selects the model and drives early stopping. When too few artists have two albums
  (``val_unit="auto"``), artists with two tracks are held out and their *tracks* are clustered.
- Collapse guard: non-finite loss or embedding spread (mean pairwise distance in the batch) below
  ``min_spread`` for ``collapse_patience`` steps restores the last good state and stops (or raises
  :class:`TrainingCollapsedError` with ``on_collapse="raise"``).

Library code never prints: progress goes to the optional ``progress(dict)`` callback.
Deterministic on CPU for a given seed and thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from artdb.core.vectors.aggregate import mean_normalized
from artdb.core.analysis.clustering import fit_threshold, make_homonym_groups
from artdb.core.features.mfcc import STATS_N_MFCC, fit_standardizer
from artdb.core.errors import ArtdbError, ConfigError
from artdb.core.learn.losses import METHODS, ArtistLoss, mean_pairwise_distance
from artdb.core.learn.networks import ArtistNet, ModelConfig, build_model, embed
from artdb.core.learn.sampling import (
    ArtistBatchSampler,
    NeighbourBatchSampler,
    SideInfoTripletMiner,
    other_artist_neighbours,
)

MININGS = ("semihard", "hard", "index")
VAL_UNITS = ("auto", "album", "track")
Progress = Callable[[dict], None]


class TrainingCollapsedError(ArtdbError):
    """The embedding collapsed (or the loss diverged) and ``on_collapse='raise'`` was asked."""


@dataclass
class TrainingData:
    """What training reads: features and per-track labels (all row-aligned).

    Args:
        features: ``[n_tracks, k, mels, frames]`` (float16 numpy array or memmap-like with fancy
            indexing).
        artists: ``[n_tracks]`` artist (page) id of each track — a noisy label.
        albums: ``[n_tracks]`` album id (default: one album per track, i.e. no album information).
        genres: ``[n_tracks]`` genre id (default: one genre).
        track_ids: ``[n_tracks]`` catalog ids (default ``0..n-1``); kept for reports.
    """

    features: Any
    artists: np.ndarray
    albums: np.ndarray | None = None
    genres: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    def __post_init__(self):
        shape = tuple(self.features.shape)
        if len(shape) != 4:
            raise ConfigError(f"features must be [n_tracks, k, mels, frames], got shape {shape}")
        n = shape[0]
        self.artists = np.asarray(self.artists)
        self.albums = np.arange(n) if self.albums is None else np.asarray(self.albums)
        self.genres = np.zeros(n, dtype=np.int64) if self.genres is None else np.asarray(self.genres)
        self.track_ids = np.arange(n) if self.track_ids is None else np.asarray(self.track_ids)
        for name in ("artists", "albums", "genres", "track_ids"):
            if getattr(self, name).shape != (n,):
                raise ConfigError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")

    @property
    def n_tracks(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_excerpts(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_mels(self) -> int:
        return int(self.features.shape[2])

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[3])


@dataclass(frozen=True)
class TrainConfig:
    """Every training option, with defaults meant for a small catalog on a CPU."""

    method: str = "ml"  # ml | cl | joint
    mining: str = "semihard"  # semihard | hard | index
    hard_after: float | None = None  # share of steps after which semi-hard mining becomes hard
    p_other_album: float = 0.8  # positives from another album of the anchor's artist
    p_same_genre: float = 0.5  # negatives from another artist of the anchor's genre
    same_genre_share: float = 0.5  # artists in a batch drawn from a genre already in it
    # model
    embedding_dim: int = 128  # the learned (CNN) part; a hybrid model appends the stats part
    channels: tuple[int, ...] = (32, 64, 96, 128)
    input_norm: str = "gain_bn"
    # hybrid embedding (docs/training.md): weight of the standardised MFCC + delta statistics in the
    # track vector's cosine similarity; 0 = the CNN alone. 0.5 beat both parts on the real dev
    # catalog and on a synthetic one (docs/training.md, "Hybrid embedding")
    stats_weight: float = 0.5
    # optimisation
    steps: int = 2000
    epochs: float | None = None  # if set, steps = ceil(epochs * n_train_tracks / batch)
    artists_per_batch: int = 16  # P
    per_artist: int = 4  # m
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"  # cosine | constant
    margin: float = 0.2
    ml_weight: float = 1.0
    cl_weight: float = 1.0
    crop_frames: int | None = None
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # mixed precision (float16 autocast + grad scaling) on CUDA only
    num_threads: int | None = None
    channels_last: bool = True  # NHWC conv weights: faster on CPU and with cuDNN AMP
    # validation (split by artist)
    val_fraction: float = 0.2
    val_min_albums: int = 2  # units (albums, or tracks at track unit) a held-out artist needs
    # what validation clusters: "album" (the paper), "track" (the paper's protocol at track unit,
    # for catalogs of single-album artists), "auto": albums when they can form homonym groups,
    # else tracks
    val_unit: str = "auto"
    val_group_sizes: tuple[int, int] = (2, 4)
    val_every: int = 100
    val_excerpts: int | None = 2  # fixed excerpts per track at validation (None: all k)
    patience: int = 5  # validation checks without improvement before early stop (0: never)
    linkage: str = "average"
    metric: str = "cosine"
    # index mining
    index_refresh_every: int = 100
    index_neighbours: int = 10
    index_budget: float | None = 0.15  # refresh time at most this share of step time (None: no cap)
    index_pair_share: float = 0.5  # share of batch slots filled by anchor/neighbour artist pairs
    index_backend: str = "auto"  # auto | torch | faiss
    # collapse guard
    min_spread: float = 0.1
    collapse_patience: int = 3
    collapse_warmup: int = 20
    on_collapse: str = "rollback"  # rollback | raise
    log_every: int = 10
    batch_size_embed: int = 128

    def __post_init__(self):
        def bad(msg):
            raise ConfigError(msg)

        if self.method not in METHODS:
            bad(f"method must be one of {METHODS}, got {self.method!r}")
        if self.mining not in MININGS:
            bad(f"mining must be one of {MININGS}, got {self.mining!r}")
        if self.hard_after is not None and not 0.0 <= self.hard_after <= 1.0:
            bad("hard_after must be in [0, 1] or None")
        for name in ("p_other_album", "p_same_genre", "same_genre_share", "index_pair_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.stats_weight < 1.0:
            bad(f"stats_weight must be in [0, 1), got {self.stats_weight}")
        if self.index_budget is not None and self.index_budget <= 0:
            bad("index_budget must be > 0 or None")
        if not 0.0 <= self.val_fraction < 1.0:
            bad("val_fraction must be in [0, 1)")
        if self.val_unit not in VAL_UNITS:
            bad(f"val_unit must be one of {VAL_UNITS}, got {self.val_unit!r}")
        if self.steps < 1 and self.epochs is None:
            bad("steps must be >= 1")
        if self.per_artist < 2 or self.artists_per_batch < 2:
            bad("per_artist (m) and artists_per_batch (P) must be >= 2")
        if self.lr <= 0 or self.margin <= 0:
            bad("lr and margin must be > 0")
        if self.lr_schedule not in ("cosine", "constant"):
            bad("lr_schedule must be 'cosine' or 'constant'")
        if self.on_collapse not in ("rollback", "raise"):
            bad("on_collapse must be 'rollback' or 'raise'")
        if self.index_backend not in ("auto", "torch", "faiss"):
            bad("index_backend must be 'auto', 'torch' or 'faiss'")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            bad(f"device must be 'cpu' or 'cuda[:n]', got {self.device!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "val_group_sizes", tuple(int(c) for c in self.val_group_sizes))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["val_group_sizes"] = list(self.val_group_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training options: {sorted(unknown)}")
        d = dict(d)
        for key in ("channels", "val_group_sizes"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`train` returns. ``model`` holds the selected (best-validated) weights, eval mode."""

    model: ArtistNet
    model_config: dict
    train_config: dict
    status: str  # completed | early_stopped | collapsed
    message: str
    steps: int
    best_step: int
    best_val_ari: float
    initial_val_ari: float
    threshold: float  # clustering distance threshold fitted on the validation groups
    class_ids: list  # training artist ids, in the order of the softmax head's classes
    val_artists: list
    history: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    val_unit: str = "album"  # what validation clustered: album | track

    def summary(self) -> dict:
        """Plain-value summary for checkpoints and reports (no model, no history)."""
        return {
            "status": self.status,
            "message": self.message,
            "steps": self.steps,
            "best_step": self.best_step,
            "best_val_ari": self.best_val_ari,
            "initial_val_ari": self.initial_val_ari,
            "threshold": self.threshold,
            "linkage": self.train_config.get("linkage"),
            "metric": self.train_config.get("metric"),
            "n_classes": len(self.class_ids),
            "n_val_artists": len(self.val_artists),
            "val_unit": self.val_unit,
            "timings": dict(self.timings),
        }


class CollapseGuard:
    """Watches embedding spread, active triplets and loss; ``update`` returns a reason once collapsed.

    Spread is the mean pairwise distance of the batch's unit embeddings (~1.41 when spread out, 0
    when all equal). A step is *degenerate* if spread < ``min_spread``, or if nearly every triplet
    is active (>= ``max_active``) while spread < ``3 * min_spread`` (the triplet loss sitting at
    the margin). Collapse: a non-finite loss (at once), or ``patience`` consecutive degenerate steps
    after ``warmup`` steps (a freshly initialised network can start with a small spread).
    """

    def __init__(self, min_spread: float = 0.1, patience: int = 3, warmup: int = 20, max_active: float = 0.98):
        self.min_spread = float(min_spread)
        self.patience = max(1, int(patience))
        self.warmup = int(warmup)
        self.max_active = float(max_active)
        self.low = 0
        self.steps = 0

    def update(self, loss: float, spread: float, active_fraction: float | None = None) -> str | None:
        self.steps += 1
        if not math.isfinite(loss):
            return f"loss became {loss}"
        if not math.isfinite(spread):
            return f"embedding spread became {spread}"
        degenerate = spread < self.min_spread or (
            active_fraction is not None and active_fraction >= self.max_active and spread < 3 * self.min_spread
        )
        self.low = self.low + 1 if degenerate and self.steps > self.warmup else 0
        if self.low >= self.patience:
            act = "" if active_fraction is None else f", {active_fraction:.0%} of triplets active"
            return (
                f"embeddings collapsed: mean pairwise distance {spread:.4f} "
                f"(limit {self.min_spread}){act} for {self.low} steps"
            )
        return None


def split_artists(
    artists: np.ndarray, albums: np.ndarray, val_fraction: float, rng: np.random.Generator, min_albums: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Artist-level split: ``(train_artist_ids, val_artist_ids)``; val artists have >= min_albums albums."""
    ids = np.unique(artists)
    if val_fraction <= 0:
        return ids, ids[:0]
    pairs = np.unique(np.stack([_codes(artists), _codes(albums)], axis=1), axis=0)
    art_codes, n_alb = np.unique(pairs[:, 0], return_counts=True)
    eligible = ids[art_codes[n_alb >= min_albums]]
    n_val = min(len(eligible), int(round(val_fraction * len(ids))))
    val = np.sort(rng.choice(eligible, size=n_val, replace=False)) if n_val else ids[:0]
    return np.setdiff1d(ids, val), val


def _n_with_units(artists: np.ndarray, units: np.ndarray, min_units: int) -> int:
    """How many artists have at least ``min_units`` distinct units (albums)."""
    pairs = np.unique(np.stack([_codes(artists), _codes(units)], axis=1), axis=0)
    return int((np.unique(pairs[:, 0], return_counts=True)[1] >= min_units).sum())


def _codes(x: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(x), return_inverse=True)[1].reshape(-1)


def album_vectors(track_vectors: np.ndarray, artists: np.ndarray, albums: np.ndarray):
    """``(album_vectors [g, d], album_artists [g])``: tracks mean-normalised per (artist, album)."""
    artists = np.asarray(artists)
    x = np.asarray(track_vectors, dtype=np.float32)
    if len(artists) == 0:
        return np.zeros((0, x.shape[1]), np.float32), artists[:0]
    pairs = np.stack([_codes(artists), _codes(albums)], axis=1)
    _, first, key = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    _, vecs = mean_normalized(x, key.reshape(-1))
    return vecs, artists[first]


def split_validation(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator):
    """``(train_artist_ids, val_artist_ids, unit)``: the artist-level split and what validation clusters.

    ``val_unit="auto"`` holds out artists with ``val_min_albums`` albums when at least half of the
    artists have that many (a multi-album catalog) and they fill two homonym groups
    (``2 * val_group_sizes[0]`` artists: one group of a few albums saturates at ARI 1 and cannot
    select a model); otherwise artists with that many *tracks*, whose tracks are then clustered
    (catalogs where most artists have a single album).
    """
    unit = cfg.val_unit
    if unit in ("auto", "album"):
        n_artists = len(np.unique(data.artists))
        train_ids, val_ids = split_artists(data.artists, data.albums, cfg.val_fraction, rng, cfg.val_min_albums)
        multi = _n_with_units(data.artists, data.albums, cfg.val_min_albums)
        if (unit == "album" or cfg.val_fraction <= 0
                or (len(val_ids) >= 2 * cfg.val_group_sizes[0] and 2 * multi >= n_artists)):
            return train_ids, val_ids, "album"
    tracks = np.arange(data.n_tracks)
    train_ids, val_ids = split_artists(data.artists, tracks, cfg.val_fraction, rng, cfg.val_min_albums)
    return train_ids, val_ids, "track"


class _Validator:
    def __init__(self, data: TrainingData, val_ids: np.ndarray, config: TrainConfig, rng, unit: str = "album"):
        self.rows = np.flatnonzero(np.isin(data.artists, val_ids))
        self.data, self.config, self.unit = data, config, unit
        # track unit: every track is its own "album"
        self.albums = data.albums if unit == "album" else np.arange(data.n_tracks)
        _, unit_artists = album_vectors(
            np.zeros((len(self.rows), 1), np.float32), data.artists[self.rows], self.albums[self.rows]
        )
        self.groups = make_homonym_groups(
            unit_artists, rng, sizes=config.val_group_sizes, min_albums=config.val_min_albums
        )
        k = data.n_excerpts
        self.excerpts = None
        if config.val_excerpts is not None and config.val_excerpts < k:
            # fixed, evenly spaced excerpts: the same ones at every check
            pick = np.linspace(0, k - 1, config.val_excerpts).round().astype(int)
            self.rows = np.repeat(self.rows, len(pick))
            self.excerpts = np.tile(pick, len(self.rows) // len(pick))

    @property
    def enabled(self) -> bool:
        return len(self.groups) > 0

    def __call__(self, model: ArtistNet) -> tuple[float, float]:
        vecs = embed(
            model, self.data.features, self.config.device, self.config.batch_size_embed,
            tracks=self.rows, excerpts=self.excerpts,
        )
        if self.excerpts is not None:  # several rows per track: aggregate back to tracks
            _, vecs = mean_normalized(vecs, self.rows)
            rows = np.unique(self.rows)
        else:
            rows = self.rows
        units, unit_artists = album_vectors(vecs, self.data.artists[rows], self.albums[rows])
        t, ari, _ = fit_threshold(
            self.groups, units, unit_artists, linkage=self.config.linkage, metric=self.config.metric
        )
        return ari, t


def make_search_index(dim: int, backend: str = "auto", device: str = "cpu"):
    """An empty exact cosine index from ``artdb.indexer`` for index mining.

    ``torch``/``auto``: ``TorchExactIndex`` on the training device (no FAISS GPU build needed);
    ``faiss``: FAISS ``IDMap2,Flat``.
    """
    from artdb import indexer

    if backend == "faiss":
        return indexer.VectorIndex.exact(dim)
    return indexer.TorchExactIndex(dim, device=device)


def read_excerpts(features, rows: np.ndarray, rng: np.random.Generator, crop: int | None = None) -> np.ndarray:
    """One random excerpt per row (and a random ``crop``-frame window): ``[len(rows), mels, frames']`` float32."""
    exc = rng.integers(features.shape[1], size=len(rows))
    x = np.asarray(features[rows, exc], dtype=np.float32)
    if crop and crop < x.shape[-1]:
        starts = rng.integers(0, x.shape[-1] - crop + 1, size=len(rows))
        x = np.stack([x[i, :, s : s + crop] for i, s in enumerate(starts)])
    return np.ascontiguousarray(x)


def _state_copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None = None,
    model: ArtistNet | None = None,
) -> TrainResult:
    """Train an artist embedding; see the module docstring. ``model`` continues from given weights.

    The caller's torch RNG state and thread count are restored afterwards (the run seeds its own).
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available")
    threads = torch.get_num_threads()
    fork_devices = [device] if device.type == "cuda" else []
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
            torch.manual_seed(config.seed)
            return _train(data, config, progress, model, device)
    finally:
        torch.set_num_threads(threads)


def _train(data, cfg: TrainConfig, progress, model, device) -> TrainResult:
    emit = progress or (lambda _event: None)
    rng = np.random.default_rng(cfg.seed)

    train_ids, val_ids, val_unit = split_validation(data, cfg, rng)
    if len(train_ids) < cfg.artists_per_batch:
        raise ConfigError(
            f"{len(train_ids)} training artists < artists_per_batch={cfg.artists_per_batch}"
        )
    validator = _Validator(data, val_ids, cfg, np.random.default_rng(cfg.seed + 1), val_unit)
    train_rows = np.flatnonzero(np.isin(data.artists, train_ids))
    class_of = {a: i for i, a in enumerate(train_ids.tolist())}
    tr_artists = data.artists[train_rows]
    tr_classes = np.array([class_of[a] for a in tr_artists.tolist()], dtype=np.int64)
    tr_albums, tr_genres = data.albums[train_rows], data.genres[train_rows]

    batch = cfg.artists_per_batch * cfg.per_artist
    steps = cfg.steps if cfg.epochs is None else max(1, math.ceil(cfg.epochs * len(train_rows) / batch))

    use_cl = cfg.method in ("cl", "joint")
    # the stats part needs STATS_N_MFCC mel bands; with fewer the model is the CNN alone
    hybrid = cfg.stats_weight > 0 and data.n_mels >= STATS_N_MFCC
    stats_dim = 4 * (STATS_N_MFCC - 1) if hybrid else 0
    mcfg = ModelConfig(
        n_mels=data.n_mels,
        embedding_dim=cfg.embedding_dim + stats_dim,
        channels=cfg.channels,
        input_norm=cfg.input_norm,
        n_classes=len(train_ids) if use_cl else 0,
        stats_dim=stats_dim,
        stats_weight=cfg.stats_weight if hybrid else 0.0,
        stats_n_mfcc=STATS_N_MFCC,
    )
    if model is None:
        model = build_model(mcfg)
        if stats_dim:  # fitted on every track (no labels used), as `add-baseline stats` does
            model.set_stats_standardizer(*fit_standardizer(data.features, STATS_N_MFCC))
    else:
        if model.cfg.n_mels != data.n_mels:
            raise ConfigError(f"model expects {model.cfg.n_mels} mel bands, data has {data.n_mels}")
        if use_cl and (model.classifier is None or model.cfg.n_classes != len(train_ids)):
            raise ConfigError(f"method {cfg.method!r} needs a head with {len(train_ids)} classes")
        mcfg = model.cfg
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model.to(device).train()

    sampler_cls = NeighbourBatchSampler if cfg.mining == "index" else ArtistBatchSampler
    extra = {"pair_share": cfg.index_pair_share} if cfg.mining == "index" else {}
    sampler = sampler_cls(
        tr_artists, tr_albums, tr_genres,
        artists_per_batch=cfg.artists_per_batch, per_artist=cfg.per_artist, batches=steps,
        same_genre_share=cfg.same_genre_share, seed=cfg.seed, **extra,
    )
    first_type = "hard" if cfg.mining == "hard" else "semihard"
    miner = SideInfoTripletMiner(
        margin=cfg.margin, type_of_triplets=first_type,
        p_other_album=cfg.p_other_album, p_same_genre=cfg.p_same_genre, seed=cfg.seed,
    )
    loss_fn = ArtistLoss(cfg.method, cfg.margin, cfg.ml_weight, cfg.cl_weight)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) * 0.95 + 0.05)
    else:
        sched = None
    amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    guard = CollapseGuard(cfg.min_spread, cfg.collapse_patience, cfg.collapse_warmup)

    history: list[dict] = []

    def report(event: dict) -> None:
        history.append(event)
        emit(dict(event))

    # -- initial validation --------------------------------------------------------------
    initial_ari, best_t = (float("nan"), float("nan"))
    if validator.enabled:
        initial_ari, best_t = validator(model)
        report({"event": "val", "step": 0, "val_ari": initial_ari, "threshold": best_t})
    best_ari, best_step = initial_ari, 0
    best_state = _state_copy(model)
    good_state, good_step = best_state, 0
    bad_checks = 0
    status, message = "completed", f"trained {steps} steps"

    k = data.n_excerpts
    crop = cfg.crop_frames if cfg.crop_frames and cfg.crop_frames < data.n_frames else None
    t_start = time.perf_counter()
    refresh_s = val_s = 0.0
    n_refresh = 0
    excerpts_seen = 0
    step = 0
    for step in range(1, steps + 1):
        # -- index refresh ------------------------------------------------------------------
        if cfg.mining == "index" and step % cfg.index_refresh_every == 0:
            elapsed = time.perf_counter() - t_start
            if n_refresh == 0 or cfg.index_budget is None or refresh_s <= cfg.index_budget * (elapsed - refresh_s - val_s):
                t0 = time.perf_counter()
                exc = rng.integers(k, size=len(train_rows))
                vecs = embed(model, data.features, cfg.device, cfg.batch_size_embed, tracks=train_rows,
                             excerpts=exc, hybrid=False)
                index = make_search_index(vecs.shape[1], cfg.index_backend, cfg.device)
                nb = other_artist_neighbours(index, vecs, tr_artists, cfg.index_neighbours)
                sampler.set_neighbours(nb)
                dt = time.perf_counter() - t0
                refresh_s += dt
                n_refresh += 1
                report({"event": "refresh", "step": step, "seconds": dt, "n_tracks": len(train_rows)})
        if cfg.hard_after is not None and miner.type_of_triplets != "hard" and step > cfg.hard_after * steps:
            miner.type_of_triplets = "hard"
            report({"event": "mining", "step": step, "type": "hard"})

        # -- batch ------------------------------------------------------------------------
        local = np.asarray(sampler.sample_batch(), dtype=np.int64)
        rows = train_rows[local]
        xb = torch.from_numpy(read_excerpts(data.features, rows, rng, crop)).to(device, non_blocking=True)
        labels = torch.from_numpy(tr_classes[local]).to(device)
        excerpts_seen += len(rows)

        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            emb, logits = model(xb)
        triplets = None
        if loss_fn.use_ml:
            triplets = miner(emb, labels, albums=tr_albums[local], genres=tr_genres[local])
        loss, parts = loss_fn(emb, logits, labels, triplets)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()

        loss_v = float(loss.detach())
        spread = mean_pairwise_distance(emb)
        active = miner.active_fraction if loss_fn.use_ml else None
        reason = guard.update(loss_v, spread, active)
        if step % cfg.log_every == 0 or step == 1 or reason:
            ev = {"event": "step", "step": step, "loss": loss_v, "spread": spread,
                  "lr": opt.param_groups[0]["lr"], **parts}
            if loss_fn.use_ml:
                ev["active_fraction"] = active
                ev["triplets"] = int(len(triplets[0]))
            report(ev)
        if reason:
            back = best_step if validator.enabled else good_step
            message = f"training stopped at step {step}: {reason}; rolled back to the weights of step {back}"
            report({"event": "collapse", "step": step, "reason": reason})
            if cfg.on_collapse == "raise":
                raise TrainingCollapsedError(f"training stopped at step {step}: {reason}")
            status = "collapsed"
            break

        # -- validation -----------------------------------------------------------------
        if validator.enabled and (step % cfg.val_every == 0 or step == steps):
            t0 = time.perf_counter()
            ari, t = validator(model)
            val_s += time.perf_counter() - t0
            model.train()
            report({"event": "val", "step": step, "val_ari": ari, "threshold": t})
            good_state, good_step = _state_copy(model), step
            improved = ari > best_ari + 1e-9 or not math.isfinite(best_ari)
            if improved or ari >= best_ari - 1e-9:
                # a tie keeps the later (longer-trained) weights; only a gain resets the patience
                best_ari, best_step, best_t = ari, step, t
                best_state = good_state
            if improved:
                bad_checks = 0
            else:
                bad_checks += 1
                if cfg.patience and bad_checks >= cfg.patience:
                    status = "early_stopped"
                    message = f"early stop at step {step}: no validation gain in {bad_checks} checks"
                    break
        elif not validator.enabled and step % cfg.val_every == 0:
            good_state, good_step = _state_copy(model), step
            best_state, best_step = good_state, step

    if not validator.enabled and status != "collapsed":
        best_state, best_step = _state_copy(model), step
    train_s = time.perf_counter() - t_start
    model.load_state_dict(best_state if status != "collapsed" or validator.enabled else good_state)
    model.eval()
    timings = {
        "train_s": train_s,
        "refresh_s": refresh_s,
        "refresh_fraction": refresh_s / train_s if train_s > 0 else 0.0,
        "n_refresh": n_refresh,
        "val_s": val_s,
        "excerpts_per_s": excerpts_seen / max(train_s - refresh_s - val_s, 1e-9),
    }
    report({"event": "done", "step": step, "status": status, "best_val_ari": best_ari, "best_step": best_step})
    return TrainResult(
        model=model,
        model_config=mcfg.to_dict(),
        train_config=cfg.to_dict(),
        status=status,
        message=message,
        steps=step,
        best_step=best_step,
        best_val_ari=float(best_ari),
        initial_val_ari=float(initial_ari),
        threshold=float(best_t),
        class_ids=train_ids.tolist(),
        val_artists=val_ids.tolist(),
        history=history,
        timings=timings,
        val_unit=val_unit,
    )


def synthetic_training_data(
    n_artists: int = 24,
    albums_per_artist: int = 3,
    tracks_per_album: int = 4,
    n_excerpts: int = 2,
    n_mels: int = 32,
    n_frames: int = 48,
    n_genres: int = 3,
    artist_strength: float = 1.0,
    album_strength: float = 1.5,
    noise: float = 1.0,
    seed: int = 0,
) -> TrainingData:
    """A synthetic "log-mel" catalog with known structure, for tests, benchmarks and smoke runs.

    Each genre has a smooth spectral envelope; each artist adds spectral peaks and a band-limited
    temporal modulation at its own rate; each album adds a production EQ curve and a gain offset
    (``album_strength``: what an embedding must learn to ignore); each excerpt adds white noise.
    Returns float16 features ``[n_tracks, k, n_mels, n_frames]``; album ids are globally unique.
    """
    rng = np.random.default_rng(seed)
    mel = np.linspace(0.0, 1.0, n_mels)[:, None]
    time_ = np.arange(n_frames)[None, :]

    def smooth_curve(scale):
        c = rng.normal(size=4) * scale
        return (c[0] * (mel - 0.5) + c[1] * np.sin(np.pi * mel) + c[2] * np.cos(2 * np.pi * mel)
                + c[3] * np.sin(3 * np.pi * mel))

    genre_env = [smooth_curve(1.0) for _ in range(n_genres)]
    feats, artists, albums, genres = [], [], [], []
    album_id = 0
    for a in range(n_artists):
        g = a % n_genres
        peaks = rng.uniform(0, 1, size=3)
        pattern = sum(np.exp(-((mel - p) ** 2) / 0.002) for p in peaks) * artist_strength
        rate = rng.uniform(0.05, 0.4)
        band = np.exp(-((mel - rng.uniform(0.2, 0.8)) ** 2) / 0.01)
        for _ in range(albums_per_artist):
            eq = smooth_curve(album_strength) + rng.normal() * 3.0
            for _ in range(tracks_per_album):
                track_var = rng.normal(size=(n_mels, 1)) * 0.3
                ex = []
                for _ in range(n_excerpts):
                    phase = rng.uniform(0, 2 * np.pi)
                    mod = artist_strength * band * np.sin(2 * np.pi * rate * time_ + phase)
                    x = genre_env[g] + pattern + mod + eq + track_var
                    ex.append(x + rng.normal(size=(n_mels, n_frames)) * noise)
                feats.append(ex)
                artists.append(a)
                albums.append(album_id)
                genres.append(g)
            album_id += 1
    return TrainingData(
        features=np.asarray(feats, dtype=np.float16),
        artists=np.asarray(artists),
        albums=np.asarray(albums),
        genres=np.asarray(genres),
    )
