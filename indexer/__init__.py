"""artdb.indexer: a vector library (int64 ids in, ids and cosine scores out).

It imports neither ``artdb.core`` nor ``artdb.db``. Backends: :class:`FaissIndex` (exact Flat or
IVF with SQ/PQ codes; GPU when the FAISS GPU build sees one) and :class:`TorchExactIndex` (exact
matmul + top-k on a torch device, imported lazily). See docs/index.md.
"""

from artdb.indexer.base import IdSet, VectorIndex, backend_class
from artdb.indexer.errors import IndexCorruptError, IndexMismatchError, VectorIndexError
from artdb.indexer.faiss_index import FaissIndex, gpu_count
from artdb.indexer.persist import IndexInfo, read_sidecar, sidecar_path
from artdb.indexer.spec import IndexSpec, choose_index, estimate_memory
from artdb.indexer.tuning import TuneResult, exact_knn, recall_at_k, tune_nprobe

__all__ = [
    "FaissIndex",
    "IdSet",
    "IndexCorruptError",
    "IndexInfo",
    "IndexMismatchError",
    "IndexSpec",
    "TorchExactIndex",
    "TuneResult",
    "VectorIndex",
    "VectorIndexError",
    "choose_index",
    "estimate_memory",
    "exact_knn",
    "gpu_count",
    "read_sidecar",
    "recall_at_k",
    "sidecar_path",
    "tune_nprobe",
]


def __getattr__(name: str):
    # torch is heavy to import: only when the torch backend is asked for
    if name == "TorchExactIndex":
        return backend_class("torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
