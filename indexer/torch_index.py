"""Exact cosine search on a torch device: matmul + top-k, blocked over queries and the database.

The trainer mines hard negatives with it on the GPU (no FAISS GPU build needed); it works the same
on ``device="cpu"``. Saved in the same FAISS ``IDMap2,Flat`` file format as :class:`FaissIndex`, so
either backend can open the other's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from artdb.indexer.base import IdSet, VectorIndex, as_ids, as_vectors
from artdb.indexer.errors import VectorIndexError

#: score-block size (queries x database rows) held in memory at once
BLOCK_ELEMENTS = 1 << 24


class TorchExactIndex(VectorIndex):
    """Exact (brute-force) cosine index whose vectors live on a torch device."""

    backend = "torch"

    def __init__(
        self,
        dim: int,
        *,
        device: str | torch.device = "cpu",
        model: str | None = None,
        name: str | None = None,
        block_elements: int = BLOCK_ELEMENTS,
    ):
        super().__init__(dim, model=model, name=name)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise VectorIndexError("device='cuda' but torch sees no CUDA device")
        self._vecs = torch.empty((0, self.dim), dtype=torch.float32, device=self.device)
        self._row_ids = np.zeros(0, dtype=np.int64)  # id of each row of _vecs
        self._ids = IdSet()
        self._order: np.ndarray | None = None  # argsort of _row_ids, built lazily
        self.block_elements = int(block_elements)
        self.recall = 1.0

    @property
    def ntotal(self) -> int:
        return int(self._row_ids.size)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Row numbers of ``ids`` (all must be present)."""
        if self._order is None:
            self._order = np.argsort(self._row_ids, kind="stable")
        sorted_ids = self._row_ids[self._order]
        pos = np.searchsorted(sorted_ids, ids)
        return self._order[pos]

    # -- updates -----------------------------------------------------------------------------------
    def add(self, vectors: Any, ids: Any) -> None:
        x, xids = self._new_entries(vectors, ids)
        if x.shape[0] == 0:
            return
        self._vecs = torch.cat([self._vecs, torch.from_numpy(x).to(self.device)])
        self._row_ids = np.concatenate([self._row_ids, xids])
        self._ids.add(xids)
        self._order = None

    def remove(self, ids: Any) -> int:
        xids = as_ids(ids, unique=False)
        xids = np.unique(xids[self._ids.contains(xids)])
        if xids.size == 0:
            return 0
        keep = np.ones(self.ntotal, dtype=bool)
        keep[self._rows(xids)] = False
        self._vecs = self._vecs[torch.from_numpy(keep).to(self.device)]
        self._row_ids = self._row_ids[keep]
        self._ids.remove(xids)
        self._order = None
        return int(xids.size)

    # -- reads -------------------------------------------------------------------------------------
    @torch.no_grad()
    def search(self, queries: Any, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        q = as_vectors(queries, self.dim, "queries")
        if k <= 0:
            raise VectorIndexError(f"k must be > 0, got {k}")
        nq, n = q.shape[0], self.ntotal
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        if n == 0 or nq == 0:
            return scores, ids
        kk = min(k, n)
        qb = max(1, min(batch_size, 1024))
        db = max(kk, self.block_elements // qb)
        for qs in range(0, nq, qb):
            qt = torch.from_numpy(q[qs : qs + qb]).to(self.device)
            best_s = best_i = None
            for ds in range(0, n, db):
                s = qt @ self._vecs[ds : ds + db].T
                bs, bi = torch.topk(s, min(kk, s.shape[1]), dim=1)
                bi = bi + ds
                if best_s is not None:
                    bs = torch.cat([best_s, bs], dim=1)
                    bi = torch.cat([best_i, bi], dim=1)
                    bs, sel = torch.topk(bs, kk, dim=1)
                    bi = torch.gather(bi, 1, sel)
                best_s, best_i = bs, bi
            scores[qs : qs + qb, :kk] = best_s.cpu().numpy()
            ids[qs : qs + qb, :kk] = self._row_ids[best_i.cpu().numpy()]
        return scores, ids

    def reconstruct(self, ids: Any) -> np.ndarray:
        xids = as_ids(ids, unique=False)
        present = self._ids.contains(xids)
        if not present.all():
            raise VectorIndexError(f"id {int(xids[~present][0])} is not in the index")
        if xids.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = torch.from_numpy(self._rows(xids)).to(self.device)
        return self._vecs[rows].cpu().numpy()

    def contains(self, ids: Any) -> np.ndarray:
        return self._ids.contains(as_ids(ids, unique=False))

    def index_ids(self) -> np.ndarray:
        return self._ids.array()

    def vectors(self) -> tuple[torch.Tensor, np.ndarray]:
        """The stored vectors (on the device, row order) and their ids — for mining in batch."""
        return self._vecs, self._row_ids.copy()

    # -- persistence -------------------------------------------------------------------------------
    def _write(self, path: Path) -> None:
        import faiss

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if self.ntotal:
            index.add_with_ids(np.ascontiguousarray(self._vecs.cpu().numpy()), self._row_ids)
        faiss.write_index(index, str(path))

    @classmethod
    def _from_faiss(cls, index: Any, *, factory: str = "", **options: Any) -> TorchExactIndex:
        import faiss

        if not isinstance(index, faiss.IndexIDMap2) or not isinstance(
            faiss.downcast_index(index.index), faiss.IndexFlat
        ):
            raise VectorIndexError(
                "TorchExactIndex can only open exact 'IDMap2,Flat' indexes, "
                f"not {factory or type(index).__name__!r}"
            )
        self = cls(index.d, **options)
        n = int(index.ntotal)
        if n:
            flat = faiss.downcast_index(index.index)
            vecs = faiss.rev_swig_ptr(flat.get_xb(), n * index.d).reshape(n, index.d).copy()
            self._vecs = torch.from_numpy(vecs).to(self.device)
            self._row_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            self._ids = IdSet(self._row_ids)
        return self
