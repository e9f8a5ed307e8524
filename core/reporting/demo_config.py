"""The options of ``artdb demo`` (:class:`DemoConfig`), apart from the run so that the CLI reads
its defaults here without loading the whole pipeline (``artdb demo --help`` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DemoConfig:
    artists: int = 32
    albums_per_artist: float = 3.0
    tracks_per_album: int = 3
    seconds: float = 12.0
    genres: int = 4
    homonym_groups: int = 5
    synonym_pairs: int = 4
    difficulty: float = 0.7
    seed: int = 0
    train_steps: int = 0  # the log-mel CNN beside the default model: 0 skips it (300 is a fair run)
    workers: int = 2
