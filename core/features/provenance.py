"""Which audio the features in a feature store were made from.

Several data directories (homes) may share one catalog, and two of them may hold features of one
track: when one re-ingests the track's changed file, the other's features are of the old audio,
and a vector embedded from them would be wrong. So each store keeps ``content.i64`` beside its
files: an append-only log of ``(track id, content key)`` int64 pairs, the content key being the
first 64 bits of the track's content hash (:func:`content_key`), written by the store's one writer
right after the features themselves (the last entry of an id wins; a torn last entry of a killed
writer is ignored). A track whose latest entry names other audio than the catalog's has no
*current* features here; one without any entry (features stored before the log existed, or by a
writer killed between features and log) is taken as current.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CONTENT_LOG = "content.i64"
_ENTRY = np.dtype([("track_id", "<i8"), ("content", "<i8")])


def content_key(content_hash: str) -> int:
    """The first 64 bits of a hex content hash, as a signed int64."""
    return int(content_hash[:16], 16) - (1 << 63)


def record_content(store_dir: str | os.PathLike, track_ids: Sequence[int],
                   content_hashes: Sequence[str]) -> None:
    """Append (durably) that the features just stored for ``track_ids`` were made from audio with
    ``content_hashes``. Only the store's writer calls this (it holds the store's writer lock)."""
    entries = np.empty(len(track_ids), dtype=_ENTRY)
    entries["track_id"] = np.asarray(track_ids, dtype=np.int64)
    entries["content"] = [content_key(h) for h in content_hashes]
    with open(Path(store_dir) / CONTENT_LOG, "ab") as f:
        f.write(entries.tobytes())
        f.flush()
        os.fsync(f.fileno())


def stored_content(store_dir: str | os.PathLike) -> dict[int, int]:
    """track id -> content key of its stored features (latest entry); {} when there is no log."""
    try:
        raw = (Path(store_dir) / CONTENT_LOG).read_bytes()
    except FileNotFoundError:
        return {}
    entries = np.frombuffer(raw[:len(raw) - len(raw) % _ENTRY.itemsize], dtype=_ENTRY)
    return dict(zip(entries["track_id"].tolist(), entries["content"].tolist()))


def current_features(store, tracks: Sequence[tuple[int, str]]) -> list[int]:
    """The ids among ``tracks`` = (track id, its content hash in the catalog) whose features in
    ``store`` (a :class:`~artdb.core.features.store.FeatureStore`) are of that audio."""
    made_from = stored_content(store.directory)
    return [t for t, h in tracks
            if t in store and made_from.get(t, content_key(h)) == content_key(h)]
