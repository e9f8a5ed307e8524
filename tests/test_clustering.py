"""Homonym groups, threshold clustering and ARI, with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.cluster.hierarchy import linkage
from sklearn.metrics import adjusted_rand_score

from artdb.core.analysis.clustering import (
    adjusted_rand,
    cluster_with_threshold,
    cut_tree,
    cv_thresholds,
    fit_threshold,
    linkage_tree,
    make_homonym_groups,
    mean_ari,
)
from artdb.core.errors import ConfigError
from artdb.core.vectors.aggregate import excerpts_to_tracks, l2_normalize, mean_normalized


def test_mean_normalized_known_answer():
    v = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0], [5.0, 5.0]])
    groups, means = mean_normalized(v, np.array([7, 7, 3, 9]))
    assert groups.tolist() == [3, 7, 9]
    np.testing.assert_allclose(means[0], [0, -1], atol=1e-6)
    np.testing.assert_allclose(means[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-6)


def test_excerpts_to_tracks_matches_mean_normalized(rng):
    x = rng.normal(size=(5, 3, 4))
    _, ref = mean_normalized(x.reshape(15, 4), np.repeat(np.arange(5), 3))
    np.testing.assert_allclose(excerpts_to_tracks(x), ref, atol=1e-6)
    assert np.allclose(np.linalg.norm(l2_normalize(x[0]), axis=1), 1)


def test_make_homonym_groups_partitions_eligible_artists(rng):
    # artist 9 has one album only: never grouped with min_albums=2
    album_artists = np.array([a for a in range(10) for _ in range(2 if a < 9 else 1)])
    groups = make_homonym_groups(album_artists, rng, sizes=(2, 4), min_albums=2)
    flat = np.concatenate(groups)
    assert len(flat) == len(set(flat.tolist()))
    assert 9 not in flat
    assert all(2 <= len(g) <= 4 for g in groups)
    with pytest.raises(ConfigError):
        make_homonym_groups(album_artists, rng, sizes=(1, 3))


def test_two_blobs_two_clusters(rng):
    a = l2_normalize(np.array([1.0, 0, 0]) + rng.normal(scale=0.05, size=(5, 3)))
    b = l2_normalize(np.array([0, 1.0, 0]) + rng.normal(scale=0.05, size=(4, 3)))
    labels = cluster_with_threshold(np.vstack([a, b]), threshold=0.5)
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]
    assert cluster_with_threshold(a[:1], 0.5).tolist() == [0]


@pytest.mark.parametrize("method", ["average", "complete", "single"])
def test_scipy_sweep_matches_sklearn(rng, method):
    x = rng.normal(size=(25, 6))
    z = linkage_tree(x, method, "cosine")
    np.testing.assert_array_equal(z, linkage(x, method=method, metric="cosine"))
    for t in np.quantile(z[:, 2], [0.1, 0.4, 0.7, 0.95]) + 1e-4:
        sk = cluster_with_threshold(x, t, linkage=method, metric="cosine")
        assert adjusted_rand_score(sk, cut_tree(z, t)) == 1.0
    # a cut exactly at a merge height refuses that merge, as scikit-learn does
    h = np.sort(z[:, 2])
    assert len(set(cut_tree(z, h[-1]).tolist())) == 2 and len(set(cut_tree(z, h[-1] * 1.01).tolist())) == 1


def test_fit_threshold_and_mean_ari_separable(rng):
    centres = l2_normalize(rng.normal(size=(6, 16)))
    labels = np.repeat(np.arange(6), 4)
    vecs = l2_normalize(centres[labels] + rng.normal(scale=0.05, size=(24, 16)))
    groups = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5, 0])]
    t, ari, curve = fit_threshold(groups, vecs, labels)
    assert ari == pytest.approx(1.0)
    assert mean_ari(groups, vecs, labels, t) == pytest.approx(1.0)
    assert len(curve["thresholds"]) == len(curve["ari"])
    # a threshold of 0 separates every album: ARI 0 for each group
    assert mean_ari(groups, vecs, labels, 1e-9) == pytest.approx(0.0)


def test_cv_thresholds_fit_each_fold_on_the_other_folds(rng):
    centres = l2_normalize(rng.normal(size=(8, 16)))
    labels = np.repeat(np.arange(8), 3)
    vecs = l2_normalize(centres[labels] + rng.normal(scale=0.05, size=(24, 16)))
    groups = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5, 6]), np.array([7, 0])]
    folds = [1, 0, 1, 0]
    got = list(cv_thresholds(groups, folds, vecs, labels))
    assert [f for f, _, _ in got] == [0, 1]
    for f, t, test in got:
        assert [g.tolist() for g in test] == [g.tolist() for g, k in zip(groups, folds) if k == f]
        train = [g for g, k in zip(groups, folds) if k != f]
        assert t == fit_threshold(train, vecs, labels)[0]
        assert mean_ari(test, vecs, labels, t) == pytest.approx(1.0)  # separable: held-out groups recovered
    # a single fold has nothing else to fit on: its own groups are used
    [(f, t, test)] = cv_thresholds(groups, [3, 3, 3, 3], vecs, labels, max_candidates=50)
    assert f == 3 and len(test) == 4 and t == fit_threshold(groups, vecs, labels, max_candidates=50)[0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=0, max_size=40))
def test_adjusted_rand_is_sklearns(pairs):
    """The fast ARI used by threshold fitting equals sklearn's on any labelling, limit cases included
    (empty, one cluster each, all singletons)."""
    truth = np.array([t for t, _ in pairs], dtype=np.int64)
    pred = np.array([p for _, p in pairs], dtype=np.int64)
    expected = adjusted_rand_score(truth, pred)
    assert adjusted_rand(truth, pred) == pytest.approx(expected, abs=1e-12)
    assert adjusted_rand(truth.astype(str), pred) == pytest.approx(expected, abs=1e-12)
