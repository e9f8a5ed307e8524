"""What training reads, how it is configured and what it returns: :class:`TrainingData`,
:class:`TrainConfig` (every option, with its defaults: the one home ``artdb train`` and the evaluation
read them from) and :class:`TrainResult`.

Light on purpose (no torch at import): the CLI reads its option defaults from ``TrainConfig()``
while ``artdb train --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import ConfigError

if TYPE_CHECKING:
    from artdb.core.learn.networks import ArtistNet

METHODS = ("ml", "cl", "joint")
MININGS = ("semihard", "hard", "index")
VAL_UNITS = ("auto", "album", "track")
# Which side information the sampler uses: positives from another album of the anchor's artist
# ("album"), negatives and batch-mates from the anchor's genre ("genre"), both, or none.
SIDE_INFO = ("none", "genre", "album", "both")
DEFAULT_SIDE_INFO = "both"
# The smallest catalog training accepts: a triplet takes two tracks of one artist (anchor and
# positive) and a track of another (negative), so at least MIN_TRAIN_ARTISTS artists with
# MIN_TRACKS_PER_ARTIST tracks each. Validation holds artists out only when at least
# MIN_TRAIN_ARTISTS_WITH_VALIDATION such artists stay for training (else it trains on all of them).
MIN_TRAIN_ARTISTS = 2
MIN_TRACKS_PER_ARTIST = 2
MIN_TRAIN_ARTISTS_WITH_VALIDATION = 3


class CatalogTooSmallError(ConfigError):
    """Too few artists with enough tracks to form a triplet (:func:`check_trainable`)."""


def check_trainable(artists) -> None:
    """Raise :class:`CatalogTooSmallError` unless ``artists`` (one artist id per track) has at
    least ``MIN_TRAIN_ARTISTS`` artists with ``MIN_TRACKS_PER_ARTIST`` tracks each, with a message
    that names what was found and what is needed."""
    ids, counts = np.unique(np.asarray(artists), return_counts=True)
    n_ok = int((counts >= MIN_TRACKS_PER_ARTIST).sum())
    if n_ok >= MIN_TRAIN_ARTISTS:
        return
    few = len(ids) - n_ok
    short = f"; {few} with fewer than {MIN_TRACKS_PER_ARTIST}" if few else ""
    raise CatalogTooSmallError(
        f"training needs at least {MIN_TRAIN_ARTISTS} artist pages with {MIN_TRACKS_PER_ARTIST}+ "
        f"tracks each (a triplet takes two tracks of one artist and one track of another); found "
        f"{n_ok} such {'page' if n_ok == 1 else 'pages'} ({len(ids)} in all, {int(counts.sum())} "
        f"tracks{short}). "
        f"Index more tracks (artdb index) and train again."
    )


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
    linkage: str = DEFAULT_LINKAGE
    metric: str = DEFAULT_METRIC
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

    @classmethod
    def from_side_info(cls, side_info: str = DEFAULT_SIDE_INFO, **options) -> TrainConfig:
        """A config whose sampling uses the side information named (``artdb train --side-info``).

        ``"genre"`` keeps same-genre negatives and batch-mates (``p_same_genre``,
        ``same_genre_share``), ``"album"`` keeps other-album positives (``p_other_album``),
        ``"both"`` keeps both, ``"none"`` neither: the options of side information left out are 0,
        the others take the value given in ``options`` or their default. Every other option is
        passed through. ``TrainConfig.from_side_info()`` is what ``artdb train`` trains by default.
        """
        if side_info not in SIDE_INFO:
            raise ConfigError(f"side_info must be one of {SIDE_INFO}, got {side_info!r}")
        genre, album = side_info in ("genre", "both"), side_info in ("album", "both")
        default = cls()
        for name, used in (("p_same_genre", genre), ("same_genre_share", genre), ("p_other_album", album)):
            options[name] = options.get(name, getattr(default, name)) if used else 0.0
        return cls(**options)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["val_group_sizes"] = list(self.val_group_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training options: {sorted(unknown)}")
        d = dict(d)
        for key in ("channels", "val_group_sizes"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def pick_device(device: str | None = None) -> str:
    """``device`` when given, else ``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    if device:
        return device
    import torch  # only here: the config module stays light

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class TrainResult:
    """What :func:`~artdb.core.learn.loop.train` returns. ``model`` holds the selected
    (best-validated) weights, in eval mode."""

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
    # what a small catalog changed (``train_config`` holds the values used): option -> {"asked",
    # "used"}, and one sentence per change; both empty when the configured values fit the catalog
    adapted: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

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
            "adapted": {k: dict(v) for k, v in self.adapted.items()},
            "notes": list(self.notes),
        }
