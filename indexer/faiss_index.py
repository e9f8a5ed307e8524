"""The FAISS backend: exact ``IDMap2,Flat`` or ``IVF…`` (SQ/PQ/Flat codes) with native int64 ids.

One code path for CPU and GPU. The CPU index is the source of truth (it is what is saved and what
``add``/``remove`` modify). Where ``faiss.get_num_gpus() > 0`` (FAISS GPU build):

* ``search`` runs on a GPU clone of the index, made lazily and dropped after any update;
* IVF training clusters on the GPU, and ``add`` assigns vectors to inverted lists with a GPU clone
  of the coarse quantizer (then appends the codes on CPU with ``add_core``).

Anything that cannot be cloned (e.g. an HNSW coarse quantizer, k > 2048) falls back to the CPU
with a logged warning. Removal: ``IDMap2,Flat`` and IVF with a hash-table direct map support
``remove_ids``; plain HNSW and fast-scan PQ do not, so they are refused.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from artdb.indexer.base import IdSet, VectorIndex, as_ids, as_vectors, pad_results
from artdb.indexer.errors import VectorIndexError
from artdb.indexer.spec import IndexSpec, choose_index
from artdb.indexer.tuning import tune_nprobe

log = logging.getLogger(__name__)

#: FAISS GPU k-selection limit
GPU_MAX_K = 2048

#: sidecar record (``params``) that an HNSW-quantized IVF index placed its vectors exactly
ASSIGNMENT_KEY, EXACT_ASSIGNMENT = "assignment", "exact"

#: brute force (Flat, a flat coarse quantizer) uses BLAS from this many queries per call
BLAS_FROM_QUERIES = 20
# FAISS >= 1.11 counts its BLAS threshold in queries x dimension (default 128,000: 1,000 queries at
# d = 128); below it a scalar loop runs 4-6x slower than BLAS for batches of 20-999 queries
# (measured at 500k x 128: 500 queries 169 vs 825 QPS; docs/scale.md). Older FAISS counts queries
# (default 20), which is already right.
if faiss.cvar.distance_compute_blas_threshold > 1_000:
    faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES * 128


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 with the faiss-cpu build).

    Checked before any cloning: ``index_cpu_to_all_gpus`` with no GPU silently returns an empty index.
    """
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except Exception:  # pragma: no cover - broken CUDA install
        return 0


def _to_gpu(index: faiss.Index) -> faiss.Index:
    gpu = faiss.index_cpu_to_all_gpus(index)
    if gpu.ntotal != index.ntotal or gpu.d != index.d:
        raise VectorIndexError(
            f"GPU clone has {gpu.ntotal} vectors of dimension {gpu.d}, CPU index {index.ntotal} of {index.d}"
        )
    return gpu


_REFUSED = (
    (re.compile(r"(^|,)HNSW"), "graph (HNSW) indexes cannot remove vectors; use IVF…_HNSW32 or Flat"),
    (re.compile(r"fs\b|fsr\b"), "fast-scan PQ cannot remove vectors by id; use PQm (8-bit codes)"),
)


def _make_faiss_index(dim: int, factory: str) -> faiss.Index:
    """Build an empty index for ``factory`` and check it supports id-mapped removal."""
    factory = factory.strip()
    for pattern, why in _REFUSED:
        if pattern.search(factory):
            raise VectorIndexError(f"factory {factory!r}: {why}")
    if factory in ("Flat", "IDMap,Flat"):
        factory = "IDMap2,Flat"
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise VectorIndexError(f"factory {factory!r}: FAISS refused it: {str(exc).splitlines()[-1]}") from exc
    _check_supported(index, factory)
    return index


def _check_supported(index: faiss.Index, what: str) -> None:
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise VectorIndexError(f"{what}: metric must be inner product (cosine on normalised vectors)")
    if isinstance(index, faiss.IndexIDMap2):
        if not isinstance(faiss.downcast_index(index.index), faiss.IndexFlat):
            raise VectorIndexError(f"{what}: IDMap2 is only supported over Flat; use IVF for compression")
        return
    if isinstance(index, faiss.IndexIVF) and not isinstance(index, faiss.IndexIVFFastScan):
        return
    raise VectorIndexError(
        f"{what}: unsupported index type {type(index).__name__}; "
        "use 'IDMap2,Flat' or 'IVF<nlist>[_HNSW32],<Flat|SQ8|PQm>'"
    )


