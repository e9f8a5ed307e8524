"""Batch samplers and triplet miners (pytorch-metric-learning's mould).

- :class:`ArtistBatchSampler` — a batch sampler (``torch.utils.data.Sampler`` of index lists) with
  ``P`` artists and ``m`` tracks per artist, the ``m`` tracks spread over the artist's albums, and a
  configurable share of artists drawn from a genre already in the batch (so that same-genre
  negatives exist for the miner).  Like PML's ``MPerClassSampler`` plus album/genre awareness.
- :class:`NeighbourBatchSampler` — the same, but batches are built from anchor tracks and their
  nearest *other-artist* neighbours in the current embedding index (index mining).
- :class:`SideInfoTripletMiner` — a PML ``BaseMiner``: semi-hard / hard / all triplets that violate
  the margin, where each anchor's positives are, with probability ``p_other_album``, restricted to
  other albums of its artist, and its negatives, with probability ``p_same_genre``, to other
  artists of its genre (when such exist in the batch).
- :func:`fit_batch_shape` — ``P`` and ``m`` shrunk to what a small catalog's artists can fill.
- :func:`other_artist_neighbours` — nearest neighbours of other artists through any index with
  ``add(vectors, ids)`` / ``search(queries, k) -> (scores, ids)`` (``artdb.indexer``'s API).

All randomness comes from generators seeded by the caller: no module-level RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from pytorch_metric_learning.miners import BaseMiner
from torch.utils.data import Sampler

from artdb.core.errors import ConfigError

MINING_TYPES = ("semihard", "hard", "all")


class _ArtistTable:
    """Per-artist album lists of track indices and each artist's genre (the most frequent)."""

    def __init__(self, artists, albums, genres):
        self.artists = np.asarray(artists)
        n = len(self.artists)
        self.albums = np.asarray(albums) if albums is not None else np.arange(n)
        self.genres = np.asarray(genres) if genres is not None else np.zeros(n, dtype=np.int64)
        if not (len(self.albums) == len(self.genres) == n):
            raise ConfigError("artists, albums and genres must have the same length")
        self.ids, inv = np.unique(self.artists, return_inverse=True)
        inv = inv.reshape(-1)
        self.artist_index = inv  # track -> artist position
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(self.ids) + 1))
        self.tracks: list[np.ndarray] = [order[bounds[i] : bounds[i + 1]] for i in range(len(self.ids))]
        self.by_album: list[list[np.ndarray]] = []
        self.genre_of = np.zeros(len(self.ids), dtype=self.genres.dtype)
        for i, tr in enumerate(self.tracks):
            alb = self.albums[tr]
            self.by_album.append([tr[alb == a] for a in np.unique(alb)])
            g, c = np.unique(self.genres[tr], return_counts=True)
            self.genre_of[i] = g[np.argmax(c)]
        self.by_genre = {g: np.flatnonzero(self.genre_of == g) for g in np.unique(self.genre_of)}


def fit_batch_shape(artists, artists_per_batch: int, per_artist: int) -> tuple[int, int]:
    """``(P, m)`` that the artists of ``artists`` (one id per track) can fill.

    ``P = min(artists_per_batch, n_artists)``; ``m = min(per_artist, median tracks per artist)``
    (an artist with fewer than ``m`` tracks repeats some, see :class:`ArtistBatchSampler`); both at
    least 2 (a negative needs a second artist, a positive a second track or excerpt). Catalogs that
    fill the configured batch keep it exactly.
    """
    counts = np.unique(np.asarray(artists), return_counts=True)[1]
    if len(counts) == 0:
        return int(artists_per_batch), int(per_artist)
    P = max(2, min(int(artists_per_batch), len(counts)))
    m = max(2, min(int(per_artist), int(np.median(counts))))
    return P, m


