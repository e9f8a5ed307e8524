"""``artdb index``: scan → analyse (pool) → plan → features (optional stage) → write.

Stage boundary: everything up to *plan* works on paths; ``FeatureStage`` (the audio front-end
and feature store) plugs in between *plan* and *write*, and the vector index is brought in line
with the catalog afterwards (``artdb.core.vectors.index``), so the index never runs ahead of the DB.

Durability: each batch is one DB transaction, committed after its features are flushed to the
feature store. Ctrl-C or a crash loses at most the batch in flight; a rerun skips what was
committed (same path, size and mtime) and resumes.

Duplicates (a file whose bytes are another path's track) are remembered in ``duplicate_files``
(path, size, mtime, content hash, track), written in their batch's transaction with an upsert on
the path (a second writer or a rerun after a crash never doubles a row). A rerun settles a
remembered duplicate without reading it, like an unchanged file, while its size and mtime are the
same, its track still holds that content hash and the track's own file is unchanged; otherwise it
is analysed again and its row updated or forgotten. A row goes with its track (ON DELETE CASCADE),
and ``--prune`` forgets the rows of vanished files under the root.

Bad input: every value is cleaned before it reaches the catalog (``ingest.tags``), and should the
catalog still refuse a row, the batch is written again one file per savepoint, so only that file
is lost (recorded as an error with the database's reason) and never the run or its neighbours.

Concurrent writers: one track per recording (``tracks.content_hash`` is unique); new tracks go in
with INSERT ... ON CONFLICT DO NOTHING, so a recording another writer inserted meanwhile becomes a
``duplicate`` ("same recording as track N, ingested by another writer"), and any other conflict
with another writer's commit (an update racing it) makes the batch be planned again from the
catalog's new state before it is written file by file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, null, or_, select
from sqlalchemy.exc import DataError, IntegrityError

from artdb.core.errors import CatalogError, ConfigError
from artdb.core.executor import make_executor, ordered_window
from artdb.core.faults import kill_point
from artdb.core.ingest.analyze import FileAnalysis, FileFailure, analyze_job, is_unchanged
from artdb.core.ingest.catalog_writer import CatalogWriter
from artdb.core.ingest.scan import FoundFile, load_manifest, scan_audio_files
from artdb.core.ingest.tags import clean_text
from artdb.core.processes import this_process
from artdb.core.progress import Progress, report
from artdb.core.recovery import mark_interrupted_runs
from artdb.db.models import Album, DuplicateFile, Embedding, IngestFile, IngestRun, Track
from artdb.db.session import Catalog, upsert

log = logging.getLogger(__name__)

# Per-file outcomes recorded in ``ingest_files``.
ADDED, UPDATED, MOVED, UNCHANGED, DUPLICATE, ERROR, PRUNED = (
    "added", "updated", "moved", "unchanged", "duplicate", "error", "pruned")
# Plans of one batch, each from a fresh look at the catalog, before it is written file by file.
_CONFLICT_ATTEMPTS = 3
_GONE_MEANWHILE = "its track was deleted by another writer during this run; a rerun ingests it again"
_COPIED_GONE_MEANWHILE = ("the track it duplicates was changed or deleted by another writer during this "
                          "run; a rerun analyses it again")


class FeatureStage(Protocol):
    """What ingest needs from the audio front-end + feature store."""

    def missing(self, track_ids: Sequence[int]) -> set[int]:
        """The ids among ``track_ids`` with no stored features."""

    def extract(self, paths: Sequence[str],
                track_ids: Sequence[int | None] | None = None) -> list[Any]:
        """Features per path (whatever ``save`` takes), or a reason string where the file cannot
        be used. ``track_ids[i]`` is the catalogued track whose unchanged audio ``paths[i]`` is
        (a stage that keeps several kinds of features computes only those it lacks), ``None``
        for new or changed audio; ``track_ids=None``: all are new."""

    def save(self, track_ids: Sequence[int], features: Sequence[Any],
             content_hashes: Sequence[str] | None = None) -> None:
        """Durably store features (flushed before returning), and that they were made from the
        audio with ``content_hashes`` (see :mod:`artdb.core.features.provenance`)."""

    def remove(self, track_ids: Sequence[int]) -> None:
        """Forget the features of deleted tracks."""

    def committed(self) -> None:
        """The batch whose features ``save`` stored last is committed to the catalog (a stage
        that has more to write about those tracks, e.g. their vectors, writes it now)."""


# One file's analysis, as the analyser yields it: (its number in the scan, its ``analyze_job``
# result, the features computed with it where the analyser computes them, else None).
Analysed = tuple[int, FileAnalysis | FileFailure | None, Any]


@dataclass(frozen=True, slots=True)
class RememberedDuplicate:
    """A ``duplicate_files`` row under the ingested root: the file's size and mtime when it was
    found a duplicate of track ``track_id`` (content hash ``content_hash``), and that track's path,
    size and mtime now. ``usable``: the track still holds that content."""

    size: int
    mtime: float
    content_hash: str
    track_id: int
    track_path: str
    track_size: int
    track_mtime: float
    usable: bool

    def as_it_was(self, path: str) -> bool:
        """Settled without reading: the file at ``path``, its track and the track's file are as
        they were (two stats, no read)."""
        return (self.usable and is_unchanged(path, (self.size, self.mtime))
                and is_unchanged(self.track_path, (self.track_size, self.track_mtime)))


# A job: (its number in the scan, ``analyze_job`` arguments, (track id, content hash) of the
# track catalogued at its path or None).
Job = tuple[int, tuple, "tuple[int, str] | None"]


class Analyser(Protocol):
    """Where files are analysed: ``analyse`` yields an :data:`Analysed` for each :data:`Job`, in
    order, running ahead by a bounded window. A Dask analyser also decodes, extracts and embeds
    each file with new audio on its workers (its results' third item; a catalogued track whose
    audio turns out the same is not decoded again), and counts the files each worker analysed
    (``per_worker``) and of those the files it decoded (``decoded_per_worker``)."""

    per_worker: dict[str, int] | None
    decoded_per_worker: dict[str, int] | None

    def analyse(self, jobs: Iterable[Job]) -> Iterator[Analysed]:
        ...


class LocalAnalyser:
    """Analysis on :func:`make_executor`'s executor (a process pool, inline, or Dask's
    ``concurrent.futures`` face), features left to the feature stage."""

    per_worker = None
    decoded_per_worker = None

    def __init__(self, executor, window: int):
        self.executor, self.window = executor, window

    def analyse(self, jobs: Iterable[Job]) -> Iterator[Analysed]:
        jobs = iter(jobs)
        numbers: deque[int] = deque()

        def args() -> Iterator[tuple]:
            for n, job, _ in jobs:
                numbers.append(n)
                yield job

        for result in ordered_window(self.executor, analyze_job, args(), self.window):
            yield numbers.popleft(), result, None


@dataclass
class IngestOptions:
    manifest: str | Path | None = None
    workers: int = 2
    batch_size: int = 128
    prune: bool = False  # delete tracks whose files under the root are gone
    executor_backend: str = "process"
    scheduler_address: str | None = None
    # files analysed ahead of the batch being written (default: two batches)
    window: int | None = None
    # where a Dask worker runs log-mels, backbone and model: None picks per worker (cuda where that
    # worker has it); the client's own GPU says nothing about the workers'
    worker_device: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1 file, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 (all in this process) or more, got {self.workers}")


@dataclass
class IngestSummary:
    run_id: int
    root: str
    counts: dict[str, int]
    errors: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "done"
    # (path, what cleaning changed in its tags) for files that were catalogued
    warnings: list[tuple[str, str]] = field(default_factory=list)
    # new releases under a split name placed by audio (core/ingest/service.place_releases_of_run)
    placements: list[Any] = field(default_factory=list)
    # files each Dask worker analysed (by worker address), and of those the files it decoded
    # (features and vector computed); None on a local pool
    per_worker: dict[str, int] | None = None
    decoded_per_worker: dict[str, int] | None = None

    @property
    def files(self) -> int:
        return sum(v for k, v in self.counts.items() if k != PRUNED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "root": self.root, "status": self.status, "files": self.files,
            "counts": self.counts, "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files / self.seconds, 1) if self.seconds else None,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "duplicates": [{"path": p, "duplicate_of": r} for p, r in self.duplicates],
            "warnings": [{"path": p, "warning": w} for p, w in self.warnings],
            "placements": [p.to_dict() for p in self.placements],
            **({"per_worker": dict(sorted(self.per_worker.items())),
                "decoded_per_worker": dict(sorted((self.decoded_per_worker or {}).items()))}
               if self.per_worker is not None else {}),
        }


def ingest(catalog: Catalog, root: str | Path, options: IngestOptions | None = None,
           features: FeatureStage | None = None, progress: Progress | None = None,
           analyser: Analyser | None = None) -> IngestSummary:
    """Ingest every audio file under ``root`` into ``catalog``; see the module doc. ``analyser``
    (default: ``options``' executor) analyses the files; the one given by a Dask run also returns
    their features, which this process writes like its own."""
    options = options or IngestOptions()
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"{root}: not a directory")
    root_abs = str(root.resolve())
    started = time.perf_counter()
    manifest = load_manifest(options.manifest, root_abs) if options.manifest else {}
    files = list(scan_audio_files(root_abs))
    # content hashes only for an analyser that reads them (a Dask one): 10M of them cost ~1 GB here
    known = _known_files(catalog, root_abs, with_hashes=analyser is not None)
    remembered = _remembered_duplicates(catalog, root_abs)

    mark_interrupted_runs(catalog)  # runs of killed processes say so before this one starts
    owner = this_process()
    with catalog.session() as s:
        run = IngestRun(root=root_abs, manifest=str(options.manifest) if options.manifest else None,
                        owner_host=owner.host, owner_pid=owner.pid, owner_started=owner.started)
        s.add(run)
        s.flush()
        run_id = run.id

    counts: Counter[str] = Counter()
    errors: list[tuple[str, str]] = []
    duplicates: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    writer = CatalogWriter()
    total = len(files)
    done = 0
    report(progress, "ingest", 0, total)
    status = "done"
    window = options.window or 2 * options.batch_size

    # remembered duplicates that jobs() settled, by path: the batch that holds them takes them
    # (jobs are drawn in scan order, so a batch's files are all decided before it is written)
    settled: dict[str, RememberedDuplicate] = {}

    def jobs() -> Iterator[Job]:
        # Unchanged files (same size and mtime) and remembered duplicates as they were are settled
        # here; only the rest are analysed, so no worker starts on a rerun of an unchanged folder.
        for n, f in enumerate(files):
            if f.name_error is not None:
                continue
            catalogued = known.get(f.path)
            if catalogued and is_unchanged(f.path, catalogued[1:3]):
                continue
            copy = remembered.get(f.path)
            if copy is not None and copy.as_it_was(f.path):
                settled[f.path] = copy
                continue
            yield n, (f.path, f.relpath, manifest.get(os.path.normpath(f.relpath)),
                      catalogued[1:3] if catalogued else None), \
                (catalogued[0], catalogued[3]) if catalogued and catalogued[3] else None

    try:
        with contextlib.ExitStack() as stack:
            if analyser is None:
                executor = stack.enter_context(
                    make_executor(options.workers, options.executor_backend, options.scheduler_address))
                analyser = LocalAnalyser(executor, window)
            stream = analyser.analyse(jobs())
            ahead: Analysed | None = None
            for start in range(0, total, options.batch_size):
                batch = files[start:start + options.batch_size]
                results: list = [None] * len(batch)
                computed: dict[str, Any] = {}  # features that came back with the analysis, by path
                while True:
                    ahead = ahead or next(stream, None)
                    if ahead is None or ahead[0] >= start + len(batch):
                        break
                    n, result, products = ahead
                    results[n - start] = result
                    if products is not None:
                        computed[batch[n - start].path] = products
                    ahead = None
                for i, f in enumerate(batch):
                    if f.path in settled:
                        results[i] = settled.pop(f.path)
                outcomes = _write_batch_retrying(catalog, writer, run_id, batch, results, known, features,
                                                 computed, remembered)
                if features is not None:
                    features.committed()
                kill_point("after batch committed")
                for path, outcome, reason, warning in outcomes:
                    counts[outcome] += 1
                    if outcome == ERROR:
                        errors.append((path, reason))
                    elif outcome == DUPLICATE:
                        duplicates.append((path, reason))
                    if warning:
                        warnings.append((path, warning))
                done += len(batch)
                report(progress, "ingest", done, total)
        if options.prune:
            present = {f.path for f in files}
            counts[PRUNED] = _prune(catalog, root_abs, present, features)
            _forget_vanished_duplicates(catalog, root_abs, present)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        with catalog.session() as s:
            run = s.get(IngestRun, run_id)
            run.status = status
            run.finished_at = dt.datetime.now(dt.UTC)
            run.counts = dict(counts)
    per_worker = dict(analyser.per_worker) if analyser.per_worker is not None else None
    decoded = dict(analyser.decoded_per_worker) if analyser.decoded_per_worker is not None else None
    return IngestSummary(run_id, root_abs, dict(counts), errors, duplicates,
                         time.perf_counter() - started, status, warnings, per_worker=per_worker,
                         decoded_per_worker=decoded)


def _known_files(catalog: Catalog, root_abs: str, with_hashes: bool = False
                 ) -> dict[str, tuple[int, int, float, str | None]]:
    """path -> (track id, size, mtime, content hash or None) for tracks already catalogued under
    ``root_abs`` (the hash with ``with_hashes`` only)."""
    prefix = root_abs.rstrip(os.sep) + os.sep
    digest = Track.content_hash if with_hashes else null()
    with catalog.session() as s:
        rows = s.execute(
            select(Track.id, Track.audio_path, Track.file_size, Track.file_mtime, digest)
            .where(Track.audio_path.startswith(prefix, autoescape=True))
        ).all()
    return {p: (i, size, mtime, h) for i, p, size, mtime, h in rows}


def _remembered_duplicates(catalog: Catalog, root_abs: str) -> dict[str, RememberedDuplicate]:
    """path -> :class:`RememberedDuplicate` for the ``duplicate_files`` rows under ``root_abs``."""
    prefix = root_abs.rstrip(os.sep) + os.sep
    with catalog.session() as s:
        rows = s.execute(
            select(DuplicateFile.path, DuplicateFile.file_size, DuplicateFile.file_mtime,
                   DuplicateFile.content_hash, Track.id, Track.audio_path, Track.file_size,
                   Track.file_mtime, Track.content_hash)
            .join(Track, Track.id == DuplicateFile.track_id)
            .where(DuplicateFile.path.startswith(prefix, autoescape=True))
        ).all()
    return {path: RememberedDuplicate(size, mtime, digest, tid, tpath, tsize, tmtime, digest == tdigest)
            for path, size, mtime, digest, tid, tpath, tsize, tmtime, tdigest in rows}


def _db_reason(exc: Exception) -> str:
    """The database's own words for a refused row, on one line."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Conflict(Exception):
    """Another writer's commit changed what this batch planned on: plan it again."""


def _write_batch_retrying(catalog: Catalog, writer: CatalogWriter, run_id: int, batch: list[FoundFile],
                          results: list, known: dict, features: FeatureStage | None,
                          computed: dict[str, Any] | None = None,
                          remembered: dict[str, RememberedDuplicate] | None = None):
    """:func:`_write_batch`, planned again when the catalog refused a row because another writer
    committed a conflicting one meanwhile (a unique key: the new plan sees that row), and written
    one file per savepoint when a row is refused for itself (a value, or a conflict that persists).
    ``computed``: features by path that came with the analysis (not extracted again);
    ``remembered``: the ``duplicate_files`` rows under the root when the run started."""
    extracted: dict[str, Any] = dict(computed or {})  # features by path, kept for the next attempt
    remembered = remembered if remembered is not None else {}
    for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
        try:
            return _write_batch(catalog, writer, run_id, batch, results, known, features, extracted,
                                remembered=remembered)
        except (DataError, IntegrityError, _Conflict) as exc:
            writer.reset()  # its caches may name rows that were rolled back
            refused = exc
            if isinstance(exc, DataError) or attempt == _CONFLICT_ATTEMPTS:
                break
            log.info("a row of this batch conflicted with another writer's (%s): planning it again",
                     _db_reason(exc))
    log.warning("the catalog refused a row of this batch (%s): writing it one file at a time",
                _db_reason(refused))
    return _write_batch(catalog, writer, run_id, batch, results, known, features, extracted, isolate=True,
                        remembered=remembered)


def _write_batch(catalog: Catalog, writer: CatalogWriter, run_id: int, batch: list[FoundFile],
                 results: list, known: dict, features: FeatureStage | None,
                 extracted: dict[str, Any] | None = None, isolate: bool = False,
                 remembered: dict[str, RememberedDuplicate] | None = None):
    """Decide each file's outcome, extract features where needed, and write one transaction.

    ``extracted`` (features by path) is filled here and reused by a second attempt, which passes
    ``isolate=True``: each file is then written in its own savepoint, and a row the catalog refuses
    (``DataError``/``IntegrityError``) becomes that file's error instead of the batch's failure.
    A result may be a :class:`RememberedDuplicate` (settled unread): a ``duplicate`` while its track
    still holds that content. ``remembered``: the ``duplicate_files`` rows read when the run started.
    Returns ``(path, outcome, reason, warning)`` per file.
    """
    relinked: dict[str, tuple[int, int, float, str]] = {}  # moved files, for ``known`` once committed
    feats: dict[str, Any] = extracted if extracted is not None else {}
    analysed: list[tuple[FoundFile, Any]] = [
        (f, FileFailure(f.path, f.relpath, f.name_error) if f.name_error is not None else r)
        for f, r in zip(batch, results)
    ]

    with catalog.session() as s:
        # --- plan: what each analysed file means for the catalog --------------------------
        hashes = [r.content_hash for _, r in analysed if isinstance(r, FileAnalysis)]
        by_hash: dict[str, Track] = {}
        if hashes:
            for t in s.scalars(select(Track).where(Track.content_hash.in_(set(hashes)))):
                by_hash.setdefault(t.content_hash, t)
        copied = {r.track_id for _, r in analysed if isinstance(r, RememberedDuplicate)}
        holders = {tid: (path, digest) for tid, path, digest in s.execute(
            select(Track.id, Track.audio_path, Track.content_hash).where(Track.id.in_(copied)))} \
            if copied else {}
        plan: list[tuple[FoundFile, str, Any, Track | None]] = []  # (file, action, result, track)
        new_in_batch: dict[str, str] = {}
        for f, r in analysed:
            track = s.get(Track, known[f.path][0]) if f.path in known else None
            if isinstance(r, FileFailure):
                plan.append((f, ERROR, r, None))
            elif isinstance(r, RememberedDuplicate):
                holder = holders.get(r.track_id)
                if holder is not None and holder[1] == r.content_hash:
                    plan.append((f, DUPLICATE, holder[0], None))
                else:
                    plan.append((f, ERROR, FileFailure(f.path, f.relpath, _COPIED_GONE_MEANWHILE), None))
            elif f.path in known and track is None:
                plan.append((f, ERROR, FileFailure(f.path, f.relpath, _GONE_MEANWHILE), None))
            elif r is None:
                plan.append((f, UNCHANGED, None, track))
            elif track is not None:
                other = by_hash.get(r.content_hash)
                if track.content_hash == r.content_hash:
                    plan.append((f, UNCHANGED, r, track))
                elif other is not None and other.id != track.id:
                    # Its new audio is a recording the catalog holds already (one track each).
                    plan.append((f, DUPLICATE, other.audio_path, None))
                else:
                    plan.append((f, UPDATED, r, track))
            elif r.content_hash in by_hash:
                other = by_hash[r.content_hash]
                if other.audio_path != r.path and not os.path.exists(other.audio_path):
                    plan.append((f, MOVED, r, other))
                else:
                    plan.append((f, DUPLICATE, other.audio_path, None))
            elif r.content_hash in new_in_batch:
                plan.append((f, DUPLICATE, new_in_batch[r.content_hash], None))
            else:
                new_in_batch[r.content_hash] = r.path
                plan.append((f, ADDED, r, None))

        # --- features: new and changed audio, plus catalogued tracks still lacking them ----
        if features is not None:
            need_paths = [r.path for _, a, r, _ in plan if a in (ADDED, UPDATED)]
            need_ids: list[int | None] = [None] * len(need_paths)
            have = [t.id for _, a, _, t in plan if a in (UNCHANGED, MOVED) and t is not None]
            lacking = features.missing(have) if have else set()
            for _, a, r, t in plan:
                if a in (UNCHANGED, MOVED) and t is not None and t.id in lacking:
                    # a moved track's audio is at its new path (its row still has the old one)
                    need_paths.append(r.path if isinstance(r, FileAnalysis) else t.audio_path)
                    need_ids.append(t.id)
            todo = [(p, i) for p, i in zip(need_paths, need_ids) if p not in feats]
            if todo:
                paths, ids = zip(*todo)
                for path, out in zip(paths, features.extract(list(paths), list(ids))):
                    feats[path] = out

        # --- write ------------------------------------------------------------------------
        to_store: list[tuple[int, Any, str]] = []  # (track id, features, content hash)
        written: list[list] = []  # [path, outcome, reason, warning, track id], in the batch's order
        added: list[tuple[list, FileAnalysis, Any]] = []  # inserted together below
        for f, action, r, track in plan:
            entry = [f.path, action, None, None, track.id if track is not None else None]
            written.append(entry)
            if action == ERROR:
                entry[2] = r.reason
                continue
            if action == DUPLICATE:
                entry[2] = f"same audio content as {r}"
                continue
            out = feats.get(r.path if isinstance(r, FileAnalysis) else track.audio_path)
            if isinstance(out, str):
                entry[1], entry[2], entry[4] = ERROR, out, None
                continue
            if action in (ADDED, UPDATED, MOVED):
                entry[3] = r.tags.warning_text()
            if action == ADDED and not isolate:
                added.append((entry, r, out))
                continue
            if isolate:
                try:
                    with s.begin_nested():
                        entry[1], entry[2], entry[4] = _write_file(s, writer, action, r, track, relinked)
                        s.flush()
                except (DataError, IntegrityError, _Conflict) as exc:
                    writer.reset()
                    entry[1:] = [ERROR, f"the catalog refused its row: {_db_reason(exc)}", None, None]
                    continue
            else:
                entry[1], entry[2], entry[4] = _write_file(s, writer, action, r, track, relinked)
            if entry[1] == DUPLICATE:  # another writer's: not catalogued from this file
                entry[3] = None
            elif out is not None:
                to_store.append((entry[4], out, r.content_hash if r is not None else track.content_hash))
        inserted = writer.insert_tracks(s, [r for _, r, _ in added])
        for entry, r, out in added:
            if r.content_hash in inserted:
                entry[4] = inserted[r.content_hash]
                if out is not None:
                    to_store.append((entry[4], out, r.content_hash))
            else:  # another writer committed this recording (or path) meanwhile
                entry[1], (entry[4], entry[2]), entry[3] = DUPLICATE, _holder(s, r), None
        outcomes = []
        for path, outcome, reason, warning, track_id in written:
            # reasons quote libraries and databases: make them storable like any tag
            reason = clean_text(reason)[0] if reason is not None else None
            outcomes.append((path, outcome, reason, warning))
            s.add(IngestFile(run_id=run_id, path=path, outcome=outcome, reason=reason, warning=warning,
                             track_id=track_id))
        s.flush()  # a conflict with another writer surfaces here, before any feature is written
        _remember_duplicates(s, analysed, outcomes, remembered or {}, isolate)
        if to_store and features is not None:
            # Features are durable before the rows that point at them commit.
            features.save([t for t, _, _ in to_store], [x for _, x, _ in to_store],
                          [h for _, _, h in to_store])
            kill_point("after features committed")
    known.update(relinked)
    return outcomes


def _write_file(s, writer: CatalogWriter, action: str, r: FileAnalysis | None, track: Track | None,
                relinked: dict[str, tuple[int, int, float]]) -> tuple[str, str | None, int | None]:
    """Write one planned file's rows; returns its ``(outcome, reason, track id)``."""
    if action == ADDED:
        inserted = writer.insert_tracks(s, [r])
        if r.content_hash not in inserted:  # another writer committed this recording meanwhile
            track_id, reason = _holder(s, r)
            return DUPLICATE, reason, track_id
        return ADDED, None, inserted[r.content_hash]
    if action == UPDATED:
        writer.update_track(s, track, r)
        # Its vectors were made from the old audio.
        s.execute(delete(Embedding).where(Embedding.track_id == track.id))
    elif action == MOVED:
        writer.update_track(s, track, r)
        relinked[r.path] = (track.id, r.size, r.mtime, r.content_hash)
    elif action == UNCHANGED and r is not None:
        track.file_mtime = r.mtime  # touched but identical: remember the new mtime
    return action, None, track.id


def _remember_duplicates(s, analysed: list[tuple[FoundFile, Any]], outcomes: list[tuple],
                         remembered: dict[str, RememberedDuplicate], isolate: bool) -> None:
    """Write the ``duplicate_files`` rows of one batch in its transaction: an analysed file found a
    duplicate is remembered with the track now holding its content (an upsert on the path),
    a remembered file that was analysed and is no longer a duplicate is forgotten. A settled one
    keeps its row as it is. With ``isolate`` (the batch written one file at a time) a refused row
    costs only the memory (the file is analysed again next time), not the batch."""
    seen = {f.path: r for f, r in analysed}
    dups = {path: seen[path] for path, outcome, _, _ in outcomes
            if outcome == DUPLICATE and isinstance(seen[path], FileAnalysis)}
    holders: dict[str, tuple[int, str]] = {}
    if dups:
        digests = {fa.content_hash for fa in dups.values()}
        holders = {digest: (tid, path) for tid, path, digest in s.execute(
            select(Track.id, Track.audio_path, Track.content_hash).where(Track.content_hash.in_(digests)))}
    rows = []
    for path, fa in dups.items():
        holder = holders.get(fa.content_hash)
        if holder is not None and holder[1] != path:
            rows.append(dict(path=path, file_size=fa.size, file_mtime=fa.mtime,
                             content_hash=fa.content_hash, track_id=holder[0]))
    kept = {row["path"] for row in rows}
    forget = [path for path, outcome, _, _ in outcomes
              if path in remembered and path not in kept
              and not (outcome == DUPLICATE and isinstance(seen[path], RememberedDuplicate))]
    if not rows and not forget:
        return
    try:
        with s.begin_nested() if isolate else contextlib.nullcontext():
            if forget:
                s.execute(delete(DuplicateFile).where(DuplicateFile.path.in_(forget)))
            if rows:
                s.execute(upsert(s, DuplicateFile, rows, key=["path"]))
    except (DataError, IntegrityError) as exc:
        if not isolate:
            raise
        log.warning("duplicate files of this batch not remembered (%s): a rerun analyses them",
                    _db_reason(exc))


def _holder(session, fa: FileAnalysis) -> tuple[int, str]:
    """``(track id, reason)`` for the track another writer committed with ``fa``'s recording or
    path while this batch was being planned."""
    holder = session.execute(
        select(Track.id, Track.audio_path, Track.content_hash)
        .where(or_(Track.content_hash == fa.content_hash, Track.audio_path == fa.path))
        .order_by((Track.content_hash == fa.content_hash).desc())).first()
    if holder is None:  # its insert was rolled back after all: plan the batch again
        raise _Conflict("the track that conflicted with this one was rolled back")
    if holder.content_hash == fa.content_hash:
        return holder.id, (f"same recording as track {holder.id}, ingested by another writer "
                           f"({holder.audio_path})")
    return holder.id, (f"track {holder.id} holds this path with other audio, ingested by another writer "
                       "meanwhile: a rerun compares them")


def _forget_vanished_duplicates(catalog: Catalog, root_abs: str, present: set[str]) -> int:
    """Forget the remembered duplicates under the root whose files are gone (as ``_prune`` does
    for tracks; they are not tracks, so not counted as pruned)."""
    gone = [path for path in _remembered_duplicates(catalog, root_abs)
            if path not in present and not os.path.exists(path)]
    if gone:
        with catalog.session() as s:
            s.execute(delete(DuplicateFile).where(DuplicateFile.path.in_(gone)))
        log.info("forgot %d duplicate file(s) that are gone", len(gone))
    return len(gone)


def _prune(catalog: Catalog, root_abs: str, present: set[str], features: FeatureStage | None) -> int:
    """Delete tracks under the root whose files are gone (after moves were re-linked)."""
    gone = [tid for path, (tid, *_) in _known_files(catalog, root_abs).items()
            if path not in present and not os.path.exists(path)]
    if not gone:
        return 0
    with catalog.session() as s:
        album_ids = set(s.scalars(select(Track.album_id).where(Track.id.in_(gone))))
        for t in s.scalars(select(Track).where(Track.id.in_(gone))):
            s.delete(t)
        s.flush()
        for album_id in album_ids:
            if not s.scalar(select(func.count()).select_from(Track).where(Track.album_id == album_id)):
                s.execute(delete(Album).where(Album.id == album_id))
    if features is not None:
        features.remove(gone)
    return len(gone)