def _ivf_ids(ivf: faiss.IndexIVF) -> np.ndarray:
    """All ids stored in the inverted lists."""
    invlists = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        size = invlists.list_size(lst)
        if size:
            ptr = invlists.get_ids(lst)
            parts.append(faiss.rev_swig_ptr(ptr, size).copy())
            invlists.release_ids(lst, ptr)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class FaissIndex(VectorIndex):
    """Cosine-similarity index over FAISS, keyed by the catalog's int64 ids.

    ``FaissIndex(dim, "IDMap2,Flat")`` is exact; ``FaissIndex(dim, "IVF4096,SQ8")`` needs
    :meth:`train` before :meth:`add` (or use :meth:`build`, which also tunes ``nprobe``).
    ``use_gpu``: None = whenever FAISS sees a GPU, False = never, True = require one.
    """

    backend = "faiss"

    def __init__(
        self,
        dim: int,
        factory: str = "IDMap2,Flat",
        *,
        model: str | None = None,
        name: str | None = None,
        use_gpu: bool | None = None,
        _index: faiss.Index | None = None,
    ):
        super().__init__(dim, model=model, name=name)
        fresh = _index is None
        if _index is None:
            _index = _make_faiss_index(self.dim, factory)
        else:
            _check_supported(_index, factory)
        if _index.d != self.dim:
            raise VectorIndexError(f"FAISS index has dimension {_index.d}, expected {self.dim}")
        self._factory = "IDMap2,Flat" if factory in ("Flat", "IDMap,Flat") else factory
        self._index = _index
        self._ivf = _index if isinstance(_index, faiss.IndexIVF) else None
        if self._ivf is not None:
            if self._ivf.direct_map.type != faiss.DirectMap.Hashtable:
                self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            self._ids = IdSet(_ivf_ids(self._ivf))
            self.params = {"nprobe": int(self._ivf.nprobe)}
            if self._hnsw_quantizer is not None:
                self.params["efSearch"] = int(self._hnsw_quantizer.hnsw.efSearch)
                if fresh or self._ivf.ntotal == 0:  # nothing in it was placed the old way
                    self.params[ASSIGNMENT_KEY] = EXACT_ASSIGNMENT
        else:
            self._ids = IdSet(faiss.vector_to_array(_index.id_map))
        ngpu = gpu_count()
        if use_gpu and ngpu == 0:
            raise VectorIndexError("use_gpu=True but FAISS sees no GPU (faiss-cpu build or no CUDA device)")
        self._use_gpu = ngpu > 0 if use_gpu is None else bool(use_gpu)
        self._gpu_index: faiss.Index | None = None
        self._gpu_quantizer: faiss.Index | None = None

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: IndexSpec, **kwargs: Any) -> FaissIndex:
        return cls(spec.dim, spec.factory, **kwargs)

    @classmethod
    def build(
        cls,
        vectors: Any,
        ids: Any,
        spec: IndexSpec | str | None = None,
        *,
        memory_budget_bytes: int | None = None,
        target_recall: float = 0.95,
        k: int = 10,
        n_tune_queries: int = 1000,
        seed: int = 0,
        batch_size: int = 100_000,
        **kwargs: Any,
    ) -> FaissIndex:
        """Choose (unless ``spec`` is given), train on a sample, add everything, tune ``nprobe``.

        ``spec`` may be an :class:`IndexSpec` or a factory string. Tuning measures recall@``k``
        against exact search on ``n_tune_queries`` stored vectors (their own id excluded) and records
        the result in ``params`` and ``recall``.
        """
        vectors = as_vectors(vectors, np.shape(vectors)[-1] if np.ndim(vectors) else 0)
        ids = as_ids(ids, vectors.shape[0])
        n, dim = vectors.shape
        if spec is None:
            budget = memory_budget_bytes if memory_budget_bytes is not None else 1 << 62
            spec = choose_index(n, dim, budget, gpu=gpu_count() > 0 and kwargs.get("use_gpu") is not False)
        if isinstance(spec, str):
            index = cls(dim, spec, **kwargs)
            train_size = n
        else:
            index = cls.from_spec(spec, **kwargs)
            train_size = spec.train_size or n
        rng = np.random.default_rng(seed)
        if not index.is_trained:
            sample = (vectors if train_size >= n
                      else vectors[np.sort(rng.choice(n, train_size, replace=False))])
            index.train(sample)
        for start in range(0, n, batch_size):
            index.add(vectors[start : start + batch_size], ids[start : start + batch_size])
        if index.is_ivf and n:
            q = rng.choice(n, min(n_tune_queries, n), replace=False)
            tune_nprobe(
                index, vectors[q], database=vectors, database_ids=ids, exclude_ids=ids[q],
                k=k, target_recall=target_recall,
            )
        elif n:
            index.recall = 1.0
        return index

    # -- properties --------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def factory(self) -> str:
        return self._factory

    @property
    def is_ivf(self) -> bool:
        return self._ivf is not None

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def nlist(self) -> int:
        return int(self._ivf.nlist) if self._ivf is not None else 0

    @property
    def uses_gpu(self) -> bool:
        return self._use_gpu

    @property
    def cpu_index(self) -> faiss.Index:
        """The underlying CPU FAISS index (read-only use, please)."""
        return self._index

    @property
    def _hnsw_quantizer(self):
        if self._ivf is None:
            return None
        q = faiss.downcast_index(self._ivf.quantizer)
        return q if isinstance(q, faiss.IndexHNSW) else None

    def set_search_params(self, nprobe: int | None = None, efSearch: int | None = None) -> None:
        """IVF: lists probed per query; ``efSearch`` of an HNSW coarse quantizer (≥ nprobe)."""
        if self._ivf is None:
            return
        if nprobe is not None:
            if not 1 <= nprobe <= self._ivf.nlist:
                raise VectorIndexError(f"nprobe must be in [1, {self._ivf.nlist}], got {nprobe}")
            self._ivf.nprobe = int(nprobe)
            self.params["nprobe"] = int(nprobe)
        hq = self._hnsw_quantizer
        if hq is not None:
            ef = efSearch if efSearch is not None else max(hq.hnsw.efSearch, 2 * self._ivf.nprobe)
            hq.hnsw.efSearch = int(max(ef, self._ivf.nprobe))
            self.params["efSearch"] = int(hq.hnsw.efSearch)
        self._gpu_index = None

    # -- GPU ---------------------------------------------------------------------------------------
    def _search_target(self, k: int) -> faiss.Index:
        if not self._use_gpu or k > GPU_MAX_K or self.ntotal == 0:
            return self._index
        if self._gpu_index is None:
            try:
                self._gpu_index = _to_gpu(self._index)
            except Exception as exc:  # e.g. HNSW coarse quantizer: not clonable
                log.warning("searching on CPU: cannot clone %s to GPU (%s)", self.factory, exc)
                self._use_gpu = False
                return self._index
        return self._gpu_index

    @property
    def assignment_exact(self) -> bool:
        """Whether every stored vector sits in its nearest inverted list. False only for an index
        with an HNSW coarse quantizer whose sidecar does not record exact assignment: one built
        before :meth:`_assigner` existed, whose vectors HNSW placed (~8 % of them in a list no
        query reaches, docs/scale.md). The loaded sidecar's ``params`` restore the record."""
        return self._hnsw_quantizer is None or self.params.get(ASSIGNMENT_KEY) == EXACT_ASSIGNMENT

    def _assigner(self) -> faiss.Index:
        """The index that assigns vectors to inverted lists: exact, over the coarse centroids (a GPU
        clone where possible).

        An HNSW coarse quantizer is bypassed for its flat storage (the same centroids, searched by
        brute force): at its default efSearch of 16, HNSW put 8.4 % of the 10M bench's vectors
        (100k sampled, 8,192 lists) in a list that is not their nearest, which queries then miss
        at any nprobe — the recall plateau near 0.90 of that bench (docs/scale.md). Brute force over
        the centroids (BLAS) assigns as fast as HNSW at efSearch 32 and never misplaces a vector.
        """
        q = self._ivf.quantizer
        hq = self._hnsw_quantizer
        if hq is not None:
            q = faiss.downcast_index(hq.storage)
        if self._use_gpu:
            if self._gpu_quantizer is None:
                try:
                    self._gpu_quantizer = _to_gpu(q)
                except Exception as exc:
                    log.warning("assigning on CPU: cannot clone quantizer to GPU (%s)", exc)
                    return q
            return self._gpu_quantizer
        return q

    # -- updates -----------------------------------------------------------------------------------
    def train(self, vectors: Any) -> None:
        """Train an IVF index (coarse centroids, SQ/PQ codebooks) on a sample; no-op for Flat."""
        if self.is_trained:
            return
        x = as_vectors(vectors, self.dim, "training vectors")
        if x.shape[0] < self._ivf.nlist:
            raise VectorIndexError(
                f"training needs at least nlist={self._ivf.nlist} vectors, got {x.shape[0]}"
            )
        if self._use_gpu:  # k-means on the GPU, with the metric the CPU path would assign with
            alone = self._ivf.quantizer_trains_alone  # a C char: str in Python
            alone = ord(alone) if isinstance(alone, str) else int(alone)
            metric = faiss.METRIC_L2 if alone == 2 else self._ivf.metric_type
            self._ivf.clustering_index = _to_gpu(faiss.IndexFlat(self.dim, metric))
        try:
            self._index.train(x)
        finally:
            self._ivf.clustering_index = None
        self._gpu_quantizer = None
        self._gpu_index = None

    def add(self, vectors: Any, ids: Any) -> None:
        if not self.is_trained:
            raise VectorIndexError(f"{self.factory}: train() the index before adding vectors")
        x, xids = self._new_entries(vectors, ids)
        if x.shape[0] == 0:
            return
        if self._ivf is not None:
            if self._ivf.ntotal == 0 and self._hnsw_quantizer is not None:  # emptied: none misplaced
                self.params[ASSIGNMENT_KEY] = EXACT_ASSIGNMENT
            _, assign = self._assigner().search(x, 1)
            self._ivf.add_core(
                x.shape[0], faiss.swig_ptr(x), faiss.swig_ptr(xids),
                faiss.swig_ptr(np.ascontiguousarray(assign[:, 0])),
            )
        else:
            self._index.add_with_ids(x, xids)
        self._ids.add(xids)
        self._gpu_index = None

    def remove(self, ids: Any) -> int:
        xids = as_ids(ids, unique=False)
        xids = np.unique(xids[self._ids.contains(xids)])
        if xids.size == 0:
            return 0
        if self._ivf is not None:  # the hash-table direct map only accepts an explicit id array
            selector = faiss.IDSelectorArray(xids.size, faiss.swig_ptr(xids))
        else:
            selector = faiss.IDSelectorBatch(xids.size, faiss.swig_ptr(xids))
        removed = int(self._index.remove_ids(selector))
        if removed != xids.size:  # pragma: no cover - would mean the id set and FAISS disagree
            raise VectorIndexError(f"removed {removed} vectors for {xids.size} known ids")
        self._ids.remove(xids)
        self._gpu_index = None
        return removed

    # -- reads -------------------------------------------------------------------------------------
    def search(self, queries: Any, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim, "queries")
        if k <= 0:
            raise VectorIndexError(f"k must be > 0, got {k}")
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        if self.ntotal == 0 or q.shape[0] == 0:
            return scores, ids
        target = self._search_target(k)
        for start in range(0, q.shape[0], batch_size):
            d, i = target.search(q[start : start + batch_size], k)
            scores[start : start + batch_size] = d
            ids[start : start + batch_size] = i
        return pad_results(scores, ids)

    def reconstruct(self, ids: Any) -> np.ndarray:
        xids = as_ids(ids, unique=False)
        present = self._ids.contains(xids)
        if not present.all():
            raise VectorIndexError(f"id {int(xids[~present][0])} is not in the index")
        if xids.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(xids)

    def contains(self, ids: Any) -> np.ndarray:
        return self._ids.contains(as_ids(ids, unique=False))

    def index_ids(self) -> np.ndarray:
        return self._ids.array()

    # -- persistence -------------------------------------------------------------------------------
    def _write(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def _from_faiss(cls, index: Any, *, factory: str = "", **options: Any) -> FaissIndex:
        return cls(index.d, factory or "loaded", _index=index, **options)
