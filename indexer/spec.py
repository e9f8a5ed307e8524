"""Index choice as a pure function of (vector count, dimension, memory budget, GPU).

Nothing here builds an index: :func:`choose_index` returns an :class:`IndexSpec` with the FAISS
factory string and a memory estimate, so the choice can be tested by a grid and checked against a
budget before hours are spent building (the approach of autofaiss ``external/optimize.py``).

Only types that support removal by id are chosen (the catalog deletes and re-ingests tracks):
exact ``IDMap2,Flat`` for small collections, ``IVF{nlist}[_HNSW32],{SQ8|PQm}`` above. Graph indexes
(plain HNSW) and fast-scan PQ cannot remove vectors and are refused by the builder.

Memory estimate (bytes), ``n`` vectors of dimension ``d``:

* Flat:  ``n * (4d + ID_BYTES_FLAT)`` — raw float32 vectors, FAISS's id map + reverse hash map,
  and the library's sorted id set.
* IVF:   ``n * (code_bytes + ID_BYTES_IVF)`` + coarse quantizer ``nlist * 4d`` (+ ``nlist * 2M * 4``
  links for an HNSW quantizer) + code book (SQ: ``2 * 4d``; PQ: ``256 * 4d``).
  ``code_bytes`` is ``d`` for SQ8, ``m`` for PQm (8-bit codes); ``ID_BYTES_IVF`` covers the id
  stored in each inverted list, the direct map (hash table id -> list/offset) used by
  ``reconstruct``/``remove``, and the library's sorted id set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from artdb.indexer.errors import VectorIndexError

#: per-vector bookkeeping: id_map (8) + rev_map hash node (~40) + sorted id set (8)
ID_BYTES_FLAT = 56
#: per-vector bookkeeping: inverted-list id (8) + direct-map hash node (~40) + sorted id set (8)
ID_BYTES_IVF = 56
#: collections below this size are searched exactly (CPU); on GPU brute force stays fast longer
FLAT_THRESHOLD_CPU = 200_000
FLAT_THRESHOLD_GPU = 1_000_000
#: an HNSW coarse quantizer pays off once there are this many lists (CPU only)
HNSW_QUANTIZER_MIN_NLIST = 16_384
HNSW_QUANTIZER_M = 32
MAX_NLIST = 65_536
#: FAISS warns below 39 training points per centroid; we aim for 64 and sample at most this many
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 64
MAX_TRAIN_SIZE = 4_000_000
#: PQ sub-quantizer counts the GPU IVFPQ kernels support
GPU_PQ_M = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)


@dataclass(frozen=True)
class IndexSpec:
    """What to build: a FAISS factory string (inner-product metric) and how to build it."""

    factory: str
    nlist: int  # 0 for Flat
    code_bytes: int  # bytes per stored vector code (4*d for Flat)
    estimated_memory: int  # bytes, see the module docstring
    train_size: int  # vectors to sample for training (0: no training)
    hnsw_quantizer: bool = False
    metric: str = "cosine"
    n_vectors: int = 0
    dim: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.nlist == 0

    def to_dict(self) -> dict:
        return asdict(self)


def _nlist_for(n: int) -> int:
    """A power of two near 4*sqrt(n), with at least MIN_POINTS_PER_LIST points per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(round(math.log2(target)), 0)
    while nlist > 1 and n < MIN_POINTS_PER_LIST * nlist:
        nlist //= 2
    return int(min(nlist, MAX_NLIST))


