"""Named kill points: a test hook that makes the process die where a crash matters.

``ARTDB_FAULT_KILL_AT="<point>"`` makes :func:`kill_point` SIGKILL the process the first time it
reaches ``<point>`` (``ARTDB_FAULT_KILL_COUNT=n``: the n-th time; ``ARTDB_FAULT_SIGNAL=TERM``:
send SIGTERM instead, which the CLI turns into a clean Ctrl-C-like shutdown). Unset, a kill point
costs one dictionary lookup. The fault suite (``tests/test_faults.py``) runs ``artdb index`` killed
at each point, reruns it, and checks that catalog, feature store and index agree exactly.

The points (:data:`POINTS`), in the order one ingest reaches them:

- ``after features committed``: a batch's features are durable in the feature store, its catalog
  rows are not yet committed;
- ``before feature commit``: the feature store's data and index files are written and fsynced,
  ``commit.json`` not yet replaced;
- ``after batch committed``: a batch's catalog transaction committed, the next not started;
- ``after embedding rows committed``: a chunk's ``embeddings`` rows committed, its vectors not yet
  in the index file;
- ``before index rename``: a new index file is fsynced under its temporary name;
- ``between index and sidecar``: the index file is renamed into place, its sidecar not yet;
- ``before checkpoint rename``: a model checkpoint is fsynced under its temporary name;
- ``after rebuild rows committed``: ``--rebuild-index`` replaced the model's embedding rows, the
  new index is not yet in place;
- ``after split committed``: a curator's split is committed, the derived indexes not yet rebuilt;
- ``dask worker analysed a file``: a Dask worker analysed (and extracted, embedded) one file, its
  result not yet sent back (``artdb index --executor dask``: a worker lost mid-run).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_POINT = "ARTDB_FAULT_KILL_AT"
ENV_COUNT = "ARTDB_FAULT_KILL_COUNT"
ENV_SIGNAL = "ARTDB_FAULT_SIGNAL"

POINTS = (
    "after features committed",
    "before feature commit",
    "after batch committed",
    "after embedding rows committed",
    "before index rename",
    "between index and sidecar",
    "before checkpoint rename",
    "after rebuild rows committed",
    "after split committed",
    "dask worker analysed a file",
)

_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """Die here if ``ARTDB_FAULT_KILL_AT`` names this point (see the module doc)."""
    if name not in POINTS:  # a typo would make a fault test pass without killing anything
        raise ValueError(f"unknown kill point {name!r}")
    if os.environ.get(ENV_POINT) != name:
        return
    _reached[name] += 1
    if _reached[name] < int(os.environ.get(ENV_COUNT) or 1):
        return
    sig = signal.SIGTERM if os.environ.get(ENV_SIGNAL, "").upper() in ("TERM", "SIGTERM") else signal.SIGKILL
    os.kill(os.getpid(), sig)
