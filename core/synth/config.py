"""Settings of the catalog generator, in one place, with their defaults and checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from artdb.core.errors import ConfigError

CODECS = ("flac", "ogg", "mp3", "wav")
SAMPLE_RATES = (22050, 32000, 44100, 48000)

# The genres a catalog draws from (``genres`` of them; plan.py): name, tempo range (bpm), drums
# probability, swing, fm share, mode weights (maj, min, dor, mix), lead density (mean onsets per
# bar), typical lead register (octave)
GENRE_BANK = [
    ("Synthpop", (104, 124), 1.0, 0.0, 0.6, (0.5, 0.4, 0.05, 0.05), 5.0, 5),
    ("Indie Folk", (78, 112), 0.6, 0.05, 0.1, (0.6, 0.2, 0.1, 0.1), 3.5, 4),
    ("Jazz", (96, 170), 0.9, 0.33, 0.2, (0.3, 0.2, 0.4, 0.1), 7.0, 5),
    ("Hip Hop", (80, 98), 1.0, 0.18, 0.4, (0.2, 0.6, 0.15, 0.05), 4.0, 4),
    ("Ambient", (60, 84), 0.15, 0.0, 0.5, (0.4, 0.4, 0.1, 0.1), 1.5, 5),
    ("Hard Rock", (112, 152), 1.0, 0.0, 0.15, (0.3, 0.4, 0.05, 0.25), 6.0, 4),
    ("Techno", (124, 140), 1.0, 0.0, 0.7, (0.1, 0.7, 0.15, 0.05), 8.0, 5),
    ("Bossa Nova", (120, 144), 0.8, 0.1, 0.1, (0.5, 0.2, 0.2, 0.1), 4.5, 5),
    ("Chamber Pop", (70, 108), 0.4, 0.0, 0.1, (0.6, 0.3, 0.05, 0.05), 3.0, 5),
    ("Reggae", (66, 84), 1.0, 0.12, 0.2, (0.5, 0.3, 0.1, 0.1), 3.5, 4),
]


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    The default catalog (40 artists x ~3 albums x 4 tracks x 20 s = 2.7 h of audio, 480 files)
    synthesizes in about a minute on two cores and is large enough for 5 homonym pages and 4 synonym
    pairs. ``albums_per_artist`` is a mean: every artist gets at least two albums (one if the mean
    is below two) and the rest are shared out unevenly, so a few artists are prolific.

    ``difficulty`` (0..1) moves four things together: how close same-genre artists are to their
    genre's prototype, how much an artist drifts from album to album, how strongly album production
    (EQ, reverb, compression, saturation, band limit, noise) varies, and how often a homonym group
    is drawn from one genre. See docs/synth.md for what the MFCC baseline scores at each setting.
    """

    artists: int = 40
    albums_per_artist: float = 3.0
    tracks_per_album: int = 4
    seconds: float = 20.0
    genres: int = 5
    homonym_groups: int = 5
    synonym_pairs: int = 4
    seed: int = 0
    difficulty: float = 0.7
    synth_rate: int = 22050
    sample_rates: tuple[int, ...] = SAMPLE_RATES
    codecs: tuple[str, ...] = CODECS
    alias_fraction: float = 0.34
    # Metadata confounds, so that tags are no oracle (docs/synth.md "Metadata").
    homonym_shared_label: float = 0.3  # chance a homonym shares a label with an earlier namesake
    label_change: float = 0.25  # chance an artist moves to another label before each later album
    reissue_fraction: float = 0.15  # albums tagged with a later (reissue) year
    missing_metadata: float = 0.1  # chance each of label, date, ISRC is left out of an album
    workers: int | None = field(default=None, compare=False)

    def validate(self) -> SynthConfig:
        if self.artists < 1:
            raise ConfigError("artists must be >= 1")
        if self.albums_per_artist < 1:
            raise ConfigError("albums_per_artist must be >= 1")
        if self.tracks_per_album < 1:
            raise ConfigError("tracks_per_album must be >= 1")
        if not 1.0 <= self.seconds <= 600.0:
            raise ConfigError("seconds must be between 1 and 600")
        if not 1 <= self.genres <= len(GENRE_BANK):
            raise ConfigError(f"genres must be between 1 and {len(GENRE_BANK)}")
        if self.homonym_groups < 0 or self.synonym_pairs < 0:
            raise ConfigError("homonym_groups and synonym_pairs must be >= 0")
        needed = 2 * self.homonym_groups + self.synonym_pairs
        if needed > self.artists:
            raise ConfigError(
                f"{self.homonym_groups} homonym groups (2+ artists each) and {self.synonym_pairs} "
                f"synonym pairs need at least {needed} artists, got {self.artists}"
            )
        if not 0.0 <= self.difficulty <= 1.0:
            raise ConfigError("difficulty must be between 0 and 1")
        if self.synth_rate not in (16000, 22050, 24000, 32000, 44100, 48000):
            raise ConfigError(f"unsupported synth_rate {self.synth_rate}")
        bad = [c for c in self.codecs if c not in CODECS]
        if bad or not self.codecs:
            raise ConfigError(f"codecs must be a non-empty subset of {CODECS}, got {self.codecs}")
        if not self.sample_rates or any(r < 8000 or r > 96000 for r in self.sample_rates):
            raise ConfigError("sample_rates must be between 8000 and 96000")
        for knob in ("alias_fraction", "homonym_shared_label", "label_change", "reissue_fraction",
                     "missing_metadata"):
            if not 0.0 <= getattr(self, knob) <= 1.0:
                raise ConfigError(f"{knob} must be between 0 and 1")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("workers")
        d["sample_rates"] = list(self.sample_rates)
        d["codecs"] = list(self.codecs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        d = dict(d)
        for key in ("sample_rates", "codecs"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