def _pq_choices(dim: int, gpu: bool) -> list[int]:
    """PQ sub-quantizer counts dividing ``dim`` (at most d/2, ≤ 96), largest (most accurate) first."""
    ms = [m for m in range(dim // 2, 0, -1) if dim % m == 0 and m <= 96]
    if gpu:
        ms = [m for m in ms if m in GPU_PQ_M]
    return ms


def estimate_memory(
    n_vectors: int, dim: int, codes: str, nlist: int = 0, hnsw_quantizer: bool = False
) -> int:
    """Bytes needed to hold ``n_vectors`` in an index; ``codes`` is "Flat", "SQ8" or "PQ<m>"."""
    if nlist == 0:
        return n_vectors * (4 * dim + ID_BYTES_FLAT)
    if codes == "Flat":
        code_bytes, book = 4 * dim, 0
    elif codes == "SQ8":
        code_bytes, book = dim, 2 * 4 * dim
    elif codes.startswith("PQ"):
        code_bytes, book = int(codes[2:]), 256 * 4 * dim
    else:
        raise ValueError(f"unknown code type {codes!r}")
    quantizer = nlist * 4 * dim
    if hnsw_quantizer:
        quantizer += nlist * 2 * HNSW_QUANTIZER_M * 4
    return n_vectors * (code_bytes + ID_BYTES_IVF) + quantizer + book


def choose_index(
    n_vectors: int, dim: int, memory_budget_bytes: int, gpu: bool = False
) -> IndexSpec:
    """Pick the most accurate removable index that fits ``memory_budget_bytes``.

    * ``n_vectors`` below the Flat threshold (200k on CPU, 1M on GPU) and the raw vectors fit:
      exact ``IDMap2,Flat``.
    * Otherwise IVF with ``nlist`` ≈ 4·sqrt(n) (power of two, ≤ 65536), an HNSW32 coarse quantizer
      for nlist ≥ 16384 on CPU (GPU quantizes by brute force), and the largest codes that fit:
      SQ8 (d bytes) then PQm for decreasing m.

    Raises ``VectorIndexError`` for bad arguments and when nothing fits the budget (naming the
    smallest option and its size).
    """
    if n_vectors < 0 or dim <= 0 or memory_budget_bytes <= 0:
        raise VectorIndexError(
            f"choose_index: need n_vectors >= 0, dim > 0, memory_budget_bytes > 0 "
            f"(got {n_vectors}, {dim}, {memory_budget_bytes})"
        )
    threshold = FLAT_THRESHOLD_GPU if gpu else FLAT_THRESHOLD_CPU
    flat_mem = estimate_memory(n_vectors, dim, "Flat")
    base = dict(metric="cosine", n_vectors=n_vectors, dim=dim)
    if n_vectors < threshold and flat_mem <= memory_budget_bytes:
        return IndexSpec("IDMap2,Flat", 0, 4 * dim, flat_mem, 0, **base)

    nlist = _nlist_for(n_vectors)
    hnsw = (not gpu) and nlist >= HNSW_QUANTIZER_MIN_NLIST
    coarse = f"IVF{nlist}_HNSW{HNSW_QUANTIZER_M}" if hnsw else f"IVF{nlist}"
    train = min(n_vectors, max(MIN_POINTS_PER_LIST * nlist,
                               min(TRAIN_POINTS_PER_LIST * nlist, MAX_TRAIN_SIZE)))
    # PQ training needs 256 centroids per sub-quantizer
    train = min(n_vectors, max(train, 256 * MIN_POINTS_PER_LIST))
    notes = []
    if n_vectors < threshold:
        notes.append(f"exact Flat needs {flat_mem} bytes > budget {memory_budget_bytes}")
    candidates = ["SQ8"] + [f"PQ{m}" for m in _pq_choices(dim, gpu)]
    smallest = None
    for codes in candidates:
        mem = estimate_memory(n_vectors, dim, codes, nlist, hnsw)
        smallest = (codes, mem)
        if mem <= memory_budget_bytes:
            code_bytes = dim if codes == "SQ8" else int(codes[2:])
            return IndexSpec(
                f"{coarse},{codes}", nlist, code_bytes, mem, train, hnsw, notes=notes, **base
            )
    raise VectorIndexError(
        f"no removable index of {n_vectors} vectors of dimension {dim} fits in "
        f"{memory_budget_bytes} bytes; the smallest ({coarse},{smallest[0]}) needs {smallest[1]}"
    )
