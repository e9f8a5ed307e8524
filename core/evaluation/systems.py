"""The systems compared by ``artdb evaluate``, each a way to turn test tracks into vectors.

- ``mfcc``: no learning, MFCC mean+std from the stored log-mels (:class:`MfccEmbedder`);
- ``stats``: no learning, MFCC + delta mean+std standardised per dimension with statistics fitted
  on the whole evaluation catalog's features, labels unused (:class:`StatsEmbedder`, what
  ``artdb models add-baseline stats`` registers);
- ``untrained``: the CNN with its random initial weights (what training adds is measured
  against it);
- ``cl`` / ``ml`` / ``ml-genre`` / ``ml-index`` / ``joint``: the CNN trained on the training
  artists (softmax classifier; triplet loss with semi-hard mining; plus same-genre negatives; with
  index-backed mining; triplet + classifier); ``ml-hybrid``: ``ml`` whose track vector appends the
  standardised stats vector (``stats_weight``); ``cnn-hybrid``: what ``artdb train --backbone
  none`` produces (ML, side information both ways, hybrid vector: ``TrainConfig.from_side_info()``);
- ``musicnn-torch``: the torch musicnn port's pooled ``penultimate`` layer (the peer's), no training:
  a :class:`~artdb.core.learn.backbone.BackboneHead` with ``steps=0``, its standardisation fitted on
  the whole evaluation catalog, labels unused, as the product refits it on the catalog it serves
  (``learn.adapt``; the same unsupervised use of test tracks as ``stats``);
- ``backbone-head``: the same backbone with the default :class:`HeadConfig` (head trained on the
  training pool, its share chosen on held-out training-pool artists); ``artdb-default`` is this
  very system under the name of what ``artdb train`` produces with no options
  (:func:`artdb_train_default`), fitted once when both are asked for;
- ``random`` and ``production``: controls (random unit vectors; one-hot of the track's album
  and source, which knows the release but not the artist);
- ``file:NAME``: vectors read from an embeddings file (``--embeddings``, the musicnn peer);
- ``model:NAME``: a registered artdb model (``--model``), applied as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from artdb.core.analysis.clustering import codes
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.learn.adapt import fitted_on
from artdb.core.learn.backbone import HeadConfig, embed_backbone, train_backbone_head
from artdb.core.learn.config import TrainConfig, TrainingData
from artdb.core.learn.embedders import MfccEmbedder, StatsEmbedder
from artdb.core.learn.loop import train
from artdb.core.learn.networks import ModelConfig, build_model, embed
from artdb.core.progress import Progress
from artdb.core.vectors.export import match_rows, read_embeddings

HYBRID_STATS_WEIGHT = TrainConfig().stats_weight or 0.5  # artdb train's default
ML_PLAIN = {"method": "ml", "mining": "semihard", "p_same_genre": 0.0, "same_genre_share": 0.0}
# What makes `artdb train --backbone none`'s model the system it is; the rest is the evaluation's
# training budget (EVAL_TRAIN_DEFAULTS, steps, seed).
ARTDB_TRAIN_OPTIONS = ("method", "mining", "p_same_genre", "same_genre_share", "p_other_album",
                       "stats_weight")


def artdb_train_default(seed: int = 0) -> HeadConfig:
    """The head of what ``artdb train`` produces with no options (``--backbone musicnn``, its
    ``HeadConfig(seed=seed)``), fitted by the same function (:func:`train_backbone_head`)."""
    return HeadConfig(seed=int(seed))


def cnn_train_default() -> dict[str, Any]:
    """What ``artdb train --backbone none`` produces, from the function it builds its config with
    (:meth:`TrainConfig.from_side_info`): ML, side information both ways, hybrid vector."""
    cfg = TrainConfig.from_side_info()
    return {name: getattr(cfg, name) for name in ARTDB_TRAIN_OPTIONS}


@dataclass(frozen=True)
class SystemSpec:
    name: str
    kind: str  # mfcc | stats | untrained | train | backbone | random | production | file | model
    label: str
    train: dict = field(default_factory=dict)  # TrainConfig overrides for kind == "train"
    head: dict = field(default_factory=dict)  # HeadConfig overrides for kind == "backbone"

    @property
    def trained(self) -> bool:
        """Fitted on each training set of a split (never on a test artist)."""
        return self.kind in ("train", "backbone")

    @property
    def needs_backbone(self) -> bool:
        """Reads the dataset's backbone features (``EvalDataset.backbone_features``)."""
        return self.kind == "backbone"

    @property
    def fit_key(self) -> str:
        """Systems with equal keys fit to the same vectors on the same training set (fitted once)."""
        return json.dumps([self.kind, self.train, self.head], sort_keys=True, default=str)


