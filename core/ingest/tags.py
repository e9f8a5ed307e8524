"""Reading catalog metadata from audio tags (mutagen), whatever the container.

Easy tags cover MP3/MP4/FLAC/Ogg; WAV and AIFF carry plain ID3 frames, read through a frame map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Our field -> easy-tag keys tried in order (Vorbis comments are case-insensitive in mutagen).
EASY_KEYS: dict[str, tuple[str, ...]] = {
    "artist": ("artist",),
    "albumartist": ("albumartist", "album artist", "album_artist"),
    "album": ("album",),
    "title": ("title",),
    "genre": ("genre",),
    "date": ("date", "originaldate", "year"),
    "isrc": ("isrc",),
    "label": ("label", "organization", "publisher"),
    "upc": ("barcode", "upc"),
    "track_number": ("tracknumber",),
    "disc_number": ("discnumber",),
}
ID3_FRAMES: dict[str, tuple[str, ...]] = {
    "artist": ("TPE1",),
    "albumartist": ("TPE2",),
    "album": ("TALB",),
    "title": ("TIT2",),
    "genre": ("TCON",),
    "date": ("TDRC", "TYER", "TDOR"),
    "isrc": ("TSRC",),
    "label": ("TPUB", "TXXX:LABEL"),
    "upc": ("TXXX:BARCODE", "TXXX:UPC"),
    "track_number": ("TRCK",),
    "disc_number": ("TPOS",),
}


@dataclass
class TrackTags:
    """Catalog metadata of one file, from its tags and/or a manifest row."""

    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    title: str | None = None
    genre: str | None = None
    date: str | None = None
    isrc: str | None = None
    label: str | None = None
    upc: str | None = None
    track_number: int | None = None
    disc_number: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def merged(self, overrides: dict[str, Any]) -> TrackTags:
        """These tags with non-empty manifest values taking precedence."""
        known = {f.name for f in fields(self)} - {"extra"}
        update: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in known and value not in (None, ""):
                update[key] = _coerce(key, value)
        return replace(self, **update)


def _coerce(key: str, value: Any) -> Any:
    if key in ("track_number", "disc_number"):
        return _parse_number(value)
    return str(value).strip() or None


def _parse_number(value: Any) -> int | None:
    """'3/12' -> 3; (3, 12) -> 3; '' -> None."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
        if value is None:
            return None
    m = re.match(r"\s*(\d+)", str(value))
    return int(m.group(1)) if m else None


def _first_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        # Several values (e.g. two ARTIST comments) are one credit list: "A; B".
        items = [str(v).strip() for v in value if str(v).strip()]
        return "; ".join(items) if items else None
    if hasattr(value, "text"):  # ID3 frame
        return _first_text([str(t) for t in value.text])
    text = str(value).strip()
    return text or None


def read_tags(path: str | Path) -> TrackTags:
    """Tags of ``path``; raises ``mutagen.MutagenError`` or ValueError if it is not a tagged audio file."""
    import mutagen

    audio = mutagen.File(str(path), easy=True)
    if audio is None:
        raise ValueError("not a recognised audio container (mutagen)")
    tags = audio.tags
    values: dict[str, Any] = {}
    if tags is not None:
        from mutagen.id3 import ID3

        if isinstance(tags, ID3):
            for name, frames in ID3_FRAMES.items():
                for frame in frames:
                    if frame in tags:
                        values[name] = _first_text(tags[frame])
                        break
        else:
            lower = {k.lower(): v for k, v in tags.items()}
            for name, keys in EASY_KEYS.items():
                for key in keys:
                    if key in lower:
                        values[name] = _first_text(lower[key])
                        break
    out = TrackTags()
    return out.merged({k: v for k, v in values.items() if v is not None})


def audio_length(path: str | Path) -> float | None:
    """Duration from the container's header (mutagen), for files libsndfile cannot open."""
    import mutagen

    try:
        audio = mutagen.File(str(path))
    except Exception:  # noqa: BLE001 - any parse failure means "unknown"
        return None
    info = getattr(audio, "info", None)
    return float(info.length) if info is not None and getattr(info, "length", None) else None
