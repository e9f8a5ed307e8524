"""The evaluation protocol (artdb.core.evaluation): splits, CV thresholds, controls, tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

import artdb.core.analysis.clustering as clustering
from artdb.core.evaluation import EvalConfig, from_arrays, make_split, run_evaluation
from artdb.core.evaluation import protocol as P
from artdb.core.errors import ConfigError
from artdb.core.evaluation.report import markdown
from artdb.core.evaluation.systems import BUILTIN, DEFAULT_SYSTEMS, train_config
from artdb.core.learn.config import TrainConfig
from artdb.core.vectors.export import Embeddings, write_embeddings
from artdb.core.synth.training_data import synthetic_training_data


@pytest.fixture(scope="module")
def small():
    d = synthetic_training_data(n_artists=24, albums_per_artist=3, tracks_per_album=3, n_excerpts=2,
                                n_mels=24, n_frames=24, n_genres=3, seed=3)
    return from_arrays(d.features, d.artists, d.albums, d.genres, sources=d.genres)


def _truth_vectors(artists, dim=32, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    codes = P.codes(artists)
    centres = rng.normal(size=(codes.max() + 1, dim))
    return centres[codes] + noise * rng.normal(size=(len(codes), dim))


def test_no_test_artist_in_training(small):
    cfg = EvalConfig(seeds=(0,), group_draws=2)
    for seed in (0, 1, 2):
        split = make_split(small, cfg, seed)
        assert len(split.test_artists) > 0
        assert not set(split.test_artists.tolist()) & set(split.train_artists.tolist())
        assert set(small.artists[split.test_rows]) == set(split.test_artists.tolist())
        for gs in split.group_sets.values():
            for groups, _ in gs.draws:
                for g in groups:
                    plain = {a.rsplit("@", 1)[0] for a in np.asarray(g).astype(str)}
                    assert plain <= set(split.test_artists.tolist())


def test_threshold_never_sees_the_scored_fold(monkeypatch, rng):
    artists = np.repeat(np.arange(14), 3)
    vecs = _truth_vectors(artists, noise=0.3)
    groups = P.make_groups(artists, np.arange(14), rng, (2, 4))
    folds = P.fold_of_groups(len(groups), 5, rng)
    seen = []
    real_fit = clustering.fit_threshold  # the CV over groups (clustering.cv_thresholds) fits here

    def spy(train_groups, *a, **k):
        seen.append([tuple(g.tolist()) for g in train_groups])
        return real_fit(train_groups, *a, **k)

    monkeypatch.setattr(clustering, "fit_threshold", spy)
    scores = P.cross_validated_scores(groups, vecs, artists, fold_ids=folds)
    assert len(scores.ari) == len(groups)
    assert len(seen) == len(np.unique(folds))
    for f, fitted_on in zip(np.unique(folds), seen):
        scored = {tuple(g.tolist()) for g, k in zip(groups, folds) if k == f}
        assert scored and not scored & set(fitted_on)


def test_perfect_embedding_scores_one_random_about_zero(rng):
    artists = np.repeat(np.arange(16), 3)
    groups = P.make_groups(artists, np.arange(16), rng, (2, 4))
    perfect = P.cross_validated_scores(groups, _truth_vectors(artists), artists, rng=rng).summary()
    assert perfect["ari"] == pytest.approx(1.0) and perfect["ami"] == pytest.approx(1.0)
    rand = [P.cross_validated_scores(groups, P.random_embedding(len(artists), seed=s), artists,
                                     rng=np.random.default_rng(s)).summary()["ari"] for s in range(5)]
    assert abs(np.mean(rand)) < 0.1


def test_album_units_aggregate_tracks():
    artists = np.array(["a", "a", "a", "b", "b"])
    albums = np.array(["x", "x", "y", "x", "z"])  # album "x" of a and of b are different units
    u = P.make_units(artists, albums, "album")
    assert u.n == 4 and sorted(u.artist.tolist()) == ["a", "a", "b", "b"]
    v = P.unit_vectors(np.eye(5, dtype=np.float32), u)
    assert v.shape == (4, 5) and np.allclose(np.linalg.norm(v, axis=1), 1)


def test_production_control_separates_albums_not_artists():
    albums = np.repeat(np.arange(6), 3)
    v = P.production_embedding(albums)
    same = v[0] @ v[1]
    other = v[0] @ v[3]
    assert same == pytest.approx(1.0) and other == pytest.approx(0.0)


def test_every_system_on_identical_splits(small):
    cfg = EvalConfig(seeds=(0,), steps=2, group_draws=1, sizes=(6,), embed_excerpts=1, units=("track",),
                     train={"channels": (4, 8), "embedding_dim": 8, "crop_frames": None, "val_fraction": 0.0,
                            "index_refresh_every": 2, "artists_per_batch": 4, "per_artist": 2})
    rep = run_evaluation(small, cfg)
    json.dumps(rep, default=str)  # JSON-ready
    systems = set(cfg.systems)
    by_key: dict = {}
    for r in rep["results"]:
        by_key.setdefault((r["seed"], r["experiment"], r["n_train_artists"], r["unit"], r["groups"]), []).append(r)
    assert {k[1] for k in by_key} == {"balanced", "unbalanced"}
    for key, rs in by_key.items():
        assert {r["system"] for r in rs} == systems, key
        assert len({r["split_id"] for r in rs}) == 1
        assert len({r["n_groups"] for r in rs}) == 1
    assert len({r["split_id"] for r in rep["results"]}) == 1
    md = markdown(rep)
    assert "Table 1" in md and "Table 2" in md
    for label in rep["systems"].values():
        assert label in md
    # balanced training sets: nested, equal tracks per artist, never a test artist
    assert all(r["n_train_tracks"] % r["n_train_artists"] == 0
               for r in rep["results"] if r["experiment"] == "balanced")


def test_embeddings_file_scoring(tmp_path, small):
    vecs = _truth_vectors(small.artists, seed=1)
    write_embeddings(tmp_path / "ext", Embeddings(vecs, paths=list(small.paths)), parquet=False)
    (tmp_path / "ext.jsonl").write_text("\n".join(
        json.dumps({"path": p, "vector": (-v).tolist()}) for p, v in zip(small.paths, vecs)))
    cfg = EvalConfig(systems=("random",), embeddings=(("perfect", str(tmp_path / "ext.npy")),
                                                       ("jsonl", str(tmp_path / "ext.jsonl"))),
                     seeds=(0,), group_draws=2, units=("album",), experiments=("unbalanced",))
    events = []
    rep = run_evaluation(small, cfg, progress=lambda stage, done, total=None, **info:
                         events.append((stage, done, total, info)))
    got = {(r["system"], r["groups"]): r["ari"] for r in rep["summary"]}
    assert got[("file:perfect", "random")] == pytest.approx(1.0)
    assert got[("file:jsonl", "random")] == pytest.approx(1.0)
    assert abs(got[("random", "random")]) < 0.35
    # core.progress's protocol: one split, then each system scored, seeds done out of seeds
    assert [(s, d, t, i["event"]) for s, d, t, i in events] == [("evaluate", 0, 1, "split")] + [
        ("evaluate", 0, 1, "scored")] * 3
    assert [i["system"] for *_, i in events[1:]] == ["random", "file:perfect", "file:jsonl"]
    assert events[2][3]["ari"]["album/random"] == pytest.approx(1.0)


def test_preset_is_what_artdb_evaluate_runs():
    full = EvalConfig.preset(seed=5)
    assert full.seeds == (5, 6, 7) and full.systems == DEFAULT_SYSTEMS and full.train_pool
    assert full.units == ("album", "track") and full.steps == EvalConfig().steps
    quick = EvalConfig.preset(quick=True, seed=2, unit="track")
    assert (quick.seeds, quick.steps, quick.group_draws, quick.embed_excerpts, quick.units) == (
        (2,), 60, 2, 2, ("track",))
    budget = EvalConfig.preset(quick=True, n_seeds=2, steps=7, group_draws=1, test_fraction=0.3)
    assert (budget.seeds, budget.steps, budget.group_draws, budget.test_fraction) == ((0, 1), 7, 1, 0.3)
    scored = EvalConfig.preset(models=("m1",))
    assert scored.systems == ("mfcc", "random", "production") and scored.models == ("m1",)
    assert not scored.train_pool
    assert EvalConfig.preset(systems=("ml",), models=("m1",)).systems == ("ml",)
    with pytest.raises(ConfigError):
        EvalConfig.preset(unit="page")


def test_artdb_default_system_is_what_artdb_train_trains():
    cfg = train_config(BUILTIN["artdb-default"], {}, seed=0, steps=10, n_artists=20)
    default = TrainConfig.from_side_info()
    for name in ("method", "mining", "p_same_genre", "same_genre_share", "p_other_album", "stats_weight"):
        assert getattr(cfg, name) == getattr(default, name), name
    assert cfg.stats_weight > 0 and cfg.p_same_genre > 0 and cfg.p_other_album > 0


def test_embeddings_file_missing_tracks_is_an_error(tmp_path, small):
    from artdb.core.errors import CatalogError

    write_embeddings(tmp_path / "few", Embeddings(np.ones((2, 3)), paths=small.paths[:2]), parquet=False)
    cfg = EvalConfig(systems=(), embeddings=(("few", str(tmp_path / "few.json")),), seeds=(0,))
    with pytest.raises(CatalogError, match="no vector for"):
        run_evaluation(small, cfg)


def test_same_source_groups_restrict_artists_to_the_source():
    # 12 artists; pairs of artists share a source, each artist also has a track elsewhere
    artists, albums, sources = [], [], []
    for a in range(12):
        for t in range(3):
            artists.append(f"a{a}"), albums.append(f"s{a // 2}"), sources.append(f"s{a // 2}")
        artists.append(f"a{a}"), albums.append(f"solo{a}"), sources.append(f"solo{a}")
    feats = np.zeros((len(artists), 1, 4, 4), np.float16)
    ds = from_arrays(feats, artists, albums, sources=sources)
    split = make_split(ds, EvalConfig(seeds=(0,), test_fraction=1.0, units=("track",)), 0)
    gs = split.group_sets[("track", "same-source")]
    assert gs.n_groups >= 2
    src = ds.sources[split.test_rows][gs.rows]
    assert not any(s.startswith("solo") for s in src)
    vecs = _truth_vectors(ds.artists[split.test_rows])
    from artdb.core.evaluation.runner import score_vectors

    assert score_vectors(vecs, gs, EvalConfig()).summary()["ari"] == pytest.approx(1.0)
