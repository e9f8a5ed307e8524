"""Where per-item work runs: in-process, a local process pool, or a Dask cluster.

The one seam for scale-out (clip-retrieval's distributor idea): stages call ``executor.map`` and do
not care which. Dask needs the ``dist`` extra; its local cluster binds to loopback only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from artdb.core.errors import ConfigError, MissingExtraError


def silence_native_stderr() -> None:
    """Worker initializer: send the process's C-level stderr to /dev/null.

    libmpg123 (inside libsndfile) prints a line per damaged or seek-entered MP3 frame straight to
    file descriptor 2; in a catalog of thousands of MP3s that buries the progress bar and the real
    messages. Workers report every failure back to the parent as a value or exception, so nothing
    is lost. Python-level warnings in the worker go to the same place.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


class InlineExecutor:
    """Runs everything in the calling process (workers <= 1, tests, debugging)."""

    def map(self, fn: Callable, *iterables: Iterable, chunksize: int = 1) -> Iterator[Any]:
        return map(fn, *iterables)


@contextlib.contextmanager
def make_executor(workers: int = 2, backend: str = "process",
                  scheduler_address: str | None = None) -> Iterator[Executor | InlineExecutor]:
    """An executor with ``map``; ``backend`` is ``process`` (default), ``inline`` or ``dask``."""
    if backend == "inline" or (backend == "process" and workers <= 1):
        yield InlineExecutor()
        return
    if backend == "process":
        # spawn: workers must not inherit a parent's torch/OpenMP threads or open DB connections.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                 initializer=silence_native_stderr) as pool:
            try:
                yield pool
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return
    if backend == "dask":
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise MissingExtraError("distributed", "dist") from exc
        if scheduler_address:
            client = Client(scheduler_address)
            cluster = None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                                   dashboard_address=None, processes=True)
            client = Client(cluster)
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    raise ConfigError(f"unknown executor backend {backend!r} (process, inline or dask)")
