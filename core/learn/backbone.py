"""Artist vectors on a frozen pretrained backbone (musicnn): pooled, standardised, optionally refined.

The backbone's patch features are computed once at ingest (``artdb.core.features.backbone``) and
stored as ``[patches, dim]`` per track. A :class:`BackboneHead` turns them into a track vector:

1. the chosen layer (``penultimate`` by default) of every patch, averaged over the track's patches;
2. standardised per dimension with a mean and std fitted on the whole catalog (no labels: the same
   fixed function embeds every later track, like the ``stats`` baseline), whitened within artists
   (:func:`fit_within_whitening`), the directions between the catalog's genres halved
   (:func:`fit_genre_damping`, folded into the same matrix) and L2-normalised;
3. optionally, beside it, a small metric head (an MLP applied to each standardised patch, averaged
   and normalised) trained with triplets on the catalog's artist pages. The two parts are
   concatenated with weights ``sqrt(1 - w)`` and ``sqrt(w)``, so cosine similarity is the
   ``w``-weighted mix of the two similarities. ``w`` is chosen on held-out artists' homonym groups
   (:func:`train_backbone_head`): the head only gets a share when it clusters the held-out artists
   better than the pooled vector by ``min_gain``, on at least ``min_val_groups`` groups. With 19
   real artists the head overfits and ``w = 0`` (docs/training.md); on bigger catalogs it can earn
   its share.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artdb.core.analysis.clustering import fit_threshold, make_homonym_groups
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import ConfigError
from artdb.core.progress import Progress, report
from artdb.core.vectors.aggregate import l2_normalize

ARCH = "backbone-head"


ALL_LAYERS = "all"


def layer_span(layer: str, layer_slices: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """``(start, stop)`` of ``layer`` in a stored patch vector: one layer, neighbours joined by
    ``+`` (``"penultimate+mean_pool"``), or ``"all"`` (every stored layer; the store keeps them
    side by side in the order of ``layer_slices``)."""
    if layer == ALL_LAYERS:
        return min(a for a, _ in layer_slices.values()), max(b for _, b in layer_slices.values())
    names = layer.split("+")
    for name in names:
        if name not in layer_slices:
            raise ConfigError(f"backbone layer {name!r} is not stored (have "
                              f"{', '.join(layer_slices)}, a '+' of neighbours, or {ALL_LAYERS!r})")
    spans = sorted(layer_slices[name] for name in names)
    if any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
        raise ConfigError(f"backbone layers {layer!r} are not side by side in the store (its order: "
                          f"{' + '.join(layer_slices)})")
    return spans[0][0], spans[-1][1]


@dataclass(frozen=True)
class HeadConfig:
    """How a :class:`BackboneHead` is built and trained (stored with the model)."""

    # which stored backbone layers the vector reads (see layer_span). musicnn's penultimate (200) +
    # mean_pool (753): above the penultimate alone, and above every layer ("all", max_pool added)
    # on unseen real artists in random, same-genre and same-source groups (docs/training.md)
    layer: str = "penultimate+mean_pool"
    hidden: int = 256
    head_dim: int = 128
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    margin: float = 0.2
    artists_per_batch: int = 8  # shrinks to the catalog's training artists
    tracks_per_artist: int = 4
    patches_per_sample: int = 4  # a training sample is a random subset of a track's patches
    val_fraction: float = 0.3  # of the artists with >= 2 tracks, held out to choose ``w``
    head_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    min_gain: float = 0.02  # the head gets a share only when validation ARI beats w=0 by this
    # ... measured on at least this many held-out homonym groups: on fewer, a gain is noise (on the
    # 19-artist dev catalog, 1-2 groups picked a head in 4 of 10 splits and lost 0.05 ARI on average)
    min_val_groups: int = 8
    # within-artist whitening of the pooled vector (WCCN), fitted on the catalog's pages: the
    # within-page scatter shrunk this far towards a target (below), then ``scatter^-1/2`` applied
    # after the standardisation; 0: off. Fitted on 6 artists, it lifted 19 unseen real artists in
    # every group mode (random 0.64 -> 0.70, same-source 0.25 -> 0.43; docs/training.md)
    whitening: float = 0.8
    # ... and the mean-variance identity it is shrunk towards is mixed, this far, with the scatter of
    # single patches around their track's mean (scaled to the same trace): variation within one
    # piece is not what tells artists apart, and every catalog shows plenty of it, while a few
    # dozen pages show little. Above the identity alone on random groups of unseen real artists
    # in both directions between the two real catalogs and in the split evaluation, for every
    # mix from 0.25 to 0.75 (docs/training.md). The low end of that range: random groups score
    # the same as at 0.5, and a larger share costs more on same-source groups (what is constant
    # within a track -- its production -- is left undamped while the rest is damped);
    # 0: the identity alone (models made before)
    whitening_target: float = 0.25
    # after the whitening, the directions in which the training catalog's genres differ (their
    # track-weighted mean vectors; at most GENRE_DIRECTIONS of them) are shrunk by this share:
    # genre and production style part random homonyms anyway, and while they fill the distances
    # the threshold fitted on such groups is too coarse for artists who share one production.
    # Unseen real artists: same-source groups +0.27, random groups +0.02 (docs/training.md);
    # no genre tags or a single genre: nothing is damped; 0: off (models made before)
    genre_damping: float = 0.5
    # the audit threshold of a model without a head share is fitted on the validation groups of
    # this many held-out splits together (the first is the one that chose the share): one split
    # holds out a few artists, and on a real catalog of 26 artists its threshold moved 0.77-1.04
    # with the draw (docs/audit.md "On real recordings"); 1: the first split alone (older models)
    threshold_splits: int = 8
    seed: int = 0
    linkage: str = DEFAULT_LINKAGE
    metric: str = DEFAULT_METRIC

    def __post_init__(self):
        if self.steps < 0 or self.hidden < 1 or self.head_dim < 1:
            raise ConfigError("head steps must be >= 0 and its sizes >= 1")
        if not 0.0 <= self.whitening <= 1.0:
            raise ConfigError(f"whitening is a shrinkage in [0, 1], got {self.whitening}")
        if not 0.0 <= self.whitening_target <= 1.0:
            raise ConfigError(f"whitening_target is a share in [0, 1], got {self.whitening_target}")
        if not 0.0 <= self.genre_damping <= 1.0:
            raise ConfigError(f"genre_damping is a share in [0, 1], got {self.genre_damping}")
        if self.threshold_splits < 1:
            raise ConfigError(f"threshold_splits must be >= 1, got {self.threshold_splits}")
        if not self.head_weights or any(not 0.0 <= w <= 1.0 for w in self.head_weights):
            raise ConfigError(f"head_weights must lie in [0, 1], got {self.head_weights}")
        object.__setattr__(self, "head_weights", tuple(float(w) for w in self.head_weights))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head_weights"] = list(self.head_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        # a model stored before the patch-scatter target was whitened towards the identity alone,
        # and one stored before the genre damping damps nothing
        return cls(**{"whitening_target": 0.0, "genre_damping": 0.0, "threshold_splits": 1, **d,
                      "head_weights": tuple(d.get("head_weights", cls.head_weights))})


class BackboneHead(nn.Module):
    """``[n, patches, stored_dim]`` backbone features -> ``[n, dim]`` unit vectors (see module doc)."""

    def __init__(self, layer_start: int, layer_stop: int, cfg: HeadConfig, head_weight: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.layer_start, self.layer_stop = int(layer_start), int(layer_stop)
        d = self.layer_stop - self.layer_start
        self.head_weight = float(head_weight)
        # standardisation of the track-mean vector (pooled part) and of single patches (head input)
        self.register_buffer("pooled_mean", torch.zeros(d))
        self.register_buffer("pooled_std", torch.ones(d))
        self.register_buffer("patch_mean", torch.zeros(d))
        self.register_buffer("patch_std", torch.ones(d))
        if cfg.whitening > 0:  # only then: checkpoints made without it keep loading
            self.register_buffer("pooled_whiten", torch.eye(d))
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(cfg.hidden, cfg.head_dim))

    @property
    def in_dim(self) -> int:
        return self.layer_stop - self.layer_start

    @property
    def dim(self) -> int:
        return self.in_dim + (self.cfg.head_dim if self.head_weight > 0 else 0)

    def config(self) -> dict[str, Any]:
        return {"arch": ARCH, "layer_start": self.layer_start, "layer_stop": self.layer_stop,
                "head": self.cfg.to_dict(), "head_weight": self.head_weight, "embedding_dim": self.dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BackboneHead:
        return cls(config["layer_start"], config["layer_stop"], HeadConfig.from_dict(config["head"]),
                   config.get("head_weight", 0.0))

    def _layer(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.layer_start:self.layer_stop].float()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised, normalised mean over patches: ``[n, in_dim]``."""
        z = (self._layer(x).mean(dim=1) - self.pooled_mean) / self.pooled_std
        if self.cfg.whitening > 0:
            z = z @ self.pooled_whiten
        return F.normalize(z, dim=-1)

    def head_vectors(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The head's normalised mean over (masked) patches: ``[n, head_dim]``."""
        z = self.head((self._layer(x) - self.patch_mean) / self.patch_std)
        if mask is None:
            z = z.mean(dim=1)
        else:
            z = (z * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return F.normalize(z, dim=-1)

    def mix(self, pooled: torch.Tensor, head: torch.Tensor | None, w: float) -> torch.Tensor:
        if w <= 0 or head is None:
            return pooled
        return torch.cat([math.sqrt(1 - w) * pooled, math.sqrt(w) * head], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.head_weight
        return self.mix(self.pooled(x), self.head_vectors(x) if w > 0 else None, w)


STANDARDISERS = ("pooled_mean", "pooled_std", "patch_mean", "patch_std")
# Model.config key of the statistics refitted on the served catalog (learn.adapt)
SERVED_KEY = "served_standardisation"


def standardisation(model: BackboneHead) -> dict[str, list[float]]:
    """The model's standardisation statistics, JSON-ready (see :mod:`.adapt`)."""
    return {k: [float(v) for v in getattr(model, k).tolist()] for k in STANDARDISERS}


def set_standardisation(model: BackboneHead, state: dict[str, Any]) -> None:
    """Load statistics made by :func:`standardisation` into ``model``'s buffers."""
    with torch.no_grad():
        for k in STANDARDISERS:
            value = torch.as_tensor(state[k], dtype=torch.float32)
            if value.shape != getattr(model, k).shape:
                raise ConfigError(f"standardisation {k} has shape {tuple(value.shape)}, the model "
                                  f"expects {tuple(getattr(model, k).shape)}")
            getattr(model, k).copy_(value)


def embed_backbone(model: BackboneHead, features, rows: np.ndarray | None = None, batch_size: int = 256,
                   device: str = "cpu") -> np.ndarray:
    """Vectors of ``features[rows]`` (``[n, patches, stored_dim]``, numpy or a store view) in batches."""
    n = len(features) if rows is None else len(rows)
    rows = np.arange(n) if rows is None else np.asarray(rows)
    model = model.to(device).eval()
    out = []
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            x = torch.as_tensor(np.asarray(features[rows[s:s + batch_size]], dtype=np.float32), device=device)
            out.append(model(x).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.dim), np.float32)


def moments_to_mean_std(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std from the mean of x and of x²; a constant dimension gets std 1
    (left unscaled)."""
    std = np.sqrt(np.maximum(second - first ** 2, 0.0))
    std[std < 1e-6] = 1.0
    return first, std


def fit_standardisers(model: BackboneHead, features, chunk: int = 256) -> None:
    """Per-dimension mean/std of track means and of single patches over every row of ``features``
    (no labels: any catalog's tracks, e.g. the one the model serves, :mod:`.adapt`)."""
    n = len(features)
    tot = np.zeros(model.in_dim)
    tot2 = np.zeros(model.in_dim)
    ptot = np.zeros(model.in_dim)
    ptot2 = np.zeros(model.in_dim)
    n_patches = 0
    for s in range(0, n, chunk):
        x = np.asarray(features[np.arange(s, min(n, s + chunk))], dtype=np.float64)
        x = x[..., model.layer_start:model.layer_stop]
        m = x.mean(axis=1)
        tot += m.sum(0)
        tot2 += (m ** 2).sum(0)
        p = x.reshape(-1, x.shape[-1])
        ptot += p.sum(0)
        ptot2 += (p ** 2).sum(0)
        n_patches += len(p)

    def mean_std(t, t2, k):
        mean, std = moments_to_mean_std(t / k, t2 / k)
        return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

    with torch.no_grad():
        parts = {"pooled": mean_std(tot, tot2, n), "patch": mean_std(ptot, ptot2, n_patches)}
        for name, (m, sd) in parts.items():
            getattr(model, f"{name}_mean").copy_(m)
            getattr(model, f"{name}_std").copy_(sd)


WHITENING_PAGE_QUANTILE = 0.75  # the share of pages (least spread first) the scatter is fitted on
WHITENING_MAX_TRACKS = 20_000  # a sample of pages this large fits a 953 x 953 scatter; memory stays flat


def fit_within_whitening(model: BackboneHead, features, artists: np.ndarray, rows: np.ndarray,
                         chunk: int = 256) -> None:
    """``pooled_whiten`` from the tracks ``rows`` and their pages ``artists[rows]``: the inverse
    square root of the within-page scatter of the standardised track means, shrunk by
    ``cfg.whitening`` (few tracks per page make the raw scatter singular) towards its mean variance
    mixed (``cfg.whitening_target``) with the scatter of the same tracks' patches around their
    track means, scaled to the same trace.

    Pages with 2+ tracks only; on a large catalog a seeded sample of pages up to
    ``WHITENING_MAX_TRACKS`` tracks (plenty for one matrix), read ``chunk`` tracks at a time."""
    labels = np.asarray(artists)[rows]
    _, page_of_row, counts = np.unique(labels, return_inverse=True, return_counts=True)
    multi = np.flatnonzero(counts >= 2)
    if not len(multi):
        return
    order = np.random.default_rng(model.cfg.seed).permutation(multi)
    n_pages = max(1, int(np.searchsorted(np.cumsum(counts[order]), WHITENING_MAX_TRACKS, side="right")))
    sel = np.flatnonzero(np.isin(page_of_row, order[:n_pages]))
    page = page_of_row[sel]
    z = np.empty((len(sel), model.in_dim))
    std = model.pooled_std.numpy().astype(np.float64)
    patch_scatter = np.zeros((model.in_dim, model.in_dim))  # of patches around their track's mean
    for s in range(0, len(sel), chunk):
        x = np.asarray(features[rows[sel[s:s + chunk]]], dtype=np.float32)
        x = x[..., model.layer_start:model.layer_stop]
        z[s:s + chunk] = x.mean(axis=1)
        if model.cfg.whitening_target > 0:
            p = ((x - x.mean(axis=1, keepdims=True)) / std).reshape(-1, model.in_dim).astype(np.float64)
            patch_scatter += p.T @ p
    z = (z - model.pooled_mean.numpy()) / std
    means = np.zeros((len(counts), model.in_dim))
    np.add.at(means, page, z)
    means /= np.maximum(counts, 1)[:, None]
    resid = z - means[page]
    # pages whose tracks spread most are left out: a page mixing homonyms spreads along exactly
    # the directions that tell artists apart, which whitening must not learn to damp
    spread = np.bincount(page, weights=np.sum(resid ** 2, axis=1), minlength=len(counts))
    spread /= np.maximum(counts, 1)
    cut = np.quantile(spread[np.unique(page)], WHITENING_PAGE_QUANTILE)
    r = resid[spread[page] <= cut]
    scatter = r.T @ r / len(r)
    s, t = model.cfg.whitening, model.cfg.whitening_target
    mean_variance = np.trace(scatter) / len(scatter)
    target = np.eye(len(scatter)) * mean_variance
    if t > 0 and np.trace(patch_scatter) > 0:  # (0 when every track has one patch)
        target = (1 - t) * target + t * patch_scatter * (np.trace(scatter) / np.trace(patch_scatter))
    scatter = (1 - s) * scatter + s * target
    w, v = np.linalg.eigh(scatter)
    whiten = (v * np.maximum(w, 1e-12) ** -0.5) @ v.T
    with torch.no_grad():
        model.pooled_whiten.copy_(torch.as_tensor(whiten, dtype=torch.float32))


GENRE_DIRECTIONS = 8  # at most this many genre directions are damped: the broad style axes


def fit_genre_damping(model: BackboneHead, features, genres: np.ndarray, rows: np.ndarray,
                      chunk: int = 256) -> int:
    """Fold into ``pooled_whiten`` a projection that shrinks by ``cfg.genre_damping`` the directions
    in which the genres' mean whitened vectors differ, over the tracks ``rows`` whose genre is known
    (``genres[rows]``, "" = unknown). The directions: the leading eigenvectors (at most
    ``GENRE_DIRECTIONS``) of the between-genre scatter (genre means centred on the tracks' mean,
    weighted by their tracks); with fewer genres than that, all the means span. Returns
    how many directions were damped (0 with fewer than two known genres, damping 0 or no whitening).

    A nuisance projection, as channel directions are in speaker verification: what tells genres
    apart is kept at half strength, so that distances between artists of one genre and production
    weigh as much beside it as the threshold, fitted on homonyms of any genre, expects."""
    beta = model.cfg.genre_damping
    if beta <= 0 or model.cfg.whitening <= 0:
        return 0
    labels = np.asarray(genres).astype(str)[rows]
    known = np.flatnonzero(labels != "")
    if len(known) > WHITENING_MAX_TRACKS:  # a seeded sample: genre means need no more
        rng = np.random.default_rng(model.cfg.seed)
        known = np.sort(rng.choice(known, WHITENING_MAX_TRACKS, replace=False))
    names, genre_of = np.unique(labels[known], return_inverse=True)
    if len(names) < 2:
        return 0
    whiten = model.pooled_whiten.numpy().astype(np.float64)
    mean, std = model.pooled_mean.numpy(), model.pooled_std.numpy()
    sums = np.zeros((len(names), model.in_dim))
    for s in range(0, len(known), chunk):
        x = np.asarray(features[rows[known[s:s + chunk]]], dtype=np.float32)
        z = ((x[..., model.layer_start:model.layer_stop].mean(axis=1) - mean) / std).astype(np.float64)
        np.add.at(sums, genre_of[s:s + chunk], z @ whiten)
    counts = np.bincount(genre_of, minlength=len(names)).astype(np.float64)
    centred = sums / counts[:, None] - sums.sum(0) / counts.sum()
    # rows weighted by sqrt(tracks): the between-genre scatter, so that among many tags the
    # directions kept are those of the genres that hold the tracks, not of one-track tags
    _, sv, vt = np.linalg.svd(centred * np.sqrt(counts)[:, None], full_matrices=False)
    k = min(GENRE_DIRECTIONS, int(np.sum(sv > 1e-9 * sv[0])))
    u = vt[:k].T
    with torch.no_grad():
        model.pooled_whiten.copy_(torch.as_tensor(whiten - beta * (whiten @ u) @ u.T, dtype=torch.float32))
    return k


@dataclass
class BackboneTrainResult:
    model: BackboneHead
    threshold: float | None  # the clustering threshold fitted on the held-out artists (None: none)
    val_ari: dict[float, float] = field(default_factory=dict)  # head weight -> held-out ARI
    val_artists: list = field(default_factory=list)
    train_artists: int = 0
    genre_directions: int = 0  # how many genre directions the final whitening damps
    threshold_groups: int = 0  # validation homonym groups the threshold was fitted on
    threshold_splits: int = 0  # ... drawn from this many held-out splits
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"head_weight": self.model.head_weight, "threshold": self.threshold,
                "threshold_groups": self.threshold_groups, "threshold_splits": self.threshold_splits,
                "val_ari": {str(k): v for k, v in self.val_ari.items()},
                "val_artists": len(self.val_artists), "train_artists": self.train_artists,
                "genre_directions": self.genre_directions,
                "notes": list(self.notes)}


def _val_split(artists: np.ndarray, cfg: HeadConfig, rng: np.random.Generator):
    """Held-out artists (with >= 2 tracks, enough for one group of two) and the rest."""
    ids, counts = np.unique(artists, return_counts=True)
    eligible = ids[counts >= 2]
    n_val = min(len(eligible), int(round(cfg.val_fraction * len(eligible))))
    if n_val < 2 or len(ids) - n_val < 2:
        return ids, ids[:0]
    val = np.sort(rng.choice(eligible, size=n_val, replace=False))
    return np.setdiff1d(ids, val), val


def _train_head(model: BackboneHead, features, artists: np.ndarray, rows: np.ndarray, cfg: HeadConfig,
                rng: np.random.Generator, progress: Progress | None) -> None:
    """Triplet training of ``model.head`` on the tracks ``rows`` (labels: their artists)."""
    from pytorch_metric_learning import losses, miners

    lab = artists[rows]
    classes = np.unique(lab)
    by_class = {c: rows[lab == c] for c in classes}
    per_batch = max(2, min(cfg.artists_per_batch, len(classes)))
    loss_fn = losses.TripletMarginLoss(margin=cfg.margin)
    miner = miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets="semihard")
    opt = torch.optim.AdamW(model.head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for step in range(cfg.steps):
        picked = rng.choice(classes, size=per_batch, replace=False)
        tracks, labels = [], []
        for ci, c in enumerate(picked):
            members = by_class[c]
            few = len(members) < cfg.tracks_per_artist
            tracks += list(rng.choice(members, size=cfg.tracks_per_artist, replace=few))
            labels += [ci] * cfg.tracks_per_artist
        feats = np.asarray(features[np.asarray(tracks)], dtype=np.float32)  # [b, patches, dim]
        k = min(cfg.patches_per_sample, feats.shape[1])
        pick = np.stack([rng.choice(feats.shape[1], size=k, replace=False) for _ in range(len(feats))])
        x = torch.as_tensor(feats[np.arange(len(feats))[:, None], pick])
        y = torch.as_tensor(labels)
        z = model.head_vectors(x)
        loss = loss_fn(z, y, miner(z, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        report(progress, "train", step + 1, cfg.steps, loss=float(loss.detach()))
    model.eval()


def train_backbone_head(features, artists, cfg: HeadConfig | None = None, *,
                        layer_slices: dict[str, tuple[int, int]], genres=None,
                        progress: Progress | None = None) -> BackboneTrainResult:
    """Fit the standardisation on every track, train the head on the training artists, and choose the
    head's weight on held-out artists (see module doc).

    ``features``: ``[n, patches, stored_dim]`` (numpy or a row-indexable store view); ``artists``:
    the page label of each row; ``layer_slices``: where each backbone layer sits in ``stored_dim``;
    ``genres``: each row's genre ("" unknown; None: none known) for :func:`fit_genre_damping`.
    """
    cfg = cfg or HeadConfig()
    start, stop = layer_span(cfg.layer, layer_slices)
    artists = np.asarray(artists).astype(str)
    torch.manual_seed(cfg.seed)  # before the head is built: its initial weights follow the seed
    model = BackboneHead(start, stop, cfg)
    fit_standardisers(model, features)
    rng = np.random.default_rng(cfg.seed)
    train_ids, val_ids = _val_split(artists, cfg, rng)
    train_rows = np.flatnonzero(np.isin(artists, train_ids))
    genres = np.full(len(artists), "") if genres is None else np.asarray(genres).astype(str)

    def whiten(rows: np.ndarray) -> int:
        if cfg.whitening <= 0:
            return 0
        fit_within_whitening(model, features, artists, rows)
        return fit_genre_damping(model, features, genres, rows)

    whiten(train_rows)  # on the training artists while validating; on every page at the end
    result = BackboneTrainResult(model, None, val_artists=val_ids.tolist(), train_artists=len(train_ids))
    n_multi = int(sum(np.sum(artists[train_rows] == a) >= 2 for a in train_ids))
    if cfg.steps and n_multi >= 2:
        _train_head(model, features, artists, train_rows, cfg, rng, progress)
    else:
        result.notes.append(f"head not trained: {n_multi} training artist(s) with 2+ tracks (needs 2)")
    if len(val_ids) < 2:
        result.notes.append(f"no validation: {len(val_ids)} held-out artist(s) (needs 2 with 2+ tracks); "
                            "the pooled backbone vector is used alone")
        result.genre_directions = whiten(np.arange(len(artists)))
        _note_undamped(result, cfg)
        return result
    val_rows = np.flatnonzero(np.isin(artists, val_ids))
    groups = make_homonym_groups(artists[val_rows], rng, sizes=(2, 4), min_albums=2)
    x = torch.as_tensor(np.asarray(features[val_rows], dtype=np.float32))
    with torch.inference_mode():
        pooled, head = model.pooled(x), model.head_vectors(x)
    weights = cfg.head_weights if (cfg.steps and n_multi >= 2) else (0.0,)
    fitted = {}
    for w in weights:
        vecs = l2_normalize(model.mix(pooled, head, w).numpy())
        t, ari, _ = fit_threshold(groups, vecs, artists[val_rows], linkage=cfg.linkage, metric=cfg.metric)
        result.val_ari[w], fitted[w] = float(ari), float(t)
    base = result.val_ari.get(0.0, -math.inf)
    best = max(result.val_ari, key=lambda w: (result.val_ari[w], -w))
    chosen = best if result.val_ari[best] >= base + cfg.min_gain else 0.0
    if chosen and len(groups) < cfg.min_val_groups:
        result.notes.append(f"the head's share is kept at 0: validation formed {len(groups)} homonym "
                            f"group(s), fewer than the {cfg.min_val_groups} that make a gain trustworthy")
        chosen = 0.0
    model.head_weight = float(chosen)
    result.threshold = fitted.get(chosen)
    result.threshold_groups, result.threshold_splits = len(groups), 1
    if chosen == 0.0 and cfg.threshold_splits > 1:
        first = (l2_normalize(pooled.numpy()), artists[val_rows], groups)
        result.threshold, result.threshold_groups, result.threshold_splits = _threshold_over_splits(
            model, features, artists, cfg, whiten, first)
    result.genre_directions = whiten(np.arange(len(artists)))
    _note_undamped(result, cfg)
    return result


def _threshold_over_splits(model: BackboneHead, features, artists: np.ndarray, cfg: HeadConfig,
                           whiten, first: tuple[np.ndarray, np.ndarray, list]) -> tuple[float, int, int]:
    """The pooled vector's audit threshold fitted on the validation groups of ``cfg.threshold_splits``
    held-out splits together: ``first`` (vectors, artists, groups of the split that chose the head's
    share), then more splits, each with the whitening refitted without its held-out artists (the
    caller refits it on every page afterwards). Returns (threshold, groups, splits used)."""
    # artists are prefixed with their split: each split's groups are its own
    vectors, labels = [first[0]], [np.char.add("0:", first[1].astype(str))]
    groups = [np.char.add("0:", g.astype(str)) for g in first[2]]
    used = 1
    for k in range(1, cfg.threshold_splits):
        rng = np.random.default_rng([cfg.seed, k])
        train_ids, val_ids = _val_split(artists, cfg, rng)
        if len(val_ids) < 2:
            break
        whiten(np.flatnonzero(np.isin(artists, train_ids)))
        val_rows = np.flatnonzero(np.isin(artists, val_ids))
        split_labels = np.char.add(f"{k}:", artists[val_rows].astype(str))
        split_groups = make_homonym_groups(split_labels, rng, sizes=(2, 4), min_albums=2)
        # in batches: on a large catalog a split holds out many tracks (the head's share is 0 here,
        # so the model's output is the pooled vector)
        vectors.append(l2_normalize(embed_backbone(model, features, val_rows)))
        labels.append(split_labels)
        groups.extend(split_groups)
        used += 1
    t, _, _ = fit_threshold(groups, np.concatenate(vectors), np.concatenate(labels),
                            linkage=cfg.linkage, metric=cfg.metric)
    return float(t), len(groups), used


def _note_undamped(result: BackboneTrainResult, cfg: HeadConfig) -> None:
    if cfg.genre_damping > 0 and cfg.whitening > 0 and not result.genre_directions:
        result.notes.append("no genre damping: fewer than 2 genres among the tracks' tags")
