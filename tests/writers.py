"""Several real ``artdb index`` writers at once, for the concurrent-writer tests.

Each writer is a separate process (``multiprocessing``, spawn) that imports artdb, opens the
catalog, then waits on a barrier so that all of them start ingesting at the same instant, and runs
the same library call as ``artdb index`` (:func:`artdb.core.ingest.service.index_catalog`).
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class Writer:
    """One ``artdb index ROOT`` in its own process: catalog URL, data directory (home), folder."""

    url: str
    home: str
    root: str
    features: bool = False
    batch_size: int = 4
    open_after_start: bool = False  # open (and migrate) the catalog only once all have started
    sync_only: bool = False  # no ingest: embed the catalog with the active model (sync_active_index)


def _run_writer(writer: Writer, barrier, results) -> None:
    try:
        from artdb.core.config import Paths
        from artdb.core.ingest.pipeline import IngestOptions, ingest
        from artdb.db.session import Catalog

        if writer.open_after_start:
            barrier.wait(timeout=120)
        catalog = Catalog.open(writer.url)
        paths = Paths.from_home(writer.home)
        options = IngestOptions(workers=1, batch_size=writer.batch_size, executor_backend="inline")
        if writer.sync_only:
            from artdb.core.vectors.index import sync_active_index  # imports torch: only when needed

            barrier.wait(timeout=120)
            report = sync_active_index(catalog, paths)
            results.put((writer.root, writer.home, "ok", {"status": "done", "errors": [],
                                                          **report.to_dict()}))
            catalog.close()
            return
        if writer.features:
            from artdb.core.ingest.service import index_catalog  # imports torch: only when needed

            if not writer.open_after_start:
                barrier.wait(timeout=120)
            summary = index_catalog(catalog, paths, writer.root, options)
        else:  # what index_catalog does with_features=False, without importing the feature stack
            if not writer.open_after_start:
                barrier.wait(timeout=120)
            summary = ingest(catalog, writer.root, options)
        results.put((writer.root, writer.home, "ok", summary.to_dict()))
        catalog.close()
    except BaseException:  # noqa: BLE001 - the test reports whatever killed the writer
        results.put((writer.root, writer.home, "raised", traceback.format_exc()))


def run_writers(writers: list[Writer], timeout: float = 300) -> list[tuple[str, str, str, Any]]:
    """Run ``writers`` at once; ``(root, home, "ok", summary dict)`` or ``(..., "raised", traceback)``
    per writer, in the order they finished."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(writers))
    results = ctx.Queue()
    procs = [ctx.Process(target=_run_writer, args=(w, barrier, results)) for w in writers]
    for p in procs:
        p.start()
    out = [results.get(timeout=timeout) for _ in writers]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"writer process exited with {p.exitcode}"
    return out
