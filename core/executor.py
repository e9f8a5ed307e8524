"""Where per-item work runs: in-process, a local process pool, or a Dask cluster.

The one seam for scale-out (clip-retrieval's distributor idea): stages call ``executor.map`` and do
not care which. Every process pool artdb starts is made here (:func:`process_pool`), so the start
method and the worker initializer are chosen in one place:

- :func:`make_executor` (a context manager) for a batch of work: ingest's analysis, the synthetic
  catalog's rendering;
- :func:`process_pool` for a pool whose life the caller manages (the front-end keeps one open
  across batches and replaces it when a decoder crash kills a worker).

Start methods: ``spawn`` by default (workers must not inherit a parent's torch/OpenMP threads or
open DB connections); :func:`fast_start_method` (``fork`` on Linux) for workers that only run
numpy/libsndfile code and never touch torch, CUDA or the catalog.

Every pool worker dies with the process that started it (:func:`die_with_parent`): a SIGKILL or
SIGTERM of ``artdb index`` leaves no worker behind (they would hold the feature store's pipes and
memory, and forked ones used to hold its lock).

Dask (:func:`dask_client`, the ``dask`` backend) needs the ``dist`` extra and lives in
:mod:`artdb.core.dask_cluster`: a client of a running scheduler, or a local cluster bound to
loopback whose workers die with their parent like the pools' workers. :func:`ordered_window` is the
bounded, ordered map every backend shares (Dask's is ``dask_cluster.bounded_results``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from artdb.core.errors import ConfigError, MissingExtraError
from artdb.core.processes import ProcessOwner, ask_kernel_to_kill_me_with_parent, is_dead, this_process


def silence_native_stderr() -> None:
    """Worker initializer: send the process's C-level stderr to /dev/null.

    libmpg123 (inside libsndfile) prints a line per damaged or seek-entered MP3 frame straight to
    file descriptor 2; in a catalog of thousands of MP3s that buries the progress bar and the real
    messages. Workers report every failure back to the parent as a value or exception, so nothing
    is lost. Python-level warnings in the worker go to the same place.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


_WATCHDOG_SECONDS = 1.0


def die_with_parent(creator: ProcessOwner) -> None:
    """Make this (worker) process exit when ``creator``, the process that started its pool, dies,
    however it dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the moment its
    parent goes (SIGKILL included); the parent may already be gone by then, hence the check after.
    Everywhere, as a fallback: a daemon thread that exits the process once its parent changes (it
    was re-parented) or ``creator`` is dead — a ``forkserver`` worker's parent is the fork server,
    which itself lives as long as any worker holds its pipe. SIGTERM gets its default action back:
    a forked worker inherits the CLI's "SIGTERM = Ctrl-C" handler, and a worker has nothing to
    clean up.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    ask_kernel_to_kill_me_with_parent()  # where it is missing, the watchdog below remains

    def orphaned() -> bool:
        return os.getppid() != parent or is_dead(creator)

    if orphaned():
        os._exit(1)

    def watch() -> None:
        while not orphaned():
            time.sleep(_WATCHDOG_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="artdb-parent-watchdog", daemon=True).start()


def _start_worker(creator: ProcessOwner, initializer: Callable[[], None] | None) -> None:
    """Every pool worker's initializer: :func:`die_with_parent`, then the caller's own."""
    die_with_parent(creator)
    if initializer is not None:
        initializer()


def fast_start_method() -> str:
    """``fork`` on Linux (a pool starts in ~50 ms), else ``spawn``.

    With ``forkserver`` or ``spawn`` every worker re-imports the caller's ``__main__`` (CPython
    3.11's forkserver ``__main__`` preload does not take effect), which costs seconds when that
    imports torch. Forking a process that holds torch's thread pool is only safe for workers that
    never touch torch (nor CUDA, nor an open DB connection).
    """
    return "fork" if sys.platform.startswith("linux") else "spawn"


def check_start_method(method: str) -> str:
    """``method`` if this platform has it, else a :class:`ConfigError` naming the choices."""
    methods = multiprocessing.get_all_start_methods()
    if method not in methods:
        raise ConfigError(f"start_method must be one of {methods}, got {method!r}")
    return method


def process_pool(workers: int, *, start_method: str = "spawn",
                 initializer: Callable[[], None] | None = silence_native_stderr) -> ProcessPoolExecutor:
    """A local pool of ``workers`` processes; the caller shuts it down (or uses ``with``).

    The workers die with this process (:func:`die_with_parent`), then run ``initializer``. Start
    the pool from a thread that outlives it: on Linux the kernel's parent-death signal follows the
    thread that forked the worker.
    """
    ctx = multiprocessing.get_context(check_start_method(start_method))
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker,
                               initargs=(this_process(), initializer))


class InlineExecutor:
    """Runs everything in the calling process (workers <= 1, tests, debugging)."""

    def map(self, fn: Callable, *iterables: Iterable, chunksize: int = 1) -> Iterator[Any]:
        return map(fn, *iterables)

    def submit(self, fn: Callable, *args: Any) -> Future:
        """``fn(*args)`` now; its result (or exception) in a finished future."""
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)
        return future


def ordered_window(executor: Executor | InlineExecutor, fn: Callable, items: Iterable,
                   window: int) -> Iterator[Any]:
    """``fn(item)`` for each item on ``executor``, at most ``window`` submitted ahead of the one
    being read, results in input order: the workers keep busy while the caller handles a result,
    and memory stays flat however many items there are."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(executor.submit(fn, item))
        if len(pending) >= max(1, window):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler_address: str | None = None):
    """A :class:`distributed.Client`: of the scheduler at ``scheduler_address``, else of a local
    cluster of ``workers`` single-threaded processes on 127.0.0.1 that die with this process
    (:mod:`artdb.core.dask_cluster`). Needs the ``dist`` extra."""
    try:
        # Imported here: ``distributed`` is an optional extra (``dist``) and slow to import.
        from artdb.core.dask_cluster import dask_client as open_client
    except ImportError as exc:
        raise MissingExtraError("distributed", "dist") from exc
    with open_client(workers, scheduler_address) as client:
        yield client


@contextlib.contextmanager
def make_executor(workers: int = 2, backend: str = "process", scheduler_address: str | None = None,
                  *, start_method: str = "spawn",
                  initializer: Callable[[], None] | None = silence_native_stderr,
                  ) -> Iterator[Executor | InlineExecutor]:
    """An executor with ``map``; ``backend`` is ``process`` (default), ``inline`` or ``dask``.

    ``process`` with ``workers <= 1`` runs inline. ``start_method`` and ``initializer`` apply to the
    process pool (see :func:`process_pool`); a Dask cluster starts its own workers.
    """
    if backend == "inline" or (backend == "process" and workers <= 1):
        yield InlineExecutor()
        return
    if backend == "process":
        with process_pool(workers, start_method=start_method, initializer=initializer) as pool:
            try:
                yield pool
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return
    if backend == "dask":
        with dask_client(workers, scheduler_address) as client:
            yield client.get_executor()
        return
    raise ConfigError(f"unknown executor backend {backend!r} (process, inline or dask)")