class ArtistBatchSampler(Sampler):
    """Yields batches (lists of track indices) of ``artists_per_batch`` x ``per_artist`` tracks.

    Args:
        artists, albums, genres: per-track ids (albums/genres may be ``None``).
        artists_per_batch: ``P``; per_artist: ``m``.
        batches: batches per iteration (``len(sampler)``).
        same_genre_share: probability that each artist after the first is drawn from the genre of
            an artist already in the batch.
        seed: seed of the sampler's own generator.

    Within an artist the ``m`` tracks go round-robin over its albums in random order, so that
    positives from other albums exist whenever the artist has several; an artist with fewer than
    ``m`` tracks repeats tracks (their excerpts are drawn independently).
    """

    def __init__(
        self,
        artists,
        albums=None,
        genres=None,
        *,
        artists_per_batch: int = 16,
        per_artist: int = 4,
        batches: int = 100,
        same_genre_share: float = 0.5,
        seed: int = 0,
    ):
        if per_artist < 2:
            raise ConfigError("per_artist (m) must be >= 2 to form positives")
        if artists_per_batch < 2:
            raise ConfigError("artists_per_batch (P) must be >= 2 to form negatives")
        if not 0.0 <= same_genre_share <= 1.0:
            raise ConfigError("same_genre_share must be in [0, 1]")
        self.table = _ArtistTable(artists, albums, genres)
        if len(self.table.ids) < artists_per_batch:
            raise ConfigError(
                f"artists_per_batch={artists_per_batch} but only {len(self.table.ids)} artists "
                f"(fit_batch_shape fits the batch to the artists)"
            )
        self.P, self.m, self.batches = int(artists_per_batch), int(per_artist), int(batches)
        self.same_genre_share = float(same_genre_share)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.batches):
            yield self.sample_batch()

    # -- building blocks -------------------------------------------------------------------
    def tracks_of(self, artist: int, first: int | None = None) -> list[int]:
        """``m`` tracks of artist position ``artist``, spread over albums; ``first`` leads."""
        albums = [a.copy() for a in self.table.by_album[artist]]
        for a in albums:
            self.rng.shuffle(a)
        order = self.rng.permutation(len(albums))
        out: list[int] = []
        if first is not None:
            out.append(int(first))
            for j, a in enumerate(albums):
                if first in a:
                    albums[j] = a[a != first]
                    # start the round-robin with the other albums
                    order = np.concatenate([order[order != j], [j]])
        cursor = [0] * len(albums)
        while len(out) < self.m:
            progressed = False
            for j in order:
                if len(out) >= self.m:
                    break
                if cursor[j] < len(albums[j]):
                    out.append(int(albums[j][cursor[j]]))
                    cursor[j] += 1
                    progressed = True
            if not progressed:  # fewer tracks than m: repeat
                pool = self.table.tracks[artist]
                out.extend(int(t) for t in self.rng.choice(pool, self.m - len(out)))
        return out

    def _pick_artist(self, chosen: list[int]) -> int:
        taken = set(chosen)
        if chosen and self.rng.random() < self.same_genre_share:
            g = self.table.genre_of[chosen[self.rng.integers(len(chosen))]]
            cands = [a for a in self.table.by_genre[g] if a not in taken]
            if cands:
                return int(cands[self.rng.integers(len(cands))])
        while True:
            a = int(self.rng.integers(len(self.table.ids)))
            if a not in taken:
                return a

    def sample_batch(self) -> list[int]:
        chosen: list[int] = []
        batch: list[int] = []
        while len(chosen) < self.P:
            a = self._pick_artist(chosen)
            chosen.append(a)
            batch.extend(self.tracks_of(a))
        return batch