# HeadConfig() as `artdb train` uses it (artdb_train_default); the seed is the evaluation's
BACKBONE_HEAD = SystemSpec("backbone-head", "backbone",
                           "musicnn backbone + metric head (HeadConfig defaults)")
BUILTIN: dict[str, SystemSpec] = {s.name: s for s in (
    SystemSpec("mfcc", "mfcc", "MFCC mean+std (no learning)"),
    SystemSpec("stats", "stats", "MFCC+delta mean+std, standardised (no learning)"),
    SystemSpec("untrained", "untrained", "CNN, untrained"),
    SystemSpec("cl", "train", "CL (softmax classifier)", {"method": "cl", "p_same_genre": 0.0,
                                                          "same_genre_share": 0.0}),
    SystemSpec("ml", "train", "ML, semi-hard", dict(ML_PLAIN)),
    SystemSpec("ml-genre", "train", "ML + same-genre negatives",
               {"method": "ml", "mining": "semihard", "p_same_genre": 0.5, "same_genre_share": 0.5}),
    SystemSpec("ml-index", "train", "ML + index mining", {**ML_PLAIN, "mining": "index"}),
    SystemSpec("joint", "train", "joint ML + CL", {**ML_PLAIN, "method": "joint"}),
    SystemSpec("ml-hybrid", "train", "ML + standardised stats (hybrid)",
               {**ML_PLAIN, "stats_weight": HYBRID_STATS_WEIGHT}),
    SystemSpec("cnn-hybrid", "train", "CNN hybrid (artdb train --backbone none: ML + side info + stats)",
               cnn_train_default()),
    # the peer's layer, no training: the port against the TF original on identical splits
    SystemSpec("musicnn-torch", "backbone",
               "musicnn (torch port), pooled penultimate, standardised (no training)",
               head={"steps": 0, "layer": "penultimate", "whitening": 0.0}),
    BACKBONE_HEAD,
    # the same system under the name of what `artdb train` produces with no options
    replace(BACKBONE_HEAD, name="artdb-default", label="artdb train default (musicnn backbone + head)"),
    SystemSpec("random", "random", "control: random vectors"),
    SystemSpec("production", "production", "control: one-hot album/source"),
)}
DEFAULT_SYSTEMS = ("mfcc", "stats", "untrained", "cl", "ml", "ml-genre", "ml-index", "joint", "ml-hybrid",
                   "cnn-hybrid", "musicnn-torch", "backbone-head", "artdb-default", "random", "production")
# Scoring registered models on a catalog they never saw trains nothing: baselines and controls beside them.
MODEL_SYSTEMS = ("mfcc", "random", "production")

# Evaluation trains many small models on 2 CPU cores: a lighter network and shorter crops than
# `artdb train`'s defaults, the same for every trained system (overridable via EvalConfig.train).
EVAL_TRAIN_DEFAULTS: dict[str, Any] = {
    "embedding_dim": 64,
    "channels": (16, 32, 64, 64),
    "crop_frames": 96,
    "artists_per_batch": 8,
    "per_artist": 4,
    # model selection as `artdb train` does it: held-out training-pool artists, their albums
    # clustered, or their tracks when too few have two albums (val_unit="auto")
    "val_fraction": 0.2,
    "val_excerpts": 2,
    "patience": 0,
    "lr": 2e-3,
    "index_refresh_every": 50,
    "index_budget": None,
    "log_every": 50,
    "stats_weight": 0.0,  # the CNN alone; ml-hybrid sets its own
}


def resolve(names, files: dict[str, str] | None = None, models: list[str] | None = None) -> list[SystemSpec]:
    out = []
    for n in names:
        if n not in BUILTIN:
            raise ConfigError(f"unknown system {n!r} (known: {', '.join(BUILTIN)})")
        out.append(BUILTIN[n])
    for name in (files or {}):
        out.append(SystemSpec(f"file:{name}", "file", f"external: {name}"))
    for m in models or []:
        out.append(SystemSpec(f"model:{m}", "model", f"artdb model {m}"))
    return out


