"""The index abstraction shared by the FAISS and torch backends, and input validation.

Every backend stores L2-normalised float32 vectors keyed by non-negative int64 ids (the catalog's
track ids) and scores by inner product, i.e. cosine similarity. ``search`` returns
``(scores, ids)`` of shape ``(n_queries, k)``, best first, padded with score ``-inf`` and id ``-1``
where fewer than ``k`` vectors exist.
"""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from artdb.indexer.errors import IndexCorruptError, VectorIndexError
from artdb.indexer.persist import read_index_file, save_index

METRIC = "cosine"

#: Sidecar ``backend`` name -> the module defining that backend. A backend's module is imported
#: when an index it wrote is opened (torch is heavy: the torch backend loads only then); each
#: concrete :class:`VectorIndex` registers itself under its ``backend`` when defined.
BACKEND_MODULES = {"faiss": "artdb.indexer.faiss_index", "torch": "artdb.indexer.torch_index"}
_BACKENDS: dict[str, type[VectorIndex]] = {}


def backend_class(name: str) -> type[VectorIndex] | None:
    """The index class of backend ``name`` ("faiss", "torch"), or None when there is none."""
    if name not in _BACKENDS and name in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[name])
    return _BACKENDS.get(name)


def as_vectors(x: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(n, dim)`` array, L2-normalised; refuses NaN and zeros."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise VectorIndexError(f"{what}: expected shape (n, {dim}), got {np.shape(x)}")
    if not np.isfinite(arr).all():
        raise VectorIndexError(f"{what}: contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise VectorIndexError(f"{what}: row {bad} is a zero vector and cannot be normalised")
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def as_ids(ids: Any, n: int | None = None, unique: bool = True) -> np.ndarray:
    """``ids`` as a 1-d int64 array of non-negative ids (-1 is the padding value)."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise VectorIndexError(f"ids: expected a 1-d array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise VectorIndexError(f"ids: expected integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise VectorIndexError(f"ids: {arr.shape[0]} ids for {n} vectors")
    if arr.size and arr.min() < 0:
        raise VectorIndexError(f"ids: must be >= 0, got {int(arr.min())}")
    if unique and arr.size and np.unique(arr).size != arr.size:
        raise VectorIndexError("ids: duplicate ids in one batch")
    return arr


def vectors_and_ids(vectors: Any, ids: Any) -> tuple[Any, Any]:
    """Accept ``(vectors, ids)`` and, unambiguously by shape, ``(ids, vectors)``.

    ids are never 2-d, so a 2-d second argument means the caller used the ids-first order
    (``core.sampling.SearchIndex``'s protocol). Keywords are the clearest: ``add(vectors=, ids=)``.
    """
    if np.ndim(ids) == 2 and np.ndim(vectors) <= 1:
        return ids, vectors
    return vectors, ids


class IdSet:
    """A sorted int64 array with O(n) batch insert/delete: membership for tens of millions of ids
    at 8 bytes each (a Python set costs ~10x more)."""

    def __init__(self, ids: np.ndarray | None = None):
        self._a = np.sort(np.asarray(ids if ids is not None else [], dtype=np.int64))

    def __len__(self) -> int:
        return int(self._a.size)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self._a.size == 0:
            return np.zeros(ids.shape, dtype=bool)
        pos = np.searchsorted(self._a, ids)
        pos = np.minimum(pos, self._a.size - 1)
        return self._a[pos] == ids

    def add(self, ids: np.ndarray) -> None:
        new = np.sort(np.asarray(ids, dtype=np.int64))
        self._a = np.insert(self._a, np.searchsorted(self._a, new), new)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        present = ids[self.contains(ids)]
        if present.size:
            self._a = np.delete(self._a, np.searchsorted(self._a, np.unique(present)))

    def array(self) -> np.ndarray:
        return self._a.copy()


class VectorIndex(abc.ABC):
    """A cosine-similarity vector index keyed by int64 ids.

    Attributes the caller may set and that persist in the sidecar: ``model`` (the embedding model's
    id/name), ``name`` (e.g. "track", "album", "artist-page"), ``catalog_revision`` (free-form,
    set by ``core`` to the catalog state the index reflects) and ``params`` (search parameters).
    """

    backend: str = "?"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backend" in vars(cls):
            _BACKENDS.setdefault(cls.backend, cls)

    def __init__(self, dim: int, *, model: str | None = None, name: str | None = None):
        if int(dim) <= 0:
            raise VectorIndexError(f"dim must be > 0, got {dim}")
        self._dim = int(dim)
        self.model = model
        self.name = name
        self.catalog_revision: str | None = None
        self.recall: float | None = None  # measured recall@k against exact search, if tuned
        self.params: dict[str, Any] = {}

    @classmethod
    def exact(cls, dim: int, **kwargs: Any) -> VectorIndex:
        """An empty exact index (FAISS ``IDMap2,Flat``)."""
        return backend_class("faiss")(dim, "IDMap2,Flat", **kwargs)

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    @abc.abstractmethod
    def ntotal(self) -> int: ...

    def __len__(self) -> int:
        return self.ntotal

    @property
    def factory(self) -> str:
        return "IDMap2,Flat"

    @property
    def metric(self) -> str:
        return METRIC

    # -- updates -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def add(self, vectors: Any, ids: Any) -> None:
        """Add new vectors; every id must be new (use :meth:`replace` to overwrite)."""

    def _new_entries(self, vectors: Any, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated ``(vectors, ids)`` for :meth:`add`; refuses ids already stored (``self._ids``)."""
        vectors, ids = vectors_and_ids(vectors, ids)
        x = as_vectors(vectors, self.dim)
        xids = as_ids(ids, x.shape[0])
        present = self._ids.contains(xids)
        if present.any():
            raise VectorIndexError(
                f"id {int(xids[present][0])} is already in the index ({int(present.sum())} ids in all); "
                "use replace() to overwrite"
            )
        return x, xids

    @abc.abstractmethod
    def remove(self, ids: Any) -> int:
        """Remove the vectors with these ids (absent ids are ignored); returns how many were removed."""

    def replace(self, vectors: Any, ids: Any) -> None:
        """Insert or overwrite: remove any existing vectors with these ids, then add."""
        vectors, ids = vectors_and_ids(vectors, ids)
        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dim)
        if vectors.shape[0] != ids.shape[0]:
            raise VectorIndexError(f"ids: {ids.shape[0]} ids for {vectors.shape[0]} vectors")
        self.remove(ids)
        self.add(vectors, ids)

    # -- reads -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def search(self, queries: Any, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, k)``: cosine similarity, best first; ``-inf``/``-1``
        padded."""

    @abc.abstractmethod
    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored (normalised, possibly quantised) vectors for ``ids``; raises if one is absent."""

    @abc.abstractmethod
    def contains(self, ids: Any) -> np.ndarray:
        """A boolean array: which of ``ids`` are stored."""

    @abc.abstractmethod
    def index_ids(self) -> np.ndarray:
        """Every stored id, sorted (int64), for consistency checks against the catalog."""

    # -- persistence -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _write(self, path: Path) -> None:
        """Write the index file at ``path`` (a temporary name; the caller fsyncs and renames)."""

    def save(self, path: str | os.PathLike, *, catalog_revision: str | None = None,
             step: Callable[[str], None] | None = None) -> Path:
        """Write atomically to ``path`` plus the sidecar ``path + '.json'``; returns ``path``.
        ``step`` hears the moments between the writes (:func:`~artdb.indexer.persist.save_index`)."""
        if catalog_revision is not None:
            self.catalog_revision = catalog_revision
        return save_index(self, Path(path), step)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        expect_model: str | None = None,
        expect_dim: int | None = None,
        expect_name: str | None = None,
        verify_checksum: bool = True,
        **backend_options: Any,
    ) -> VectorIndex:
        """Open an index saved by :meth:`save`, checking it against its sidecar and expectations.

        On ``VectorIndex`` the backend recorded in the sidecar is used; on a subclass, that
        subclass (both read the same FAISS file format). ``backend_options`` go to the backend
        (``use_gpu`` for FAISS, ``device`` for torch).
        Raises :class:`IndexCorruptError` or :class:`IndexMismatchError` with both values named.
        """
        path = Path(path)
        raw, info = read_index_file(path, expect_model=expect_model, expect_dim=expect_dim,
                                    expect_name=expect_name, verify_checksum=verify_checksum)
        target = cls if cls is not VectorIndex else backend_class(info.backend)
        if target is None:
            raise IndexCorruptError(f"{path}: unknown backend {info.backend!r} in sidecar")
        try:
            index = target._from_faiss(raw, factory=info.factory, **backend_options)
        except VectorIndexError as exc:
            raise VectorIndexError(f"{path}: {exc}") from exc
        index.model = info.model
        index.name = info.name
        index.catalog_revision = info.catalog_revision
        index.recall = info.recall
        if hasattr(index, "set_search_params") and info.params:
            index.set_search_params(nprobe=info.params.get("nprobe"), efSearch=info.params.get("efSearch"))
        index.params.update(info.params)
        return index

    @classmethod
    @abc.abstractmethod
    def _from_faiss(cls, index: Any, **options: Any) -> VectorIndex:
        """Wrap a FAISS index read from disk."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, dim={self.dim}, "
            f"ntotal={self.ntotal}, factory={self.factory!r})"
        )


def pad_results(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise padding: id -1 gets score -inf (FAISS gives -FLT_MAX for inner product)."""
    scores = np.asarray(scores, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    scores[ids < 0] = -np.inf
    return scores, ids
