"""The front-end's parameters: one frozen dataclass, stored with every model and feature store.

Everything that changes the numbers a model sees lives here (sample rate, STFT, mel bank,
excerpt placement, silence threshold, short-track policy, normalisation), so that two configs
with the same :meth:`FrontendConfig.fingerprint` produce the same features from the same file.
:func:`check_compatible` is the single place that refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from artdb.core.errors import ConfigError, ModelMismatchError

# Bumped whenever the decoding/excerpt/log-mel *algorithm* changes in a way that changes the
# numbers for an unchanged config; it is part of the fingerprint.
ALGORITHM_VERSION = 1

NORMALISATIONS = ("fixed", "per_excerpt", "none")
SHORT_TRACK_POLICIES = ("pad", "reject")
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of decode → excerpts → log-mel. Defaults are documented in ``docs/frontend.md``.

    - ``sample_rate``: every file is downmixed to mono and resampled (soxr) to this rate.
      16 kHz keeps everything below 8 kHz (voice formants, most instrument timbre), halves STFT
      and storage work relative to 32 kHz, and is a rate every catalog file can be brought to.
    - ``n_fft`` / ``hop_length``: Hann window of ``n_fft`` samples (64 ms), hop 20 ms.
    - ``n_mels`` / ``fmin`` / ``fmax``: Slaney-style mel bank from ``librosa.filters.mel``.
    - ``excerpt_seconds`` / ``excerpts_per_track``: k excerpts of L seconds spread over the
      non-silent part of the track.
    - ``silence_db``: a probe or excerpt whose RMS is below this (dBFS) counts as silence.
    - ``probes`` / ``probe_seconds``: short reads spread over the track to find where the music is.
    - ``short_tracks``: ``"pad"`` zero-pads tracks shorter than one excerpt (at least
      ``min_track_seconds`` long), ``"reject"`` refuses them with an AudioError.
    - ``normalisation``: ``"fixed"`` = (dB − ``db_offset``) / ``db_scale``, the same affine map
      for every excerpt (keeps relative loudness); ``"per_excerpt"`` = zero mean, unit variance
      per excerpt; ``"none"`` = plain dB.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 8000.0
    excerpt_seconds: float = 3.0
    excerpts_per_track: int = 6
    silence_db: float = -60.0
    probes: int = 16
    probe_seconds: float = 0.1
    short_tracks: str = "pad"
    min_track_seconds: float = 1.0
    resample_quality: str = "HQ"
    amin: float = 1e-10
    normalisation: str = "fixed"
    db_offset: float = -40.0
    db_scale: float = 20.0

    def __post_init__(self) -> None:
        # Numbers arrive from JSON and CLI options as int or float: store each field as its
        # declared type so that equal values compare, serialise and hash alike.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft <= 0 or self.hop_length <= 0:
            problems.append("n_fft and hop_length must be positive")
        if self.n_mels <= 0:
            problems.append(f"n_mels must be positive, got {self.n_mels}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(
                f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin} fmax={self.fmax} "
                f"sample_rate={self.sample_rate}"
            )
        if self.excerpt_seconds <= 0 or self.excerpts_per_track <= 0:
            problems.append("excerpt_seconds and excerpts_per_track must be positive")
        elif self.excerpt_samples < self.n_fft:
            problems.append("an excerpt must be at least n_fft samples long")
        if self.probes < 2 or self.probe_seconds <= 0:
            problems.append("need probes >= 2 and probe_seconds > 0")
        if self.short_tracks not in SHORT_TRACK_POLICIES:
            problems.append(f"short_tracks must be one of {SHORT_TRACK_POLICIES}, got {self.short_tracks!r}")
        if not 0 < self.min_track_seconds <= self.excerpt_seconds:
            problems.append("need 0 < min_track_seconds <= excerpt_seconds")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            problems.append(f"resample_quality must be one of {RESAMPLE_QUALITIES}")
        if self.normalisation not in NORMALISATIONS:
            problems.append(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.amin <= 0 or self.db_scale <= 0:
            problems.append("amin and db_scale must be positive")
        if problems:
            raise ConfigError("invalid FrontendConfig: " + "; ".join(problems))

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def excerpt_samples(self) -> int:
        """Samples per excerpt at ``sample_rate``."""
        return int(round(self.excerpt_seconds * self.sample_rate))

    @property
    def frames(self) -> int:
        """STFT frames per excerpt (centred frames, as ``torch.stft(center=True)``)."""
        return 1 + self.excerpt_samples // self.hop_length

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one track's features: (excerpts_per_track, n_mels, frames)."""
        return (self.excerpts_per_track, self.n_mels, self.frames)

    @property
    def bytes_per_track(self) -> int:
        """Bytes of one track's float16 features."""
        return 2 * math.prod(self.feature_shape)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown FrontendConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def fingerprint(self) -> str:
        """A stable hash (hex, 16 chars) of the parameters and the algorithm version."""
        payload = {"algorithm": ALGORITHM_VERSION, **self.to_dict()}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def check_compatible(
    expected: FrontendConfig,
    actual: FrontendConfig,
    what: str = "features",
    expected_fingerprint: str | None = None,
) -> None:
    """Raise :class:`ModelMismatchError` naming every differing field when the configs differ.

    ``expected`` is what the model/store was built with, ``actual`` what the caller brings.
    ``expected_fingerprint`` is the fingerprint *stored* with it: passing it also catches a change
    of :data:`ALGORITHM_VERSION` since it was written.
    """
    stored = expected_fingerprint or expected.fingerprint()
    if stored == actual.fingerprint():
        return
    diffs = [
        f"{f.name}: {getattr(expected, f.name)!r} != {getattr(actual, f.name)!r}"
        for f in fields(FrontendConfig)
        if getattr(expected, f.name) != getattr(actual, f.name)
    ]
    detail = "; ".join(diffs) if diffs else f"algorithm version differs (now {ALGORITHM_VERSION})"
    raise ModelMismatchError(
        f"front-end config mismatch for {what} (fingerprint {stored} vs "
        f"{actual.fingerprint()}): {detail}. Recompute the features or use the matching config."
    )