def needs_backbone(names) -> bool:
    """Whether any of the built-in systems ``names`` reads backbone features (unknown names: no)."""
    return any(BUILTIN[n].needs_backbone for n in names if n in BUILTIN)


def head_config(spec: SystemSpec, seed: int, base: dict | None = None) -> HeadConfig:
    """The HeadConfig of a backbone system: ``artdb train``'s (:func:`artdb_train_default`), the
    evaluation's overrides ``base`` (``EvalConfig.head``, empty by default), then the system's own;
    the seed is the evaluation's, as ``artdb train --seed`` would set it."""
    return HeadConfig.from_dict({**artdb_train_default(seed).to_dict(), **(base or {}), **spec.head,
                                 "seed": int(seed)})


def _materialize(features, rows=None):
    if rows is None:
        return np.asarray(features)
    if isinstance(features, np.ndarray):
        return features[rows]
    return np.asarray(features[np.asarray(rows)])


@dataclass
class Fitted:
    """A system ready to embed: ``embed(features) -> [n, d]`` plus what training reported.

    ``input``: the dataset field ``embed`` reads (``"features"``, the log-mels, or
    ``"backbone_features"``); :meth:`embed_dataset` picks it.
    """

    embed: Callable[[Any], np.ndarray]
    info: dict = field(default_factory=dict)
    input: str = "features"

    def embed_dataset(self, ds) -> np.ndarray:
        feats = getattr(ds, self.input)
        if feats is None:
            raise ConfigError(f"this system reads {self.input}, which the dataset does not have")
        return self.embed(feats)


