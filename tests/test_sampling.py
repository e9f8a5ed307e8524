"""Samplers and miners: invariants with known answers, on tiny hand-made label sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artdb.core.errors import ConfigError
from artdb.core.learn.sampling import (
    ArtistBatchSampler,
    NeighbourBatchSampler,
    SideInfoTripletMiner,
    fit_batch_shape,
    other_artist_neighbours,
)
from artdb.indexer import FaissIndex, TorchExactIndex


def _catalog(n_artists=12, albums=3, tracks=3, n_genres=3):
    artists, album_ids, genres = [], [], []
    for a in range(n_artists):
        for b in range(albums):
            for _ in range(tracks):
                artists.append(a)
                album_ids.append(a * 100 + b)
                genres.append(a % n_genres)
    return np.array(artists), np.array(album_ids), np.array(genres)


def test_sampler_m_per_artist_and_album_spread():
    artists, albums, genres = _catalog()
    s = ArtistBatchSampler(artists, albums, genres, artists_per_batch=4, per_artist=3, batches=20, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 20
    for b in batches:
        assert len(b) == 12
        arts, counts = np.unique(artists[b], return_counts=True)
        assert len(arts) == 4 and (counts == 3).all()
        # 3 albums per artist and m=3: the round-robin puts each track on a different album
        for a in arts:
            rows = [i for i in b if artists[i] == a]
            assert len(set(albums[rows])) == 3


def test_sampler_repeats_tracks_of_small_artists_and_is_seeded():
    artists = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    s1 = ArtistBatchSampler(artists, artists_per_batch=3, per_artist=4, batches=5, seed=7)
    s2 = ArtistBatchSampler(artists, artists_per_batch=3, per_artist=4, batches=5, seed=7)
    b1, b2 = list(s1), list(s2)
    assert b1 == b2
    for b in b1:
        assert (np.unique(artists[b], return_counts=True)[1] == 4).all()


def test_sampler_same_genre_share():
    artists, albums, genres = _catalog(n_artists=30, n_genres=5)
    art_genre = {a: a % 5 for a in range(30)}

    def same_genre_rate(share):
        s = ArtistBatchSampler(artists, albums, genres, artists_per_batch=2, per_artist=2,
                               batches=400, same_genre_share=share, seed=3)
        pairs = [np.unique(artists[b]) for b in s]
        return np.mean([art_genre[p[0]] == art_genre[p[1]] for p in pairs])

    assert same_genre_rate(1.0) == 1.0
    # with share 0 the second artist is uniform: P(same genre) = 5/29
    assert abs(same_genre_rate(0.0) - 5 / 29) < 0.07
    assert abs(same_genre_rate(0.5) - (0.5 + 0.5 * 5 / 29)) < 0.08


def test_sampler_rejects_bad_config():
    artists = np.arange(3).repeat(2)
    with pytest.raises(ConfigError):
        ArtistBatchSampler(artists, artists_per_batch=4, per_artist=2)
    with pytest.raises(ConfigError):
        ArtistBatchSampler(artists, artists_per_batch=2, per_artist=1)


def test_miner_known_triplets():
    # 1-D embeddings on a line; artist 0 at 0.0 and 0.1, artist 1 at 0.25 and 1.0
    emb = torch.tensor([[0.0], [0.1], [0.25], [1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    from pytorch_metric_learning.distances import LpDistance

    dist = LpDistance(normalize_embeddings=False)
    semi = SideInfoTripletMiner(margin=0.2, type_of_triplets="semihard", distance=dist)
    a, p, n = semi(emb, labels)
    got = sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    # margin d(a,n) - d(a,p) in (0, 0.2]: (0,1,2): .25-.1; (1,0,2): .15-.1; (3,2,1): .9-.75
    assert got == [(0, 1, 2), (1, 0, 2), (3, 2, 1)]
    hard = SideInfoTripletMiner(margin=0.2, type_of_triplets="hard", distance=dist)
    a, p, n = hard(emb, labels)
    # d(2,3)=.75 > d(2,1)=.15 and d(2,0)=.25: anchor 2's negatives are closer than its positive
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist())) == [(2, 3, 0), (2, 3, 1)]
    assert hard.num_candidates == 8


def _batch(n_artists=6, per_artist=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_artists).repeat_interleave(per_artist)
    albums = labels * 10 + torch.arange(per_artist).repeat(n_artists) % 2  # two albums per artist
    genres = labels % 2
    emb = torch.nn.functional.normalize(torch.randn(len(labels), 8, generator=g), dim=1)
    return emb, labels, albums, genres


def test_miner_other_album_positives_when_available():
    emb, labels, albums, genres = _batch()
    m = SideInfoTripletMiner(margin=10.0, type_of_triplets="all", p_other_album=1.0)
    a, p, n = m(emb, labels, albums=albums, genres=genres)
    assert len(a) > 0
    assert (albums[a] != albums[p]).all()
    assert (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all()
    # without the preference, same-album positives occur
    m0 = SideInfoTripletMiner(margin=10.0, type_of_triplets="all", p_other_album=0.0)
    a, p, n = m0(emb, labels, albums=albums, genres=genres)
    assert (albums[a] == albums[p]).any()


def test_miner_falls_back_when_no_other_album():
    emb, labels, _, genres = _batch()
    one_album = labels.clone()  # every artist has a single album
    m = SideInfoTripletMiner(margin=10.0, type_of_triplets="all", p_other_album=1.0)
    a, p, n = m(emb, labels, albums=one_album, genres=genres)
    assert set(a.tolist()) == set(range(len(labels)))  # every anchor still gets positives


@pytest.mark.parametrize("p_same", [0.0, 0.3, 0.7, 1.0])
def test_miner_same_genre_negatives_at_configured_rate(p_same):
    emb, labels, albums, genres = _batch(n_artists=8, per_artist=4)
    anchors_restricted = []
    for seed in range(25):
        m = SideInfoTripletMiner(margin=10.0, type_of_triplets="all", p_same_genre=p_same, seed=seed)
        a, p, n = m(emb, labels, albums=albums, genres=genres)
        for anchor in range(len(labels)):
            neg = n[a == anchor]
            anchors_restricted.append(bool((genres[neg] == genres[anchor]).all()))
    rate = np.mean(anchors_restricted)
    assert abs(rate - p_same) < 0.06, rate


def test_miner_active_fraction():
    emb, labels, albums, genres = _batch()
    m = SideInfoTripletMiner(margin=10.0, type_of_triplets="all")
    m(emb, labels)
    assert m.active_fraction == 1.0  # huge margin: every triplet violates it
    collapsed = torch.nn.functional.normalize(torch.ones_like(emb), dim=1)
    m2 = SideInfoTripletMiner(margin=0.2, type_of_triplets="hard")
    a, _, _ = m2(collapsed, labels)
    assert m2.active_fraction == 1.0 and len(a) == m2.num_candidates


@pytest.mark.parametrize("make_index", [lambda d: TorchExactIndex(d), lambda d: FaissIndex.exact(d)])
def test_other_artist_neighbours_exact(make_index):
    # artists 0 and 1 on one side, artist 2 far away
    vecs = np.array([[1, 0], [0.99, 0.14], [0.95, 0.31], [0.9, 0.44], [-1, 0], [-0.99, -0.14]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    artists = np.array([0, 0, 1, 1, 2, 2])
    nb = other_artist_neighbours(make_index(2), vecs, artists, k=2)
    assert nb.shape == (6, 2)
    assert (artists[nb] != artists[:, None]).all()
    assert nb[0].tolist() == [2, 3] and nb[1].tolist() == [2, 3]
    assert nb[2].tolist() == [1, 0]
    assert artists[nb[4]].tolist() == [1, 1]


def test_neighbour_sampler_pairs_anchor_and_neighbour_artists():
    artists, albums, genres = _catalog(n_artists=10, albums=2, tracks=2)
    s = NeighbourBatchSampler(artists, albums, genres, artists_per_batch=4, per_artist=2,
                              batches=10, pair_share=1.0, seed=0)
    # each track's only neighbour: the first track of the "next" artist
    first = {a: np.flatnonzero(artists == a)[0] for a in range(10)}
    nb = np.array([[first[(artists[i] + 1) % 10]] for i in range(len(artists))])
    s.set_neighbours(nb)
    for b in s:
        arts = artists[b]
        assert len(np.unique(arts)) == 4
        # pairs (a, a+1) with the neighbour track leading the second artist's tracks
        heads = b[0::2]
        assert (artists[heads[1]] - artists[heads[0]]) % 10 == 1
        assert heads[1] == first[artists[heads[1]]]
    assert s.pairs_drawn >= 10


def test_fit_batch_shape_shrinks_only_what_the_catalog_cannot_fill():
    artists, _, _ = _catalog(n_artists=12, albums=3, tracks=3)  # 12 artists of 9 tracks
    assert fit_batch_shape(artists, 4, 3) == (4, 3)  # fits: unchanged
    assert fit_batch_shape(artists, 16, 4) == (12, 4)  # P: the artists there are
    uneven = np.repeat(np.arange(5), [1, 2, 2, 3, 9])
    assert fit_batch_shape(uneven, 16, 4) == (5, 2)  # m: the median artist's tracks
    assert fit_batch_shape(np.repeat([0, 1], [1, 1]), 16, 4) == (2, 2)  # floors of 2
    # the fitted shape samples: every artist in every batch, m tracks each (repeats where fewer)
    P, m = fit_batch_shape(uneven, 16, 4)
    for b in ArtistBatchSampler(uneven, artists_per_batch=P, per_artist=m, batches=5, seed=0):
        arts, counts = np.unique(uneven[b], return_counts=True)
        assert len(arts) == 5 and (counts == 2).all()
