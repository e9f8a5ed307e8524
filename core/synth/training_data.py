"""A synthetic "log-mel" catalog with known structure, straight into :class:`TrainingData`.

No audio is rendered (unlike :func:`artdb.core.synth.generate_catalog`): the arrays are what the
front-end would have produced, for tests, benchmarks and smoke runs of training and evaluation.
"""

from __future__ import annotations

import numpy as np

from artdb.core.learn.config import TrainingData


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
