"""Ground truth, recall and ``nprobe`` tuning against exact search.

``recall@k`` here is the overlap |approx top-k ∩ exact top-k| / k, averaged over queries
(the ann-benchmarks definition). When the queries are stored vectors, pass their ids as
``exclude_ids`` so that a query finding itself does not inflate the figure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artdb.indexer.base import as_ids, as_vectors
from artdb.indexer.errors import VectorIndexError

log = logging.getLogger(__name__)


def _drop_excluded(ids: np.ndarray, scores: np.ndarray | None, exclude: np.ndarray | None, k: int):
    if exclude is None:
        return ids[:, :k], None if scores is None else scores[:, :k]
    mask = ids == exclude[:, None]
    order = np.argsort(mask, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(ids, order, axis=1)
    if scores is not None:
        scores = np.take_along_axis(scores, order, axis=1)
    return ids, scores


def exact_knn(
    database: Any, database_ids: Any, queries: Any, k: int, *, exclude_ids: Any = None,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-``k`` (FAISS ``IndexFlatIP``): ``(scores, ids)``, optionally excluding one id
    per query."""
    import faiss

    x = as_vectors(database, np.shape(database)[-1], "database")
    xids = as_ids(database_ids, x.shape[0], unique=False)
    q = as_vectors(queries, x.shape[1], "queries")
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    extra = 0 if exclude_ids is None else 1
    kk = min(k + extra, x.shape[0])
    scores, rows = [], []
    for s in range(0, q.shape[0], batch_size):
        d, i = flat.search(q[s : s + batch_size], kk)
        scores.append(d)
        rows.append(i)
    d, i = np.concatenate(scores), np.concatenate(rows)
    ids = np.where(i >= 0, xids[np.maximum(i, 0)], -1)
    exclude = None if exclude_ids is None else as_ids(exclude_ids, q.shape[0], unique=False)
    ids, d = _drop_excluded(ids, d, exclude, k)
    return d, ids


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """Mean |found[:, :k] ∩ true[:, :k]| / k (padding ids -1 never count)."""
    found = np.asarray(found_ids)[:, :k]
    true = np.asarray(true_ids)[:, :k]
    if found.shape[0] == 0:
        return 1.0
    hit = (found[:, :, None] == true[:, None, :]).any(axis=2) & (found >= 0)
    return float(hit.sum() / (found.shape[0] * k))


@dataclass
class TuneResult:
    nprobe: int
    efSearch: int | None
    recall: float
    qps: float
    reached: bool
    target_recall: float
    k: int
    trials: list[dict] = field(default_factory=list)


def _measure(index, queries, true_ids, k, exclude) -> tuple[float, float]:
    extra = 0 if exclude is None else 1
    t0 = time.perf_counter()
    _, ids = index.search(queries, k + extra)
    dt = time.perf_counter() - t0
    ids, _ = _drop_excluded(ids, None, exclude, k)
    return recall_at_k(ids, true_ids, k), queries.shape[0] / max(dt, 1e-9)


def tune_nprobe(
    index,
    queries: Any,
    true_ids: np.ndarray | None = None,
    *,
    database: Any = None,
    database_ids: Any = None,
    k: int = 10,
    target_recall: float = 0.95,
    exclude_ids: Any = None,
) -> TuneResult:
    """Smallest ``nprobe`` (and HNSW-quantizer ``efSearch`` = max(2·nprobe, 32)) reaching ``target_recall``.

    Ground truth is ``true_ids`` (k nearest by exact search) or computed from ``database`` /
    ``database_ids``. Doubling then bisection; every trial is recorded. The chosen values are set on
    ``index`` and recorded in ``index.params`` and ``index.recall``. If even nprobe = nlist misses the
    target (code quantisation error), nprobe = nlist is kept and ``reached`` is False.
    """
    if not getattr(index, "is_ivf", False):
        raise VectorIndexError("tune_nprobe needs an IVF index (exact indexes have nothing to tune)")
    q = as_vectors(queries, index.dim, "queries")
    exclude = None if exclude_ids is None else as_ids(exclude_ids, q.shape[0], unique=False)
    if true_ids is None:
        if database is None:
            raise VectorIndexError("tune_nprobe: give true_ids or database + database_ids")
        _, true_ids = exact_knn(database, database_ids, q, k, exclude_ids=exclude)
    true_ids = np.asarray(true_ids)[:, :k]
    trials: dict[int, tuple[float, float]] = {}

    def trial(nprobe: int) -> float:
        if nprobe not in trials:
            index.set_search_params(nprobe=nprobe, efSearch=max(2 * nprobe, 32))
            trials[nprobe] = _measure(index, q, true_ids, k, exclude)
        return trials[nprobe][0]

    nlist = index.nlist
    lo, hi = 0, None  # lo: largest nprobe known to miss; hi: smallest known to reach
    p = 1
    while True:
        if trial(p) >= target_recall:
            hi = p
            break
        lo = p
        if p == nlist:
            break
        p = min(2 * p, nlist)
    if hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if trial(mid) >= target_recall:
                hi = mid
            else:
                lo = mid
        best = hi
    else:
        best = nlist
        log.warning(
            "recall target %.3f not reached: %.3f at nprobe=nlist=%d", target_recall, trials[nlist][0], nlist
        )
    index.set_search_params(nprobe=best, efSearch=max(2 * best, 32))
    recall, qps = trials[best]
    index.recall = recall
    index.params.update({"recall_k": k, "recall_target": target_recall, "tune_queries": int(q.shape[0])})
    return TuneResult(
        nprobe=best,
        efSearch=index.params.get("efSearch"),
        recall=recall,
        qps=qps,
        reached=hi is not None,
        target_recall=target_recall,
        k=k,
        trials=[{"nprobe": p, "recall": r, "qps": s} for p, (r, s) in sorted(trials.items())],
    )
