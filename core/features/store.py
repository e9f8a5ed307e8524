"""Memory-mapped store of fixed-size float16 features per track, keyed by int64 track id.

Written during ingest, read by training and embedding without decoding audio again. A store holds
one kind of features, made with one config: log-mel excerpts ``[k, n_mels, frames]`` of a
:class:`FrontendConfig`, or backbone patch vectors ``[patches_per_track, dim]`` of a
:class:`~artdb.core.features.backbone.BackboneConfig`.

On-disk layout of a store directory (generation ``g`` starts at 0 and changes on compaction):

- ``frontend.json`` — the header: ``kind`` (``"frontend"`` or ``"backbone"``; absent in stores
  written before backbone features existed, meaning ``"frontend"``), the config under that key
  (``to_dict``), its fingerprint, the record shape and dtype. Opening with a config of another
  kind, or with different parameters, raises :class:`ModelMismatchError`.
- ``data.<g>.f16`` — append-only records of ``bytes_per_track`` bytes, one per write.
- ``index.<g>.i64`` — append-only log of ``(track_id, record)`` int64 pairs; ``record = -1``
  deletes the id. The last entry of an id wins, so replacing features appends a record and an
  entry pointing at it.
- ``commit.json`` — ``{"generation", "records", "entries"}``: how much of the two files is
  committed. Replaced atomically (write, fsync, rename, fsync dir) only *after* data and index
  were written and fsynced, so a killed writer leaves at most an uncommitted tail, which readers
  ignore and the next writer truncates and overwrites. A rerun of the interrupted ingest then
  completes it.

One writer at a time (an exclusive ``flock`` on ``writer.lock``); any number of reader
processes (``mode="r"``), each seeing the state committed when it opened or last called
:meth:`FeatureStore.refresh`. The lock dies with its owner: the kernel releases a ``flock`` when
the last descriptor of it closes, the descriptor is close-on-exec, and a forked child closes its
copy at once (``os.register_at_fork``), so a pool worker outliving a killed writer cannot keep the
store locked. The writer records its pid and host in ``writer.lock``; a second writer waits for
the lock (``lock_timeout`` seconds, default ``ARTDB_LOCK_TIMEOUT`` or 300), saying once whom it
waits for, then gives up with an error naming that process. Opening a writer also removes
``*.tmp`` files in the store directory: under the lock, only a killed writer can have left them.

In memory the id → record map is two sorted int64 arrays (16 bytes per track) plus a small dict
of recent changes merged into them now and then, so 10M tracks need ~160 MB, not a Python dict.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import time
import weakref
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from artdb.core.errors import ArtdbError, ConfigError, ModelMismatchError
from artdb.core.faults import kill_point
from artdb.core.features import backbone as _backbone
from artdb.core.features.backbone import BackboneConfig, backbone_store_dir
from artdb.core.features.frontend import config as _frontend
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.processes import this_host

StoreConfig = FrontendConfig | BackboneConfig
# kind -> (config class, its check_compatible); the header keeps the config under the kind's key
_KINDS = {"frontend": (FrontendConfig, _frontend.check_compatible),
          "backbone": (BackboneConfig, _backbone.check_compatible)}

FORMAT_VERSION = 1
_HEADER = "frontend.json"
_COMMIT = "commit.json"
_LOCK = "writer.lock"
_MERGE_THRESHOLD = 65536  # overlay entries before they are merged into the sorted arrays
ENV_LOCK_TIMEOUT = "ARTDB_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 300.0
_LOCK_POLL = 0.2

log = logging.getLogger(__name__)
# Writers open in this process: a forked child closes their lock descriptors (see the module doc).
_WRITERS: weakref.WeakSet[FeatureStore] = weakref.WeakSet()


class FeatureStoreError(ArtdbError):
    """The feature store is locked by another writer, opened read-only for a write, or damaged."""


def _forget_locks_in_child() -> None:
    """After a fork, in the child: close the inherited lock descriptors (the parent keeps its own,
    so the lock stays held by the parent and is released when the parent dies)."""
    for store in list(_WRITERS):
        if store._lock_fd is not None:
            try:
                os.close(store._lock_fd)
            except OSError:
                pass
            store._lock_fd = None
    _WRITERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def lock_timeout_default() -> float:
    """``ARTDB_LOCK_TIMEOUT`` seconds, else :data:`DEFAULT_LOCK_TIMEOUT`."""
    raw = os.environ.get(ENV_LOCK_TIMEOUT)
    try:
        return float(raw) if raw else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        raise ConfigError(f"{ENV_LOCK_TIMEOUT} must be a number of seconds, got {raw!r}") from None


def _lock_holder(directory: Path) -> tuple[int, str] | None:
    """(pid, host) recorded in the lock file by the writer holding it; None when unreadable."""
    try:
        pid, host = (directory / _LOCK).read_text(encoding="utf-8").split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _acquire_writer_lock(directory: Path, timeout: float) -> int:
    """The writer lock's descriptor, waiting up to ``timeout`` seconds for another writer."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + timeout
    waiting = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if any(w.directory.resolve() == directory.resolve() for w in list(_WRITERS)):
                    raise FeatureStoreError(
                        f"{directory}: this process already writes this feature store (close that "
                        "FeatureStore first)") from None
                holder = _lock_holder(directory)  # another process (or, for a moment, a fork of ours)
                who = f"pid {holder[0]}" if holder else "pid unknown"
                if holder and holder[1] != this_host():
                    who += f" on {holder[1]}"
                elif holder and holder[0] == getattr(multiprocessing.parent_process(), "pid", None):
                    # a multiprocessing worker that re-ran its parent's script (spawn imports
                    # __main__ again) would wait on its own parent's lock for nothing
                    who += (", the multiprocessing parent of this worker: does the calling script "
                            "lack `if __name__ == '__main__':`?")
                if time.monotonic() >= deadline:
                    raise FeatureStoreError(
                        f"{directory}: another artdb process ({who}) is writing this feature store"
                        + (f"; gave up after waiting {timeout:.0f} s (set {ENV_LOCK_TIMEOUT} to wait "
                           "longer)" if timeout > 0 else "")) from None
                if not waiting:
                    log.warning("waiting for another artdb process (%s) writing this home (%s); "
                                "giving up after %.0f s", who, directory, timeout)
                    waiting = True
                time.sleep(_LOCK_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {this_host()}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def kind_of(config: StoreConfig) -> str:
    """``"backbone"`` for a :class:`BackboneConfig`, ``"frontend"`` for a :class:`FrontendConfig`."""
    return "backbone" if isinstance(config, BackboneConfig) else "frontend"


def store_bytes(n_tracks: int, config: StoreConfig) -> int:
    """Disk bytes for ``n_tracks`` tracks: records plus 16 index bytes each (no replacements)."""
    return n_tracks * (config.bytes_per_track + 16)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FeatureStore:
    """Fixed-size float16 features (``config.feature_shape``) per int64 track id; see module doc."""

    def __init__(self, directory: Path, config: StoreConfig, mode: str, lock_fd: int | None):
        self.directory = directory
        self.config = config
        self.kind = kind_of(config)
        self.mode = mode
        self.shape = config.feature_shape
        self.record_bytes = config.bytes_per_track
        self._lock_fd = lock_fd
        self._data_f = None
        self._index_f = None
        self._mm: np.memmap | None = None
        self._keys = np.empty(0, np.int64)
        self._slots = np.empty(0, np.int64)
        self._overlay: dict[int, int] = {}
        self._count = 0
        self._load_commit()
        if lock_fd is not None:
            _WRITERS.add(self)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, directory: str | os.PathLike, config: StoreConfig | None = None, mode: str = "a",
        lock_timeout: float | None = None,
    ) -> FeatureStore:
        """Open (``mode="a"``: create if missing, single writer) or read (``mode="r"``) a store.

        ``config`` (a :class:`FrontendConfig` or a :class:`BackboneConfig`) must be of the stored
        kind and match the stored one (:class:`ModelMismatchError` otherwise); ``None`` adopts the
        stored config (``mode="r"`` or an existing store only). A writer waits up to
        ``lock_timeout`` seconds (default :func:`lock_timeout_default`) for another one.
        """
        if mode not in ("a", "r"):
            raise ConfigError(f"FeatureStore mode must be 'a' or 'r', got {mode!r}")
        directory = Path(directory)
        header = directory / _HEADER
        if mode == "r" and not header.exists():
            raise FeatureStoreError(f"{directory}: no feature store here ({_HEADER} missing)")
        lock_fd = None
        if mode == "a":
            directory.mkdir(parents=True, exist_ok=True)
            lock_fd = _acquire_writer_lock(
                directory, lock_timeout_default() if lock_timeout is None else lock_timeout)
            for stale in directory.glob("*.tmp"):  # an atomic write of a killed writer
                stale.unlink(missing_ok=True)
        try:
            if header.exists():
                stored = json.loads(header.read_text(encoding="utf-8"))
                if stored.get("format") != FORMAT_VERSION:
                    raise FeatureStoreError(
                        f"{directory}: feature store format {stored.get('format')} is not "
                        f"supported (expected {FORMAT_VERSION})"
                    )
                kind = stored.get("kind", "frontend")
                if kind not in _KINDS:
                    raise FeatureStoreError(f"{directory}: unknown kind of features {kind!r}")
                config_class, check_compatible = _KINDS[kind]
                stored_config = config_class.from_dict(stored[kind])
                if config is None:
                    config = stored_config
                if kind_of(config) != kind:
                    raise ModelMismatchError(
                        f"feature store {directory} holds {kind} features, not {kind_of(config)} "
                        "features: open it with its own kind of config"
                    )
                check_compatible(
                    stored_config,
                    config,
                    what=f"feature store {directory}",
                    expected_fingerprint=stored["fingerprint"],
                )
            else:
                if config is None:
                    raise ConfigError(
                        f"{directory}: a new feature store needs a FrontendConfig or a BackboneConfig"
                    )
                _write_json_atomic(
                    header,
                    {
                        "format": FORMAT_VERSION,
                        "kind": kind_of(config),
                        kind_of(config): config.to_dict(),
                        "fingerprint": config.fingerprint(),
                        "shape": list(config.feature_shape),
                        "dtype": "float16",
                        "bytes_per_track": config.bytes_per_track,
                    },
                )
                _write_json_atomic(directory / _COMMIT, {"generation": 0, "records": 0, "entries": 0})
            return cls(directory, config, mode, lock_fd)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    def _paths(self, generation: int) -> tuple[Path, Path]:
        return (
            self.directory / f"data.{generation}.f16",
            self.directory / f"index.{generation}.i64",
        )

    def _load_commit(self) -> None:
        for attempt in range(3):
            try:
                self._load_commit_once()
                return
            except FileNotFoundError:
                # A reader raced a compaction that replaced the generation: read the commit again.
                if self.mode == "a" or attempt == 2:
                    raise

    def _load_commit_once(self) -> None:
        commit = json.loads((self.directory / _COMMIT).read_text(encoding="utf-8"))
        self._generation = int(commit["generation"])
        self._records = int(commit["records"])
        self._entries = int(commit["entries"])
        data_path, index_path = self._paths(self._generation)
        if self.mode == "a":
            # Writer: drop any uncommitted tail left by a killed writer, keep the files open.
            sizes = ((data_path, self._records * self.record_bytes), (index_path, self._entries * 16))
            for path, size in sizes:
                with open(path, "ab") as f:
                    if f.tell() < size:
                        raise FeatureStoreError(
                            f"{path}: shorter than its committed size ({f.tell()} < {size} bytes)"
                        )
                    if f.tell() > size:
                        f.truncate(size)
                        f.flush()
                        os.fsync(f.fileno())
            self._remove_other_generations()
            self._data_f = open(data_path, "r+b")
            self._index_f = open(index_path, "r+b")
        if self._entries:
            entries = np.fromfile(index_path, dtype=np.int64, count=2 * self._entries)
            if entries.size != 2 * self._entries:
                raise FeatureStoreError(f"{index_path}: shorter than its committed size")
        else:
            entries = np.empty(0, np.int64)
        self._rebuild(entries.reshape(-1, 2))
        self._map()

    def _remove_other_generations(self) -> None:
        """Files of a compaction that was interrupted (before or after its commit)."""
        current = set(self._paths(self._generation))
        for pattern in ("data.*.f16", "index.*.i64"):
            for path in self.directory.glob(pattern):
                if path not in current:
                    path.unlink(missing_ok=True)

    def _rebuild(self, entries: np.ndarray) -> None:
        """id → record from the entry log: the last entry of an id wins, −1 deletes."""
        self._overlay = {}
        if len(entries) == 0:
            self._keys = np.empty(0, np.int64)
            self._slots = np.empty(0, np.int64)
        else:
            rev = entries[::-1]
            keys, first = np.unique(rev[:, 0], return_index=True)
            slots = rev[first, 1]
            live = slots >= 0
            self._keys, self._slots = keys[live], slots[live]
        self._count = len(self._keys)

    def _map(self) -> None:
        data_path, _ = self._paths(self._generation)
        if self._records == 0:
            self._mm = None
        else:
            self._mm = np.memmap(
                data_path, dtype=np.float16, mode="r", shape=(self._records, *self.shape)
            )

    def refresh(self) -> None:
        """Readers: pick up what the writer committed since this store was opened."""
        if self.mode == "a":
            return
        self._load_commit()

    def close(self) -> None:
        self._mm = None
        for f in (self._data_f, self._index_f):
            if f is not None:
                f.close()
        self._data_f = self._index_f = None
        _WRITERS.discard(self)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lookups ---------------------------------------------------------------------------------
    def _slot(self, track_id: int) -> int:
        slot = self._overlay.get(track_id)
        if slot is not None:
            return slot
        i = int(np.searchsorted(self._keys, track_id))
        if i < len(self._keys) and self._keys[i] == track_id:
            return int(self._slots[i])
        return -1

    def _slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Record of each id, −1 where absent (vectorised over the sorted arrays)."""
        slots = np.full(len(ids), -1, dtype=np.int64)
        if len(self._keys):
            pos = np.minimum(np.searchsorted(self._keys, ids), len(self._keys) - 1)
            found = self._keys[pos] == ids
            slots[found] = self._slots[pos[found]]
        if self._overlay:
            for n, i in enumerate(ids.tolist()):
                s = self._overlay.get(i)
                if s is not None:
                    slots[n] = s
        return slots

    def __contains__(self, track_id: object) -> bool:
        return isinstance(track_id, (int, np.integer)) and self._slot(int(track_id)) >= 0

    def __len__(self) -> int:
        return self._count

    def ids(self) -> np.ndarray:
        """Every stored track id, sorted (int64)."""
        if not self._overlay:
            return self._keys.copy()
        self._merge()
        return self._keys.copy()

    def get(self, track_id: int) -> np.ndarray:
        """float16 features (``self.shape``) of one track (a copy); KeyError if absent."""
        slot = self._slot(int(track_id))
        if slot < 0:
            raise KeyError(f"track {track_id} has no features in {self.directory}")
        return np.array(self._mm[slot])

    def get_many(self, ids: Iterable[int]) -> np.ndarray:
        """float16 ``[n, *self.shape]`` in the order of ``ids``; KeyError names the absent."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty((0, *self.shape), np.float16)
        slots = self._slots_of(ids)
        missing = ids[slots < 0]
        if missing.size:
            shown = ", ".join(str(i) for i in missing[:10].tolist())
            more = f" and {missing.size - 10} more" if missing.size > 10 else ""
            raise KeyError(f"no features in {self.directory} for track(s) {shown}{more}")
        order = np.argsort(slots, kind="stable")  # read the file front to back
        out = np.empty((len(ids), *self.shape), np.float16)
        out[order] = self._mm[slots[order]]
        return out

    # -- writing ---------------------------------------------------------------------------------
    def _require_writer(self) -> None:
        if self.mode != "a" or self._data_f is None:
            raise FeatureStoreError(f"{self.directory}: store is open read-only (mode='r')")

    def put_many(self, ids: Iterable[int], feats: np.ndarray | Iterable[np.ndarray]) -> None:
        """Store features for ``ids`` (replacing any earlier ones) and commit durably.

        ``feats`` is ``[n, *self.shape]`` (cast to float16). When this returns, the records
        survive a crash; if the process dies inside it, none of them is visible and the store stays
        readable.
        """
        self._require_writer()
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        feats = np.asarray(feats if isinstance(feats, np.ndarray) else list(feats))
        if feats.shape != (len(ids), *self.shape):
            raise ConfigError(
                f"features of shape {feats.shape} do not fit this store: expected "
                f"({len(ids)}, {', '.join(map(str, self.shape))}) for {len(ids)} ids"
            )
        if len(ids) == 0:
            return
        blob = np.ascontiguousarray(feats, dtype=np.float16)
        slots = np.arange(self._records, self._records + len(ids), dtype=np.int64)
        self._append(blob, np.stack([ids, slots], axis=1), new_records=len(ids))
        for i, s in zip(ids.tolist(), slots.tolist()):
            self._set(i, s)
        self._map()

    def put(self, track_id: int, feats: np.ndarray) -> None:
        self.put_many([track_id], np.asarray(feats)[None])

    def delete(self, ids: Iterable[int]) -> int:
        """Remove ``ids`` (absent ones are ignored); returns how many were removed.

        The space is reclaimed by :meth:`compact`.
        """
        self._require_writer()
        present = [int(i) for i in dict.fromkeys(int(i) for i in ids) if self._slot(int(i)) >= 0]
        if not present:
            return 0
        entries = np.stack([np.asarray(present, np.int64), np.full(len(present), -1, np.int64)], axis=1)
        self._append(None, entries, new_records=0)
        for i in present:
            self._set(i, -1)
        return len(present)

    def _set(self, track_id: int, slot: int) -> None:
        before = self._slot(track_id)
        self._overlay[track_id] = slot
        self._count += (slot >= 0) - (before >= 0)
        if len(self._overlay) >= _MERGE_THRESHOLD:
            self._merge()

    def _merge(self) -> None:
        if not self._overlay:
            return
        ov_keys = np.fromiter(self._overlay.keys(), np.int64, len(self._overlay))
        ov_slots = np.fromiter(self._overlay.values(), np.int64, len(self._overlay))
        keep = ~np.isin(self._keys, ov_keys)
        keys = np.concatenate([self._keys[keep], ov_keys[ov_slots >= 0]])
        slots = np.concatenate([self._slots[keep], ov_slots[ov_slots >= 0]])
        order = np.argsort(keys, kind="stable")
        self._keys, self._slots = keys[order], slots[order]
        self._overlay = {}

    def _append(self, blob: np.ndarray | None, entries: np.ndarray, new_records: int) -> None:
        """Write data, then index, fsync both, then publish the new counts in commit.json."""
        if blob is not None:
            self._data_f.seek(self._records * self.record_bytes)
            self._data_f.write(memoryview(blob).cast("B"))
            self._data_f.flush()
            os.fsync(self._data_f.fileno())
        self._index_f.seek(self._entries * 16)
        self._index_f.write(np.ascontiguousarray(entries, dtype=np.int64).tobytes())
        self._index_f.flush()
        os.fsync(self._index_f.fileno())
        records, n_entries = self._records + new_records, self._entries + len(entries)
        kill_point("before feature commit")
        self._write_commit(self._generation, records, n_entries)
        self._records, self._entries = records, n_entries

    def _write_commit(self, generation: int, records: int, entries: int) -> None:
        _write_json_atomic(
            self.directory / _COMMIT,
            {"generation": generation, "records": records, "entries": entries},
        )

    def compact(self) -> int:
        """Rewrite live records into a new generation, dropping replaced and deleted ones.

        Returns the bytes reclaimed. Readers that still have the old generation open keep
        reading it (the files are unlinked, not overwritten); :meth:`refresh` moves them over.
        """
        self._require_writer()
        self._merge()
        old_data, old_index = self._paths(self._generation)
        gen = self._generation + 1
        new_data, new_index = self._paths(gen)
        n = len(self._keys)
        with open(new_data, "wb") as f:
            for start in range(0, n, 1024):
                slots = self._slots[start : start + 1024]
                f.write(memoryview(np.ascontiguousarray(self._mm[slots])).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        entries = np.stack([self._keys, np.arange(n, dtype=np.int64)], axis=1)
        with open(new_index, "wb") as f:
            f.write(entries.tobytes())
            f.flush()
            os.fsync(f.fileno())
        before = (self._records * self.record_bytes) + self._entries * 16
        self._write_commit(gen, n, n)
        self._data_f.close()
        self._index_f.close()
        self._mm = None
        for path in (old_data, old_index):
            path.unlink(missing_ok=True)
        self._load_commit()
        return before - (n * self.record_bytes + n * 16)


def feature_store_dir(paths, config: StoreConfig) -> Path:
    """One store per config: a model with other parameters gets its own. Log-mel stores are
    ``<paths.features>/<fingerprint>``, backbone stores ``<paths.features>/<name>-<fingerprint>``
    (:func:`~artdb.core.features.backbone.backbone_store_dir`).
    ``paths`` is a :class:`artdb.core.config.Paths`."""
    if isinstance(config, BackboneConfig):
        return backbone_store_dir(paths, config)
    return paths.features / config.fingerprint()[:16]


class StoreFeatureArray:
    """Row-indexable view of feature-store records for a fixed list of track ids.

    Supports what training and ``embed`` use: ``a[rows]`` -> ``[n, k, mels, frames]`` and
    ``a[rows, excerpts]`` -> ``[n, mels, frames]`` (one excerpt per row), read on demand.
    """

    def __init__(self, store, track_ids: np.ndarray):
        self.store = store
        self.track_ids = np.asarray(track_ids, dtype=np.int64)
        self.shape = (len(self.track_ids), *store.shape)
        self.dtype = np.float16

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, excerpts = key
            feats = self.store.get_many(self.track_ids[np.atleast_1d(rows)])
            return feats[np.arange(len(feats)), np.atleast_1d(excerpts)]
        return self.store.get_many(self.track_ids[np.atleast_1d(key)])


def store_exists(paths, config: StoreConfig) -> bool:
    """Whether ``config``'s store has been created (``mode="r"`` opens only such a store)."""
    return (feature_store_dir(paths, config) / _HEADER).exists()


def open_feature_store(paths, config: StoreConfig, mode: str = "a",
                       lock_timeout: float | None = None) -> FeatureStore:
    return FeatureStore.open(feature_store_dir(paths, config), config, mode=mode,
                             lock_timeout=lock_timeout)


def open_backbone_store(paths, config: BackboneConfig, mode: str = "a") -> FeatureStore:
    """The store of ``config``'s backbone features (created empty with ``mode="a"``)."""
    if not isinstance(config, BackboneConfig):
        raise ConfigError(f"open_backbone_store needs a BackboneConfig, got {type(config).__name__}")
    return open_feature_store(paths, config, mode=mode)
