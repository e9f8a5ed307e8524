"""The Dask side of :mod:`artdb.core.executor`: a client of a running scheduler, or a local cluster.

Imports ``distributed`` (the optional ``dist`` extra): :mod:`artdb.core.executor` imports this
module only when a Dask executor is asked for, and turns a missing extra into
:class:`~artdb.core.errors.MissingExtraError`.

- :func:`dask_client`: a :class:`distributed.Client` of ``scheduler_address``, or of a
  ``LocalCluster`` of single-threaded worker processes bound to 127.0.0.1 (no dashboard) whose
  workers die with this process (:class:`DieWithParent`: the same ``PR_SET_PDEATHSIG`` + watchdog
  as the process pools). Workers of an external scheduler belong to whoever started them.
- :func:`worker_name`: which worker runs the calling task (for per-worker counts).
- :func:`bounded_results`: submit tasks with at most ``window`` in flight, results in input order;
  Dask reschedules the tasks of a lost worker itself, so a worker killed mid-run costs a retry.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import distributed
from distributed import Client, LocalCluster, WorkerPlugin

from artdb.core.executor import die_with_parent
from artdb.core.processes import ProcessOwner, this_process


class DieWithParent(WorkerPlugin):
    """Worker plugin: the worker process exits when ``creator`` (the process that started the local
    cluster) dies, however it dies (:func:`artdb.core.executor.die_with_parent`)."""

    name = "artdb-die-with-parent"

    def __init__(self, creator: ProcessOwner):
        self.creator = creator

    def setup(self, worker) -> None:
        die_with_parent(self.creator)


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler_address: str | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler_address``, or of a local cluster of ``workers``
    single-threaded worker processes on 127.0.0.1 (closed on exit)."""
    if scheduler_address:
        client = Client(scheduler_address, set_as_default=False)
        cluster = None
    else:
        # Started from this (main) thread's cluster loop; the workers' parent-death signal follows
        # the loop thread, which lives as long as the cluster.
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None, processes=True,
                               plugins={DieWithParent(this_process())})
        client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_name() -> str:
    """The address of the Dask worker running the calling task."""
    return str(distributed.get_worker().address)


def bounded_results(client: Client, fn: Callable, items: Iterable, window: int,
                    on_error: Callable[[BaseException], bool] | None = None) -> Iterator[Any]:
    """``fn(item)`` for each item, run on the cluster with at most ``window`` tasks in flight,
    yielded in input order (memory stays flat however many items there are). A task's exception
    is raised here when its turn comes, or yielded in its place when ``on_error(exc)`` says so."""
    pending: deque = deque()

    def take():
        future = pending.popleft()
        try:
            return future.result()
        except Exception as exc:
            if on_error is not None and on_error(exc):
                return exc
            raise
        finally:
            future.release()

    for item in items:
        pending.append(client.submit(fn, item, pure=False))
        if len(pending) >= max(1, window):
            yield take()
    while pending:
        yield take()
