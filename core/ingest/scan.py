"""Finding the files of a catalog folder and reading its optional manifest."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artdb.core.errors import ManifestError

# Extensions artdb treats as audio. Anything else in the folder (covers, truth.json, …) is skipped
# silently; a file with an audio extension that is not audio is an *error* for that file.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".aif", ".aiff"}
)
MANIFEST_FIELDS = (
    "artist", "albumartist", "album", "title", "genre", "date", "isrc", "label", "upc",
    "track_number", "disc_number",
)
# Accepted spellings of manifest columns.
MANIFEST_ALIASES = {
    "album_artist": "albumartist", "year": "date", "release_date": "date", "organization": "label",
    "publisher": "label", "tracknumber": "track_number", "track": "track_number",
    "discnumber": "disc_number", "disc": "disc_number", "barcode": "upc",
}


@dataclass(frozen=True)
class FoundFile:
    """A file under the ingest root. ``path`` is absolute; ``relpath`` is relative to the root."""

    path: str
    relpath: str
    name_error: str | None = None  # set when the name cannot be stored as text


def scan_audio_files(root: str | Path) -> Iterator[FoundFile]:
    """Audio files under ``root``, recursively, in a stable (sorted) order."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                full.encode("utf-8")
            except UnicodeEncodeError:
                # os.walk decoded undecodable bytes with surrogates: such a path cannot be stored
                # in the catalog (SQLite/PostgreSQL text) and read back to the same file.
                shown = os.fsencode(full).decode("utf-8", "backslashreplace")
                yield FoundFile(shown, os.fsencode(rel).decode("utf-8", "backslashreplace"),
                                name_error="file name is not valid UTF-8; rename the file")
                continue
            yield FoundFile(full, rel)


def load_manifest(manifest: str | Path, root: str | Path) -> dict[str, dict[str, Any]]:
    """Manifest rows keyed by normalised path relative to ``root``.

    CSV (header row with a ``path`` column) or JSON Lines (one object per line with ``path``).
    Paths are relative to ``root``; one that escapes it is an error naming the row.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found")
    root_resolved = Path(root).resolve()
    rows: list[tuple[int, dict[str, Any]]] = []
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".csv":
            with open(manifest, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or "path" not in [f.strip().lower() for f in reader.fieldnames]:
                    raise ManifestError(f"{manifest}: CSV manifest needs a 'path' column")
                for lineno, row in enumerate(reader, start=2):
                    rows.append((lineno, {k.strip().lower(): v for k, v in row.items() if k}))
        elif suffix in (".jsonl", ".ndjson"):
            with open(manifest, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ManifestError(f"{manifest}:{lineno}: invalid JSON ({exc.msg})") from exc
                    if not isinstance(obj, dict):
                        raise ManifestError(f"{manifest}:{lineno}: expected a JSON object")
                    rows.append((lineno, {str(k).lower(): v for k, v in obj.items()}))
        else:
            raise ManifestError(f"{manifest}: manifest must be .csv or .jsonl")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest}: not UTF-8 text ({exc.reason})") from exc

    out: dict[str, dict[str, Any]] = {}
    for lineno, row in rows:
        raw_path = row.get("path")
        if not raw_path:
            raise ManifestError(f"{manifest}:{lineno}: row has no path")
        target = (root_resolved / str(raw_path)).resolve()
        if not target.is_relative_to(root_resolved):
            raise ManifestError(f"{manifest}:{lineno}: path {raw_path!r} escapes the catalog root {root}")
        fields: dict[str, Any] = {}
        for key, value in row.items():
            key = MANIFEST_ALIASES.get(key, key)
            if key in MANIFEST_FIELDS:
                fields[key] = value
        out[str(target.relative_to(root_resolved))] = fields
    return out