class NeighbourBatchSampler(ArtistBatchSampler):
    """Index mining: batches of anchor artists and the artists of their anchors' hard neighbours.

    After :meth:`set_neighbours` (``[n_tracks, k]`` other-artist neighbour indices, ``-1`` padded),
    each batch is built from pairs: a random anchor artist with a random anchor track ``t`` leading
    its ``m`` tracks, and the artist of one of ``t``'s nearest other-artist neighbours ``u`` with
    ``u`` leading its ``m`` tracks. ``pair_share`` of the ``P`` slots are filled this way, the rest
    as in :class:`ArtistBatchSampler`. Before the first refresh it is an ``ArtistBatchSampler``.
    """

    def __init__(self, *args, pair_share: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= pair_share <= 1.0:
            raise ConfigError("pair_share must be in [0, 1]")
        self.pair_share = float(pair_share)
        self.neighbours: np.ndarray | None = None
        self.pairs_drawn = 0

    def set_neighbours(self, neighbours: np.ndarray) -> None:
        nb = np.asarray(neighbours, dtype=np.int64)
        if nb.ndim != 2 or len(nb) != len(self.table.artists):
            raise ConfigError(f"neighbours must be [n_tracks={len(self.table.artists)}, k]")
        self.neighbours = nb

    def sample_batch(self) -> list[int]:
        if self.neighbours is None:
            return super().sample_batch()
        chosen: list[int] = []
        batch: list[int] = []
        n_pair_slots = int(round(self.P * self.pair_share))
        attempts = 0
        while len(chosen) + 2 <= n_pair_slots and attempts < 4 * self.P:
            attempts += 1
            a = self._pick_artist(chosen) if not chosen else self._random_free(chosen)
            tracks = self.table.tracks[a]
            t = int(tracks[self.rng.integers(len(tracks))])
            nb = self.neighbours[t]
            nb = nb[nb >= 0]
            taken = set(chosen) | {a}
            nb = [int(u) for u in nb if self.table.artist_index[u] not in taken]
            if not nb:
                continue
            u = nb[self.rng.integers(len(nb))]
            b = int(self.table.artist_index[u])
            chosen += [a, b]
            batch += self.tracks_of(a, first=t) + self.tracks_of(b, first=u)
            self.pairs_drawn += 1
        while len(chosen) < self.P:
            a = self._pick_artist(chosen)
            chosen.append(a)
            batch.extend(self.tracks_of(a))
        return batch

    def _random_free(self, chosen: list[int]) -> int:
        taken = set(chosen)
        while True:
            a = int(self.rng.integers(len(self.table.ids)))
            if a not in taken:
                return a


class SideInfoTripletMiner(BaseMiner):
    """Margin-violating triplets with album/genre side information.

    Args:
        margin: triplet margin (in the miner's distance; default PML ``LpDistance`` on normalised
            embeddings).
        type_of_triplets: ``"semihard"`` (``0 < d(a,n) - d(a,p) <= margin``), ``"hard"``
            (``d(a,n) - d(a,p) <= 0``) or ``"all"`` (``<= margin``), as PML's ``TripletMarginMiner``.
        p_other_album: per anchor, probability that its positives are restricted to other albums of
            its artist (if the batch holds any).
        p_same_genre: per anchor, probability that its negatives are restricted to other artists of
            its genre (if the batch holds any).
        seed: seed of the miner's generator for those coin flips.

    Call as ``miner(embeddings, labels, albums=..., genres=...)``; without albums/genres it is a
    plain triplet margin miner. After each call, ``num_candidates`` (valid triplets after the
    side-information restriction), ``num_triplets`` and ``active_fraction`` (share of candidates
    that violate the margin, i.e. have non-zero triplet loss) are recorded.
    """

    def __init__(
        self,
        margin: float = 0.2,
        type_of_triplets: str = "semihard",
        p_other_album: float = 0.0,
        p_same_genre: float = 0.0,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if type_of_triplets not in MINING_TYPES:
            raise ConfigError(f"type_of_triplets must be one of {MINING_TYPES}")
        for name, p in (("p_other_album", p_other_album), ("p_same_genre", p_same_genre)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {p}")
        self.margin = float(margin)
        self.type_of_triplets = type_of_triplets
        self.p_other_album = float(p_other_album)
        self.p_same_genre = float(p_same_genre)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.add_to_recordable_attributes(
            list_of_names=["num_candidates", "active_fraction"], is_stat=True
        )
        self._albums = self._genres = None
        self.num_candidates = 0
        self.active_fraction = 0.0

    def forward(self, embeddings, labels, ref_emb=None, ref_labels=None, albums=None, genres=None):
        if (albums is not None or genres is not None) and ref_emb is not None:
            raise ConfigError("side information needs the batch as its own reference (ref_emb=None)")
        self._albums, self._genres = albums, genres
        try:
            return super().forward(embeddings, labels, ref_emb, ref_labels)
        finally:
            self._albums = self._genres = None

    def _restrict(self, mask: torch.Tensor, preferred: torch.Tensor, p: float) -> torch.Tensor:
        if p <= 0.0:
            return mask
        coin = torch.rand(mask.shape[0], generator=self.generator).to(mask.device) < p
        use = coin & preferred.any(dim=1)
        return torch.where(use[:, None], preferred, mask)

    def mine(self, embeddings, labels, ref_emb, ref_labels):
        labels = labels.reshape(-1)
        ref_labels = ref_labels.reshape(-1)
        same = labels[:, None] == ref_labels[None, :]
        pos = same.clone()
        if ref_emb is embeddings:
            pos.fill_diagonal_(False)
        neg = ~same
        if self._albums is not None:
            alb = torch.as_tensor(self._albums, device=labels.device).reshape(-1)
            pos = self._restrict(pos, pos & (alb[:, None] != alb[None, :]), self.p_other_album)
        if self._genres is not None:
            gen = torch.as_tensor(self._genres, device=labels.device).reshape(-1)
            neg = self._restrict(neg, neg & (gen[:, None] == gen[None, :]), self.p_same_genre)
        a, p, n = torch.nonzero(pos[:, :, None] & neg[:, None, :], as_tuple=True)
        mat = self.distance(embeddings, ref_emb)
        ap, an = mat[a, p], mat[a, n]
        tm = ap - an if self.distance.is_inverted else an - ap
        violating = tm <= self.margin
        self.num_candidates = int(len(a))
        self.active_fraction = float(violating.float().mean()) if len(a) else 0.0
        if self.type_of_triplets == "hard":
            keep = violating & (tm <= 0)
        elif self.type_of_triplets == "semihard":
            keep = violating & (tm > 0)
        else:
            keep = violating
        return a[keep], p[keep], n[keep]


class SearchIndex(Protocol):
    """What index mining needs from an ``artdb.indexer`` index (``TorchExactIndex``, ``FaissIndex``)."""

    def add(self, vectors, ids) -> None: ...

    def search(self, queries, k: int): ...


def other_artist_neighbours(
    index: SearchIndex, vectors: np.ndarray, artists: np.ndarray, k: int, max_same: int | None = None
) -> np.ndarray:
    """``[n, k]`` row indices of each row's nearest rows by *other* artists (``-1`` padded).

    ``index`` must be empty; rows are added with ids ``0..n-1``. ``max_same`` bounds how many
    same-artist rows may precede the other-artist ones (default: the largest artist's size).
    """
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    artists = np.asarray(artists)
    n = len(vecs)
    if max_same is None:
        max_same = int(np.unique(artists, return_counts=True)[1].max())
    kk = int(min(n, k + max_same))
    index.add(vectors=vecs, ids=np.arange(n, dtype=np.int64))
    _, ids = index.search(vecs, kk)
    ids = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids, dtype=np.int64)
    out = np.full((n, k), -1, dtype=np.int64)
    valid = ids >= 0
    other = valid & (artists[np.clip(ids, 0, None)] != artists[:, None])
    for i in range(n):
        row = ids[i][other[i]][:k]
        out[i, : len(row)] = row
    return out