def train_config(spec: SystemSpec, base: dict, seed: int, steps: int, n_artists: int):
    """The TrainConfig of a trained system: eval defaults, user overrides, then the system's own."""
    d = {**EVAL_TRAIN_DEFAULTS, **base, **spec.train, "seed": int(seed), "steps": int(steps)}
    n_fit = n_artists - int(round(d.get("val_fraction", 0.2) * n_artists))
    d["artists_per_batch"] = max(2, min(int(d["artists_per_batch"]), n_fit))
    d.setdefault("val_every", max(10, steps // 4))
    return TrainConfig.from_dict(d)


def fit_system(spec: SystemSpec, train_ds, *, seed: int, steps: int, base_train: dict,
               frontend: dict, n_mels: int, embed_excerpts: int | None = None,
               progress: Progress | None = None, unlabelled=None, base_head: dict | None = None,
               served_backbone=None) -> Fitted:
    """Fit ``spec`` on ``train_ds`` (an EvalDataset; ignored by systems that do not learn).

    ``unlabelled``: features the ``stats`` system fits its standardisation on (no labels are read).
    ``progress`` hears the training of a trained system (:func:`~artdb.core.learn.loop.train`).
    ``base_head``: HeadConfig overrides of the backbone systems (:func:`head_config`).
    ``served_backbone``: the backbone features of the whole catalog a backbone system serves; its
    standardisation is refitted on them (no labels), as ``artdb index --rebuild-index`` does.
    """
    if spec.kind == "mfcc":
        emb = MfccEmbedder(frontend=frontend)
        return Fitted(lambda f: _chunked(emb.embed, f), {"dim": emb.dim})
    if spec.kind == "stats":
        if unlabelled is None:
            raise ConfigError("the stats system needs features to fit its standardisation on")
        emb = StatsEmbedder.fit(unlabelled, frontend)
        return Fitted(lambda f: _chunked(emb.embed, f), {"dim": emb.dim})
    if spec.kind == "untrained":
        d = {**EVAL_TRAIN_DEFAULTS, **base_train}
        torch.manual_seed(seed)
        model = build_model(ModelConfig(n_mels=n_mels, embedding_dim=int(d["embedding_dim"]),
                                        channels=tuple(d["channels"]),
                                        input_norm=d.get("input_norm", "gain_bn"))).eval()
        return Fitted(lambda f: _cnn_embed(model, f, embed_excerpts), {"dim": int(d["embedding_dim"])})
    if spec.kind == "train":
        cfg = train_config(spec, base_train, seed, steps, len(np.unique(train_ds.artists)))
        data = TrainingData(_materialize(train_ds.features), artists=codes(train_ds.artists),
                            albums=codes(train_ds.albums), genres=codes(train_ds.genres),
                            track_ids=train_ds.track_ids)
        t0 = time.perf_counter()
        result = train(data, cfg, progress=progress)
        info = {"status": result.status, "steps": result.steps, "best_step": result.best_step,
                "best_val_ari": result.best_val_ari, "initial_val_ari": result.initial_val_ari,
                "train_s": round(time.perf_counter() - t0, 2), "dim": int(result.model.cfg.embedding_dim),
                "n_train_artists": int(len(np.unique(train_ds.artists))),
                "n_train_tracks": int(len(train_ds))}
        model = result.model
        return Fitted(lambda f: _cnn_embed(model, f, embed_excerpts), info)
    if spec.kind == "backbone":
        return fit_backbone(spec, train_ds, seed=seed, base_head=base_head, progress=progress,
                            served=served_backbone)
    raise ConfigError(f"system {spec.name!r} ({spec.kind}) is not fitted on features")


def fit_backbone(spec: SystemSpec, train_ds, *, seed: int, base_head: dict | None = None,
                 progress: Progress | None = None, served=None) -> Fitted:
    """A backbone system fitted on ``train_ds``'s tracks only, as ``artdb train`` fits on a catalog:
    :func:`train_backbone_head` (standardisation on every given track, head on its artists, share
    chosen on held-out ones), labels = the true artists. Embeds backbone features.

    ``served``: backbone features of the whole catalog the model then serves (test artists
    included, labels unused): the standardisation is refitted on them, as the product does at a
    full re-embedding (``learn.adapt``). ``None`` keeps the training tracks' statistics."""
    feats = train_ds.backbone_features
    if feats is None:
        raise ConfigError(f"system {spec.name!r} needs backbone features: open the dataset with a "
                          "BackboneConfig (artdb evaluate computes them when such a system is asked for)")
    cfg = head_config(spec, seed, base_head)
    t0 = time.perf_counter()
    # the head's initial weights come from torch's global generator (drawn before
    # train_backbone_head seeds it): seeded here so that a seed gives one fit
    torch.manual_seed(cfg.seed)
    result = train_backbone_head(feats, train_ds.artists, cfg, layer_slices=train_ds.backbone_layer_slices(),
                                 genres=train_ds.genres, progress=progress)
    model = result.model
    if served is not None:
        fitted_on(served, model)
    info = {**result.summary(), "train_s": round(time.perf_counter() - t0, 2), "dim": int(model.dim),
            "standardisation": "served catalog" if served is not None else "training tracks",
            "head_steps": cfg.steps, "n_train_artists": len(np.unique(train_ds.artists)),
            "n_train_tracks": len(train_ds)}
    return Fitted(lambda f: embed_backbone(model, f), info, input="backbone_features")


def _chunked(fn, features, chunk: int = 256) -> np.ndarray:
    n = features.shape[0]
    return np.concatenate([fn(_materialize(features, np.arange(i, min(n, i + chunk))))
                           for i in range(0, n, chunk)]) if n else np.zeros((0, 1), np.float32)


def _cnn_embed(model, features, excerpts: int | None) -> np.ndarray:
    feats = _materialize(features)
    k = feats.shape[1]
    if excerpts is None or excerpts >= k:
        return embed(model, feats, batch_size=64)
    pick = np.linspace(0, k - 1, excerpts).round().astype(int)
    return embed(model, feats[:, pick], batch_size=64)


def file_vectors(path: str, ds, require_all: bool = True) -> np.ndarray:
    """Vectors of ``ds``'s tracks from an embeddings file (matched by path, else track id)."""
    emb = read_embeddings(path)
    rows = match_rows(emb, ds.track_ids, ds.paths, root=ds.root)
    missing = int((rows < 0).sum())
    if missing and require_all:
        example = ds.paths[int(np.flatnonzero(rows < 0)[0])]
        raise CatalogError(f"{path}: no vector for {missing} of {len(rows)} tracks (e.g. {example}); "
                           "every evaluated track needs one")
    out = np.zeros((len(rows), emb.vectors.shape[1]), np.float32)
    out[rows >= 0] = emb.vectors[rows[rows >= 0]]
    return out
