"""Cleaning up after processes that were killed: at the next start, never under a live owner.

- :func:`mark_interrupted_runs`: ingest runs left ``running`` by a process that provably died
  (:func:`artdb.core.processes.is_dead` on the owner recorded in the run) become ``interrupted``.
  A run of a live process (a concurrent writer), of another host, or without a recorded owner
  (written before owners were recorded) is left alone.
- :func:`remove_stale_temporary_files`: the temporary files of atomic writes (index files and
  their sidecars, model checkpoints) whose name says which process made them
  (:func:`artdb.indexer.persist.temporary_path`), when that process is dead. The feature store
  cleans its own directory under its writer lock.
- :func:`write_atomically`: the atomic write of a file the user asked for anywhere (a report, an
  export), outside any home: before writing, it removes the temporary files that killed earlier
  writes of the same file left beside it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from artdb.core.config import Paths
from artdb.core.errors import ConfigError
from artdb.core.processes import ProcessOwner, is_dead
from artdb.db.models import IngestRun
from artdb.db.session import Catalog
from artdb.indexer.persist import temporary_owner, temporary_path

log = logging.getLogger(__name__)


def mark_interrupted_runs(catalog: Catalog) -> list[int]:
    """Mark ``interrupted`` the runs whose owner is provably dead; returns their ids."""
    with catalog.session() as s:
        runs = s.scalars(select(IngestRun).where(IngestRun.status == "running",
                                                 IngestRun.owner_pid.is_not(None))).all()
        dead = [r for r in runs
                if is_dead(ProcessOwner(r.owner_host or "", r.owner_pid, r.owner_started))]
        for run in dead:
            run.status = "interrupted"
            run.finished_at = run.finished_at or dt.datetime.now(dt.UTC)
    if dead:
        log.info("marked ingest runs %s interrupted (their processes died)", [r.id for r in dead])
    return [r.id for r in dead]


def _remove_dead_owners_files(candidates) -> list[Path]:
    """Delete the :func:`~artdb.indexer.persist.temporary_path` files among ``candidates`` whose
    process is provably dead (never a live writer's, never a file of another name)."""
    removed = []
    for path in candidates:
        owner = temporary_owner(path)
        if owner is None or not is_dead(ProcessOwner(*owner)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_stale_temporary_files(paths: Paths) -> list[Path]:
    """Delete the temporary files of dead processes under the home's indexes and models."""
    removed = []
    for folder in (paths.indexes, paths.models):
        if folder.is_dir():
            removed += _remove_dead_owners_files(folder.rglob("*.tmp"))
    if removed:
        log.info("removed %d temporary file(s) of killed processes", len(removed))
    return removed


def remove_stale_temporaries_of(target: Path) -> list[Path]:
    """Delete the temporary files of dead processes that were writing ``target`` (beside it)."""
    removed = _remove_dead_owners_files(target.parent.glob(f".{target.name}.*.tmp"))
    if removed:
        log.info("removed %d temporary file(s) of killed writes of %s", len(removed), target)
    return removed


def require_folder_of(target: str | os.PathLike) -> Path:
    """``target`` as a Path, once its folder is known to exist (checked before long work)."""
    target = Path(target)
    if not target.parent.is_dir():
        raise ConfigError(f"directory {target.parent} does not exist: create it, or write "
                          f"{target.name} somewhere that exists")
    return target


def write_atomically(target: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``target`` whole or not at all: ``write`` fills a temporary file beside it (named for
    this process), which is synced and renamed over ``target``. A killed write leaves only that
    temporary file, removed by the next write of ``target`` (these files may live outside any
    home, where :func:`remove_stale_temporary_files` never looks). The folder must exist."""
    target = require_folder_of(target)
    remove_stale_temporaries_of(target)
    tmp = temporary_path(target)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
