"""The answer key of a synthetic catalog (``truth.json``), as plain dataclasses.

Schema (version 1) is documented in docs/synth.md; every record is flat JSON so that ingest,
evaluation and the demo can read it without importing this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

TRUTH_FILE = "truth.json"
SCHEMA_VERSION = 1


@dataclass
class ArtistTruth:
    id: str
    name: str
    genre: str
    names_used: list[str]
    instruments: list[str] = field(default_factory=list)
    singer: bool = False
    tempo: float = 0.0
    key: str = ""


@dataclass
class AlbumTruth:
    id: str
    title: str
    page_name: str
    artist_id: str
    genre: str
    label: str
    year: int
    codec: str
    sample_rate: int
    quality: float = 0.0
    # Metadata confounds (docs/synth.md): the first release year when ``year`` is a reissue's,
    # and the tags left out of this album's files ("label", "date", "isrc").
    original_year: int | None = None
    missing: list[str] = field(default_factory=list)


@dataclass
class TrackTruth:
    id: str
    path: str
    artist_id: str
    album_id: str
    page_name: str
    title: str
    isrc: str
    duration: float
    number: int = 1
    disc: int = 1


@dataclass
class HomonymGroup:
    page_name: str
    artist_ids: list[str]


@dataclass
class SynonymPair:
    artist_id: str
    names: list[str]
    kind: str  # "variant" | "alias"


@dataclass
class CatalogTruth:
    config: dict
    seed: int
    genres: list[str]
    palettes: dict[str, list[str]]
    artists: list[ArtistTruth]
    albums: list[AlbumTruth]
    tracks: list[TrackTruth]
    homonym_groups: list[HomonymGroup]
    synonym_pairs: list[SynonymPair]
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / TRUTH_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, d: dict) -> CatalogTruth:
        return cls(
            config=d["config"],
            seed=d["seed"],
            genres=list(d["genres"]),
            palettes=dict(d.get("palettes", {})),
            artists=[ArtistTruth(**a) for a in d["artists"]],
            albums=[AlbumTruth(**a) for a in d["albums"]],
            tracks=[TrackTruth(**t) for t in d["tracks"]],
            homonym_groups=[HomonymGroup(**h) for h in d["homonym_groups"]],
            synonym_pairs=[SynonymPair(**s) for s in d["synonym_pairs"]],
            version=d.get("version", SCHEMA_VERSION),
        )

    @classmethod
    def load(cls, path: str | Path) -> CatalogTruth:
        """Read ``truth.json`` (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / TRUTH_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    # Small lookups used by tests, evaluation and the difficulty check.
    def artist_of_track(self) -> dict[str, str]:
        return {t.path: t.artist_id for t in self.tracks}

    def album_artist(self) -> dict[str, str]:
        return {a.id: a.artist_id for a in self.albums}
