"""Validation for model selection: held-out artists, their albums (or tracks) clustered.

Validation is split by artist (:func:`split_validation`): held-out artists are put in artificial
homonym groups of 2-4, their album vectors (:func:`album_centroids`: the mean-normalised vectors
of each artist's albums) clustered agglomeratively with a threshold fitted on those groups, and
the mean ARI selects the model and drives early stopping (:class:`Validator`). When too few
artists have two albums (``val_unit="auto"``), artists with two tracks are held out and their
*tracks* are clustered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artdb.core.analysis.clustering import codes, fit_threshold, make_homonym_groups
from artdb.core.learn.config import (
    MIN_TRACKS_PER_ARTIST,
    MIN_TRAIN_ARTISTS_WITH_VALIDATION,
    TrainConfig,
    TrainingData,
)
from artdb.core.learn.networks import ArtistNet, embed
from artdb.core.vectors.aggregate import mean_normalized


def split_artists(
    artists: np.ndarray, albums: np.ndarray, val_fraction: float, rng: np.random.Generator,
    min_albums: int = 2, n_val: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Artist-level split: ``(train_artist_ids, val_artist_ids)``; val artists have >= min_albums albums.

    ``n_val`` (default ``round(val_fraction * n_artists)``) is how many to hold out, at most the
    eligible ones.
    """
    ids = np.unique(artists)
    if val_fraction <= 0:
        return ids, ids[:0]
    pairs = np.unique(np.stack([codes(artists), codes(albums)], axis=1), axis=0)
    art_codes, n_alb = np.unique(pairs[:, 0], return_counts=True)
    eligible = ids[art_codes[n_alb >= min_albums]]
    n_val = min(len(eligible), int(round(val_fraction * len(ids))) if n_val is None else int(n_val))
    val = np.sort(rng.choice(eligible, size=n_val, replace=False)) if n_val else ids[:0]
    return np.setdiff1d(ids, val), val


def _n_with_units(artists: np.ndarray, units: np.ndarray, min_units: int) -> int:
    """How many artists have at least ``min_units`` distinct units (albums)."""
    pairs = np.unique(np.stack([codes(artists), codes(units)], axis=1), axis=0)
    return int((np.unique(pairs[:, 0], return_counts=True)[1] >= min_units).sum())


def album_centroids(track_vectors: np.ndarray, artists: np.ndarray, albums: np.ndarray):
    """``(centroids [g, d], album_artists [g])``: track vectors mean-normalised per
    (artist, album) — from arrays, unlike the audit's catalog-reading ``album_vectors``."""
    artists = np.asarray(artists)
    x = np.asarray(track_vectors, dtype=np.float32)
    if len(artists) == 0:
        return np.zeros((0, x.shape[1]), np.float32), artists[:0]
    pairs = np.stack([codes(artists), codes(albums)], axis=1)
    _, first, key = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    _, vecs = mean_normalized(x, key.reshape(-1))
    return vecs, artists[first]


