"""The evaluation protocol (artdb.core.evaluation): splits, CV thresholds, controls, tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

import artdb.core.analysis.clustering as clustering
from artdb.core.errors import ConfigError
from artdb.core.evaluation import EvalConfig, from_arrays, make_split, protocol as P, run_evaluation
from artdb.core.evaluation.report import markdown
from artdb.core.evaluation.systems import BUILTIN, DEFAULT_SYSTEMS, head_config, train_config
from artdb.core.learn.backbone import HeadConfig
from artdb.core.learn.config import TrainConfig
from artdb.core.synth.training_data import synthetic_training_data
from artdb.core.vectors.export import Embeddings, write_embeddings


def _backbone_features(artists, patches=2, dim=953, noise=1.0, seed=0, offset=0.0):
    """Synthetic backbone features ``[n, patches, dim]``: one cluster per artist (953: penultimate +
    mean_pool, the layers the default model reads; 200: the penultimate alone)."""
    rng = np.random.default_rng(seed)
    codes = P.codes(artists)
    centres = rng.normal(size=(codes.max() + 1, dim)) * 3
    x = centres[codes][:, None, :] + noise * rng.normal(size=(len(codes), patches, dim)) + offset
    return x.astype(np.float16)


@pytest.fixture(scope="module")
def small():
    d = synthetic_training_data(n_artists=24, albums_per_artist=3, tracks_per_album=3, n_excerpts=2,
                                n_mels=24, n_frames=24, n_genres=3, seed=3)
    return from_arrays(d.features, d.artists, d.albums, d.genres, sources=d.genres,
                       backbone_features=_backbone_features(d.artists, noise=3.0, seed=3))


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
                            "index_refresh_every": 2, "artists_per_batch": 4, "per_artist": 2},
                     head={"steps": 5, "hidden": 16, "head_dim": 8})
    assert {"musicnn-torch", "backbone-head", "artdb-default", "cnn-hybrid"} <= set(cfg.systems)
    rep = run_evaluation(small, cfg)
    json.dumps(rep, default=str)  # JSON-ready
    systems = set(cfg.systems)
    by_key: dict = {}
    for r in rep["results"]:
        key = (r["seed"], r["experiment"], r["n_train_artists"], r["unit"], r["groups"])
        by_key.setdefault(key, []).append(r)
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


def test_cnn_hybrid_system_is_what_artdb_train_backbone_none_trains():
    cfg = train_config(BUILTIN["cnn-hybrid"], {}, seed=0, steps=10, n_artists=20)
    default = TrainConfig.from_side_info()
    for name in ("method", "mining", "p_same_genre", "same_genre_share", "p_other_album", "stats_weight"):
        assert getattr(cfg, name) == getattr(default, name), name
    assert cfg.stats_weight > 0 and cfg.p_same_genre > 0 and cfg.p_other_album > 0


def test_artdb_default_is_the_backbone_head_artdb_train_fits():
    # artdb train (no options): --backbone musicnn, HeadConfig(seed=--seed) (cli/train.py)
    for seed in (0, 3):
        assert head_config(BUILTIN["artdb-default"], seed) == HeadConfig(seed=seed)
        assert head_config(BUILTIN["backbone-head"], seed) == HeadConfig(seed=seed)
    assert head_config(BUILTIN["musicnn-torch"], 1) == HeadConfig(seed=1, steps=0, layer="penultimate",
                                                                  whitening=0.0)
    assert BUILTIN["artdb-default"].fit_key == BUILTIN["backbone-head"].fit_key
    assert BUILTIN["musicnn-torch"].fit_key != BUILTIN["backbone-head"].fit_key
    assert all(BUILTIN[n].trained and BUILTIN[n].needs_backbone
               for n in ("musicnn-torch", "backbone-head", "artdb-default"))


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
        for _ in range(3):
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


# -- backbone systems ------------------------------------------------------------------------------
def _clustered(n_artists=16, per_artist=4, noise=0.3, patches=3, seed=0, **kw):
    artists = np.repeat([f"a{i:02d}" for i in range(n_artists)], per_artist)
    albums = np.tile(np.arange(per_artist) % 2, n_artists)
    feats = np.zeros((len(artists), 1, 4, 4), np.float16)
    bb = _backbone_features(artists, patches=patches, noise=noise, seed=seed)
    return from_arrays(feats, artists, albums, backbone_features=bb, **kw)


BACKBONE_RUN = dict(seeds=(0,), group_draws=2, units=("track",), experiments=("unbalanced",),
                    test_fraction=0.5)


def test_musicnn_torch_clusters_separated_artists_random_does_not():
    ds = _clustered()
    rep = run_evaluation(ds, EvalConfig(systems=("musicnn-torch", "random"), **BACKBONE_RUN))
    got = {r["system"]: r["ari"] for r in rep["summary"] if r["groups"] == "random"}
    assert got["musicnn-torch"] > 0.95
    assert abs(got["random"]) < 0.3
    info = next(r["info"] for r in rep["results"] if r["system"] == "musicnn-torch")
    assert info["head_weight"] == 0.0 and info["head_steps"] == 0 and info["dim"] == 200
    assert rep["backbone"] == ds.backbone and rep["backbone"]["patches_per_track"] == 3
    assert rep["config"]["backbone_patches"] is None
    assert "Backbone features: musicnn" in markdown(rep)


def test_backbone_standardisation_never_sees_test_artists(monkeypatch):
    import artdb.core.evaluation.systems as systems

    # test artists' features sit far from the rest: a standardisation that saw them would show it
    ds = _clustered(n_artists=12)
    cfg = EvalConfig(systems=("musicnn-torch", "backbone-head"),
                     head={"steps": 3, "hidden": 8, "head_dim": 4}, **BACKBONE_RUN)
    split = make_split(ds, cfg, 0)
    test_rows = np.isin(ds.artists, split.test_artists)
    bb = np.asarray(ds.backbone_features, dtype=np.float32)
    bb[test_rows] += 50.0
    ds = from_arrays(ds.features, ds.artists, ds.albums, sources=ds.sources,
                     backbone_features=bb.astype(np.float16))
    seen = []
    real = systems.train_backbone_head

    def spy(features, artists, cfg, **kw):
        result = real(features, artists, cfg, **kw)
        seen.append((set(np.asarray(artists).tolist()), result.model.pooled_mean.numpy().copy(), cfg))
        return result

    monkeypatch.setattr(systems, "train_backbone_head", spy)
    run_evaluation(ds, cfg)
    assert [c.steps for *_, c in seen] == [0, 3]
    pool_mean = np.asarray(ds.backbone_features, dtype=np.float64)[~test_rows].mean(axis=1).mean(axis=0)
    for artists, mean, _ in seen:
        assert artists == set(split.train_artists.tolist())
        assert not artists & set(split.test_artists.tolist())
        np.testing.assert_allclose(mean, pool_mean[:len(mean)], atol=1e-3)  # layers start at 0


def test_artdb_default_vectors_equal_backbone_head():
    from artdb.core.evaluation.systems import fit_system

    ds = _clustered(n_artists=12, noise=2.0)
    split = make_split(ds, EvalConfig(**BACKBONE_RUN), 1)
    pool = ds.subset(np.flatnonzero(np.isin(ds.artists, split.train_artists)))
    test = ds.subset(split.test_rows)
    head = {"steps": 20, "hidden": 16, "head_dim": 8, "head_weights": (1.0,), "min_val_groups": 1}
    vecs = {}
    for name in ("artdb-default", "backbone-head", "musicnn-torch"):
        f = fit_system(BUILTIN[name], pool, seed=1, steps=0, base_train={}, frontend={}, n_mels=4,
                       base_head=head)
        vecs[name] = f.embed_dataset(test)
    # the head got its share (the only one offered)
    assert vecs["artdb-default"].shape == (len(test), 953 + 8)  # penultimate + mean_pool, head
    np.testing.assert_array_equal(vecs["artdb-default"], vecs["backbone-head"])
    assert vecs["musicnn-torch"].shape == (len(test), 200)
    # in a run both are reported, from one fit, on the same split
    rep = run_evaluation(ds, EvalConfig(systems=("backbone-head", "artdb-default"), head=head,
                                        **BACKBONE_RUN))
    by = {r["system"]: r for r in rep["results"] if r["groups"] == "random"}
    assert by["artdb-default"]["split_id"] == by["backbone-head"]["split_id"]
    assert by["artdb-default"]["per_group_ari"] == by["backbone-head"]["per_group_ari"]


def test_backbone_features_follow_subsets_and_are_required():
    ds = _clustered(n_artists=4)
    rows = np.array([5, 0, 9])
    sub = ds.subset(rows)
    np.testing.assert_array_equal(np.asarray(sub.backbone_features), np.asarray(ds.backbone_features)[rows])
    assert sub.backbone == ds.backbone
    assert sub.backbone_layer_slices() == {"penultimate": (0, 200), "mean_pool": (200, 953)}
    alone = from_arrays(ds.features, ds.artists, backbone_features=_backbone_features(ds.artists, dim=200))
    assert alone.backbone_layer_slices() == {"penultimate": (0, 200)}
    with pytest.raises(ConfigError, match="read backbone features"):
        run_evaluation(from_arrays(ds.features, ds.artists),
                       EvalConfig(systems=("musicnn-torch",), seeds=(0,)))
    with pytest.raises(ConfigError, match="patches per track"):
        run_evaluation(ds, EvalConfig(systems=("musicnn-torch",), seeds=(0,), backbone_patches=5))
    from artdb.core.errors import CatalogError

    with pytest.raises(CatalogError, match="backbone features have shape"):
        from_arrays(ds.features[:3], ds.artists[:3], backbone_features=np.zeros((2, 3, 200)))
    # only systems that read them make an evaluation compute backbone features
    assert EvalConfig(systems=("mfcc", "random")).backbone_config() is None
    six = EvalConfig(systems=("mfcc", "artdb-default"), backbone_patches=6).backbone_config()
    assert six.patches_per_track == 6
    assert EvalConfig.preset().backbone_config().patches_per_track == 20  # BackboneConfig default


def test_catalog_dataset_computes_backbone_features_once(tmp_path, monkeypatch):
    pytest.importorskip("musicnn")
    from audiofiles import write_audio

    import artdb.core.evaluation.dataset as dataset
    from artdb.core.features.backbone import BackboneConfig

    for i in range(4):
        write_audio(tmp_path / "cat" / f"t{i}.wav", seconds=3.5, freq=200 + 90 * i, seed=i,
                    artist=f"Artist {i % 2}", album=f"Album {i % 2}", title=f"T{i}")
    work = tmp_path / "work"
    bcfg = BackboneConfig(patches_per_track=2, layers=("penultimate",))
    with dataset.open_catalog_dataset(tmp_path / "cat", workdir=work, workers=1) as (ds, _):
        assert ds.backbone_features is None and len(ds) == 4
        mels = np.asarray(ds.features)

    def refuse(*a, **k):
        raise AssertionError("recomputed features that were stored")

    class LogMelsRefused(dataset.FeatureExtractor):  # the backbone decodes with its own extractor
        extract = refuse

    # a rerun with a backbone computes only the backbone features ...
    monkeypatch.setattr(dataset, "FeatureExtractor", LogMelsRefused)
    with dataset.open_catalog_dataset(tmp_path / "cat", workdir=work, workers=1, backbone=bcfg) as (ds, _):
        bb = np.asarray(ds.backbone_features)
        assert bb.shape == (4, 2, 200) and np.isfinite(bb).all() and ds.backbone == bcfg.to_dict()
        np.testing.assert_array_equal(np.asarray(ds.features), mels)
        order = list(ds.track_ids)
    # ... and the next one nothing
    monkeypatch.setattr(dataset.BackboneExtractor, "extract", refuse)
    with dataset.open_catalog_dataset(tmp_path / "cat", workdir=work, workers=1, backbone=bcfg) as (ds, _):
        assert list(ds.track_ids) == order
        np.testing.assert_array_equal(np.asarray(ds.backbone_features), bb)
        assert ds.summary()["backbone"]["patches_per_track"] == 2


def test_same_source_thresholds_are_fitted_on_every_draws_random_groups():
    # one reference draw leaves a handful of groups on a small test set: every draw's are used
    artists, albums, sources = [], [], []
    for a in range(12):
        for _ in range(3):
            artists.append(f"a{a}"), albums.append(f"s{a // 2}"), sources.append(f"s{a // 2}")
    ds = from_arrays(np.zeros((len(artists), 1, 4, 4), np.float16), artists, albums, sources=sources)
    split = make_split(ds, EvalConfig(seeds=(0,), test_fraction=1.0, units=("track",), group_draws=3), 0)
    random_groups = [g for groups, _ in split.group_sets[("track", "random")].draws for g in groups]
    reference = split.group_sets[("track", "same-source")].reference
    assert len(split.group_sets[("track", "random")].draws) == 3
    assert sorted(map(sorted, (g.tolist() for g in reference))) == sorted(
        map(sorted, ([str(a) for a in g] for g in random_groups)))
