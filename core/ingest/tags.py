"""Reading catalog metadata from audio tags (mutagen), whatever the container, and making every
value storable.

Easy tags cover MP3/MP4/FLAC/Ogg; WAV and AIFF carry plain ID3 frames, read through a frame map.

Tags come from strangers' files, so each value is cleaned the same way whatever the catalog's
back-end (PostgreSQL refuses what SQLite stores silently): NUL bytes are removed, other control
characters escaped (``\\x01``, ``\\n``), lone surrogates replaced by U+FFFD, text longer than its
catalog column cut to fit (ending in "…"), and numbers out of the column's range dropped. Each
change is a per-field warning, and the original value is kept in full (``TrackTags.raw``, stored as
``tracks.raw_tags``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from artdb.db.models import Album, ArtistPage, Genre, Label, Track

# The catalog column each text field ends up in (db/models.py is the one home of the lengths).
# ``date`` has none: the catalog keeps its first 10 characters (YYYY-MM-DD) by design.
TEXT_LIMITS: dict[str, int | None] = {
    "artist": ArtistPage.display_name.type.length,
    "albumartist": ArtistPage.display_name.type.length,
    "album": Album.title.type.length,
    "title": Track.title.type.length,
    "genre": Genre.name.type.length,
    "label": Label.name.type.length,
    "upc": Album.upc.type.length,
    "isrc": Track.isrc.type.length,
    "date": None,
}
# Integer columns (track/disc number) are 32-bit on PostgreSQL; SQLite's are 64-bit. One rule for
# both: a value beyond the 32-bit range is not a track number.
INT_MAX = 2**31 - 1
NUMBER_FIELDS = ("track_number", "disc_number")
# C0 and C1 control characters except NUL (removed), and DEL.
_CONTROL = re.compile(r"[\x01-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DIGITS = re.compile(r"\s*(\d+)")

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
    """Catalog metadata of one file, from its tags and/or a manifest row, cleaned to be storable.

    ``warnings`` says, per field, what cleaning changed; ``raw`` holds those fields' original
    values (the text as tagged), so nothing a file said is lost.
    """

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
    raw: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)

    def merged(self, overrides: dict[str, Any]) -> TrackTags:
        """These tags with non-empty values of ``overrides`` (a manifest row, or the values read
        from the file) taking precedence, each cleaned (see the module doc)."""
        known = {f.name for f in fields(self)} - {"extra", "raw", "warnings"}
        update: dict[str, Any] = {}
        raw, warnings = dict(self.raw), dict(self.warnings)
        for key, value in overrides.items():
            if key in known and value not in (None, ""):
                update[key], warning = _coerce(key, value)
                raw.pop(key, None)
                warnings.pop(key, None)
                if warning:
                    raw[key] = value if isinstance(value, str) else str(value)
                    warnings[key] = warning
        return replace(self, **update, raw=raw, warnings=warnings)

    def warning_text(self) -> str | None:
        """One line for the run report, or None when nothing was changed."""
        if not self.warnings:
            return None
        return "; ".join(f"{k}: {w}" for k, w in self.warnings.items()) + \
            " (original values kept in tracks.raw_tags)"


def _coerce(key: str, value: Any) -> tuple[Any, str | None]:
    """(cleaned value, what cleaning changed or None)."""
    if key in NUMBER_FIELDS:
        return _parse_number(value)
    text, changes = clean_text(str(value), TEXT_LIMITS.get(key))
    if key == "isrc" and text:  # stored without separators, upper case: FR-Z03-14-00123 -> FRZ031400123
        text, changes = clean_text(str(value).replace("-", "").replace(" ", "").upper(),
                                   TEXT_LIMITS["isrc"])
    return text or None, "; ".join(changes) or None


def clean_text(value: str, limit: int | None = None) -> tuple[str, list[str]]:
    """``value`` made storable in a text column of ``limit`` characters, and what was changed."""
    changes: list[str] = []
    if "\x00" in value:
        changes.append(f"{value.count(chr(0))} NUL byte(s) removed")
        value = value.replace("\x00", "")
    value = value.strip()  # a trailing newline is dropped, not escaped
    n = len(_CONTROL.findall(value))
    if n:
        changes.append(f"{n} control character(s) escaped")
        value = _CONTROL.sub(lambda m: repr(m.group())[1:-1], value)
    n = len(_SURROGATE.findall(value))
    if n:  # not encodable as UTF-8: neither database can store it
        changes.append(f"{n} invalid code point(s) replaced by U+FFFD")
        value = _SURROGATE.sub("\ufffd", value)
    if limit is not None and len(value) > limit:
        changes.append(f"{len(value)} characters cut to {limit}")
        value = value[: limit - 1].rstrip() + "…"
    return value, changes


def _parse_number(value: Any) -> tuple[int | None, str | None]:
    """'3/12' -> 3; (3, 12) -> 3; '' -> None; beyond the catalog's integer range -> None + why."""
    if value is None:
        return None, None
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
        if value is None:
            return None, None
    m = _DIGITS.match(str(value))
    if not m:
        return None, None
    digits = m.group(1).lstrip("0") or "0"
    # Compare lengths first: int() of a 5,000-digit string raises in Python >= 3.11.
    if len(digits) > len(str(INT_MAX)) or int(digits) > INT_MAX:
        shown = digits if len(digits) <= 40 else f"{digits[:20]}… ({len(digits)} digits)"
        return None, f"{shown} is out of range (at most {INT_MAX}): stored as empty"
    return int(digits), None


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