@dataclass
class ValidationPlan:
    """The artist-level split (:func:`plan_validation`): who trains, who is held out, what
    validation clusters, and how a small catalog changed the count held out (``asked`` ->
    ``len(val_ids)``, with a sentence in ``note``)."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    unit: str
    asked: int
    note: str = ""


def split_validation(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator):
    """``(train_artist_ids, val_artist_ids, unit)`` of :func:`plan_validation`."""
    plan = plan_validation(data, cfg, rng)
    return plan.train_ids, plan.val_ids, plan.unit


def validation_count(artists: np.ndarray, cfg: TrainConfig) -> tuple[int, int, str]:
    """``(n_val, asked, note)``: how many artists to hold out for validation.

    ``asked = round(val_fraction * n_artists)``. Held-out artists are only useful in homonym
    groups (``val_group_sizes[0]`` of them at least), and only worth taking from training while
    ``MIN_TRAIN_ARTISTS_WITH_VALIDATION`` artists with 2+ tracks stay for it: a small catalog holds
    out at least a group's worth, at most what leaves that many, else none (``note`` says which).
    Catalogs large enough keep ``asked``.
    """
    ids, counts = np.unique(np.asarray(artists), return_counts=True)
    asked = int(round(cfg.val_fraction * len(ids)))
    if cfg.val_fraction <= 0:
        return 0, 0, ""
    lo = int(cfg.val_group_sizes[0])
    n_multi = int((counts >= MIN_TRACKS_PER_ARTIST).sum())
    room = n_multi - MIN_TRAIN_ARTISTS_WITH_VALIDATION
    n_val = min(max(asked, lo), room)
    if n_val < lo:
        return 0, asked, (
            f"no validation: {n_multi} artists with {MIN_TRACKS_PER_ARTIST}+ tracks are too few to hold "
            f"out {lo} (one homonym group) and keep {MIN_TRAIN_ARTISTS_WITH_VALIDATION} for training; "
            f"the last weights are kept"
        )
    if n_val != asked:
        why = (f"{asked} cannot form a homonym group of {lo}" if asked < lo
               else f"{MIN_TRAIN_ARTISTS_WITH_VALIDATION} artists with {MIN_TRACKS_PER_ARTIST}+ tracks "
                    f"stay for training")
        return n_val, asked, (f"validation holds out {n_val} artists (val_fraction {cfg.val_fraction:g} of "
                              f"{len(ids)} gives {asked}; {why})")
    return n_val, asked, ""


def plan_validation(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator) -> ValidationPlan:
    """The artist-level split and what validation clusters.

    ``val_unit="auto"`` holds out artists with ``val_min_albums`` albums when at least half of the
    artists have that many (a multi-album catalog) and they fill two homonym groups
    (``2 * val_group_sizes[0]`` artists: one group of a few albums saturates at ARI 1 and cannot
    select a model); otherwise artists with that many *tracks*, whose tracks are then clustered
    (catalogs where most artists have a single album). How many are held out:
    :func:`validation_count`; when fewer artists qualify than one homonym group needs, none are
    held out (they could not be validated on, and training needs them).
    """
    n_val, asked, note = validation_count(data.artists, cfg)
    train_ids, val_ids, unit = _split(data, cfg, rng, n_val)
    lo = int(cfg.val_group_sizes[0])
    if 0 < len(val_ids) < lo:
        what = "albums" if unit == "album" else "tracks"
        note = (f"no validation: {len(val_ids)} artists have {cfg.val_min_albums}+ {what} to hold out, "
                f"a homonym group needs {lo}; the last weights are kept")
        train_ids, val_ids = np.unique(data.artists), val_ids[:0]
    return ValidationPlan(train_ids, val_ids, unit, asked, note)


def _split(data: TrainingData, cfg: TrainConfig, rng: np.random.Generator, n_val: int):
    unit = cfg.val_unit
    if unit in ("auto", "album"):
        n_artists = len(np.unique(data.artists))
        train_ids, val_ids = split_artists(data.artists, data.albums, cfg.val_fraction, rng,
                                           cfg.val_min_albums, n_val)
        multi = _n_with_units(data.artists, data.albums, cfg.val_min_albums)
        if (unit == "album" or cfg.val_fraction <= 0
                or (len(val_ids) >= 2 * cfg.val_group_sizes[0] and 2 * multi >= n_artists)):
            return train_ids, val_ids, "album"
    tracks = np.arange(data.n_tracks)
    train_ids, val_ids = split_artists(data.artists, tracks, cfg.val_fraction, rng, cfg.val_min_albums, n_val)
    return train_ids, val_ids, "track"


class Validator:
    """``validator(model) -> (mean ARI, fitted threshold)`` on the held-out artists' homonym groups.

    ``enabled`` is False when the held-out artists form no group (nothing to select a model on).
    """

    def __init__(self, data: TrainingData, val_ids: np.ndarray, config: TrainConfig, rng,
                 unit: str = "album"):
        self.rows = np.flatnonzero(np.isin(data.artists, val_ids))
        self.data, self.config, self.unit = data, config, unit
        # track unit: every track is its own "album"
        self.albums = data.albums if unit == "album" else np.arange(data.n_tracks)
        _, unit_artists = album_centroids(
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
        units, unit_artists = album_centroids(vecs, self.data.artists[rows], self.albums[rows])
        t, ari, _ = fit_threshold(
            self.groups, units, unit_artists, linkage=self.config.linkage, metric=self.config.metric
        )
        return ari, t
