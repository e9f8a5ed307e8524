"""Cleaning up after processes that were killed: at the next start, never under a live owner.

- :func:`mark_interrupted_runs`: ingest runs left ``running`` by a process that provably died
  (:func:`artdb.core.processes.is_dead` on the owner recorded in the run) become ``interrupted``.
  A run of a live process (a concurrent writer), of another host, or without a recorded owner
  (written before owners were recorded) is left alone.
- :func:`remove_stale_temporary_files`: the temporary files of atomic writes (index files and
  their sidecars, model checkpoints) whose name says which process made them
  (:func:`artdb.indexer.persist.temporary_path`), when that process is dead. The feature store
  cleans its own directory under its writer lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import select

from artdb.core.config import Paths
from artdb.core.processes import ProcessOwner, is_dead
from artdb.db.models import IngestRun
from artdb.db.session import Catalog
from artdb.indexer.persist import temporary_owner

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


def remove_stale_temporary_files(paths: Paths) -> list[Path]:
    """Delete the temporary files of dead processes under the home's indexes and models."""
    removed = []
    for folder in (paths.indexes, paths.models):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.tmp"):
            owner = temporary_owner(path)
            if owner is None or not is_dead(ProcessOwner(*owner)):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of killed processes", len(removed))
    return removed
