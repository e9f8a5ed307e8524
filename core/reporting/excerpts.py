"""Listenable evidence for the report: a few seconds of a group's most typical tracks, as Ogg.

For each proposed cluster of a flagged page (and each side of a synonym candidate) the report
embeds short excerpts of the tracks nearest the group's centroid (:func:`typical_tracks`: the
mean of their unit track vectors, re-normalised; one track per album first, so two excerpts are
not two songs of one album when the group has several). An excerpt is one window of the track's
loud region, decoded and resampled by the front-end's own decoder
(:func:`~artdb.core.features.frontend.decode.decode_excerpts`: libsndfile, soxr), encoded by
libsndfile as Ogg Opus (Ogg Vorbis where the libsndfile build has no Opus) at a small bitrate and
embedded as a ``data:`` URI, so the report stays one file that plays offline.

A report has an audio budget (bytes of base64 text, :class:`ExcerptOptions`). :class:`AudioBudget`
first shortens every excerpt (down to ``min_seconds``) when the planned excerpts would not fit,
then leaves out the excerpts that still do not fit, lowest priority last in line (the report
asks for every group's first excerpt before any group's second), and says how many it shortened
or left out. A track whose file is missing or no longer decodes gets a note, never an error. Many excerpts
are encoded in worker processes (:func:`~artdb.core.executor.make_executor`).
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import soundfile as sf

from artdb.core.errors import AudioError, ConfigError
from artdb.core.executor import make_executor
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.decode import audio_duration, decode_excerpts

# libsndfile's Opus encoder takes these input rates; 24 kHz keeps everything below 12 kHz.
OPUS_RATE = 24000
VORBIS_RATE = 22050
# libsndfile maps the compression level linearly onto the Opus bitrate (measured with libsndfile
# 1.2: 1.0 -> ~7 kbit/s, 0.9 -> ~31 kbit/s); 0.93 gives ~24 kbit/s, clear enough to tell two
# artists apart and ~12 KB for 4 s.
OPUS_LEVEL = 0.93
VORBIS_LEVEL = 1.0  # Vorbis' lowest quality: ~40 kbit/s at 22 kHz mono
# What one second of excerpt costs in the report, base64 included (for planning only: the budget
# is enforced on the bytes actually embedded).
PLANNED_BYTES_PER_SECOND = {"OPUS": 4200, "VORBIS": 6800}
CONTAINER_BYTES = 1200  # Ogg/Opus headers of one excerpt, base64 included
MIME = "audio/ogg"
# Fewer excerpts than this are encoded inline: starting worker processes would cost more.
PARALLEL_MIN_EXCERPTS = 12


@dataclass(frozen=True)
class ExcerptOptions:
    """How much audio a report embeds.

    - ``seconds``: length of each excerpt (shortened down to ``min_seconds`` to fit the budget).
    - ``per_cluster``: excerpts per proposed cluster (its most typical tracks); a synonym
      candidate gets one per side.
    - ``budget_bytes``: most bytes of embedded audio (the base64 text) in one report.
    - ``enabled``: False embeds no audio at all.
    """

    seconds: float = 4.0
    per_cluster: int = 3
    budget_bytes: int = 2 * 1024 * 1024
    min_seconds: float = 2.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 30 or self.min_seconds <= 0:
            raise ConfigError(f"excerpt seconds must be in (0, 30], got {self.seconds:g}")
        if self.per_cluster < 1:
            raise ConfigError(f"excerpts per cluster must be >= 1, got {self.per_cluster}")
        if self.budget_bytes < 0:
            raise ConfigError(f"the audio budget must be >= 0 bytes, got {self.budget_bytes}")


def codec() -> tuple[str, int, float]:
    """``(subtype, sample rate, compression level)``: Opus when this libsndfile writes it."""
    if "OPUS" in sf.available_subtypes("OGG"):
        return "OPUS", OPUS_RATE, OPUS_LEVEL
    return "VORBIS", VORBIS_RATE, VORBIS_LEVEL


@dataclass
class Excerpt:
    """One excerpt slot: a player (``data_uri``) or the reason there is none (``note``)."""

    track_id: int
    title: str
    album: str
    seconds: float = 0.0
    data_uri: str | None = None
    note: str | None = None

    @property
    def bytes(self) -> int:
        return len(self.data_uri) if self.data_uri else 0


def typical_tracks(track_ids: np.ndarray, vectors: np.ndarray, album_of: dict[int, int],
                   n: int) -> list[int]:
    """The ``n`` tracks nearest the centroid of ``vectors`` (cosine), one per album first."""
    if len(track_ids) == 0 or n <= 0:
        return []
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centre = x.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    order = [int(track_ids[i]) for i in np.argsort(-(x @ centre), kind="stable")]
    chosen: list[int] = []
    seen: set[int] = set()
    for t in order:  # the best track of each album, albums in order of their best track
        if album_of.get(t) not in seen:
            seen.add(album_of.get(t))
            chosen.append(t)
    chosen += [t for t in order if t not in chosen]
    return chosen[:n]


def encode_excerpt(path: str | os.PathLike, seconds: float) -> tuple[bytes, float]:
    """``seconds`` of the loud part of ``path`` as mono Ogg (Opus or Vorbis) bytes, and the
    excerpt's length.

    A track shorter than ``seconds`` is given whole. Raises :class:`AudioError` when the file is
    missing or does not decode.
    """
    subtype, rate, level = codec()
    seconds = float(seconds)
    try:
        seconds = min(seconds, audio_duration(path))
    except AudioError:  # no header libsndfile reads (e.g. MP4): the decoder below says more
        pass
    config = FrontendConfig(sample_rate=rate, excerpt_seconds=seconds, excerpts_per_track=1,
                            min_track_seconds=min(1.0, seconds))
    audio = decode_excerpts(path, config)[0]
    audio = np.clip(audio, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="OGG", subtype=subtype, compression_level=level)
    return buf.getvalue(), seconds


def encode_task(path: str, seconds: float) -> tuple[str, Any, float]:
    """Worker entry: ``("ok", ogg bytes, seconds)``, or ``("missing" | "error", note, 0)`` for a
    file that is gone or does not decode (never raised: one bad file costs one player)."""
    if not os.path.exists(path):
        return "missing", f"audio file missing: {path}", 0.0
    try:
        ogg, got = encode_excerpt(path, seconds)
    except (AudioError, sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        return "error", f"audio not decodable: {getattr(exc, 'reason', exc)}", 0.0
    return "ok", ogg, got


def data_uri(ogg: bytes) -> str:
    return f"data:{MIME};base64," + base64.b64encode(ogg).decode("ascii")


class AudioBudget:
    """Encodes excerpts in the order asked until the report's audio budget is spent."""

    def __init__(self, options: ExcerptOptions, planned: int):
        self.options = options
        self.used = 0
        self.left_out = 0
        self.failed = 0
        subtype, _, _ = codec()
        per_second = PLANNED_BYTES_PER_SECOND[subtype]
        fit = (options.budget_bytes / max(planned, 1) - CONTAINER_BYTES) / per_second
        self.seconds = float(options.seconds)
        self.shortened = planned > 0 and fit < options.seconds
        if self.shortened:
            floor = min(options.min_seconds, options.seconds)
            self.seconds = max(floor, math.floor(fit * 2) / 2)
        self.planned = planned

    def fill(self, requests: Sequence[tuple[Excerpt, str]], workers: int = 2) -> None:
        """Fill each excerpt of ``requests`` (in priority order) with the audio of its path, or a
        note saying why there is none. Encoding runs in ``workers`` processes when there are
        enough excerpts to pay for them (their native stderr silenced: libmpg123 reports every
        MP3 frame entered by a seek there)."""
        if not requests:
            return
        if not self.options.enabled:
            for excerpt, _ in requests:
                excerpt.note = "audio left out (--no-audio)"
            return
        pool = workers if len(requests) >= PARALLEL_MIN_EXCERPTS else 1
        paths = [path for _, path in requests]
        with make_executor(pool) as ex:
            results = list(ex.map(encode_task, paths, repeat(self.seconds)))
        for (excerpt, _), result in zip(requests, results):
            self._accept(excerpt, result)

    def _accept(self, excerpt: Excerpt, result: tuple) -> None:
        kind, payload, seconds = result
        if kind != "ok":
            self.failed += 1
            excerpt.note = payload
            return
        uri = data_uri(payload)
        if self.used + len(uri) > self.options.budget_bytes:
            self._leave_out(excerpt)
            return
        self.used += len(uri)
        excerpt.data_uri, excerpt.seconds = uri, seconds

    def _leave_out(self, excerpt: Excerpt) -> Excerpt:
        self.left_out += 1
        excerpt.note = "left out: the report's audio budget is spent"
        return excerpt

    def notes(self) -> list[str]:
        """What the budget changed, in words (empty when everything fitted at full length)."""
        out = []
        budget = f"{self.options.budget_bytes / 1024:.0f} KiB"
        if self.options.enabled and self.shortened:
            out.append(f"audio excerpts shortened to {self.seconds:g} s (from "
                       f"{self.options.seconds:g} s) to fit the report's audio budget of {budget}")
        if self.left_out:
            out.append(f"{self.left_out} audio excerpt(s) left out: the audio budget of {budget} "
                       "was spent (--audio-budget raises it)")
        return out


__all__ = ["AudioBudget", "Excerpt", "ExcerptOptions", "codec", "data_uri", "encode_excerpt",
           "typical_tracks"]
