"""Training, index mining, collapse guard and checkpoints on a tiny synthetic catalog.

The synthetic "log-mel" catalog (``synthetic_training_data``) gives each artist spectral peaks and
a temporal modulation, each album a production EQ and gain, each excerpt noise: an embedding must
learn to ignore the album to cluster albums by artist.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from artdb.core.analysis.clustering import fit_threshold, make_homonym_groups
from artdb.core.errors import ArtdbError, ConfigError, ModelMismatchError
from artdb.core.learn.checkpoint import load_checkpoint, save_checkpoint
from artdb.core.learn.config import CatalogTooSmallError, TrainConfig, TrainingData, pick_device
from artdb.core.learn.loop import CollapseGuard, TrainingCollapsedError, train
from artdb.core.learn.networks import ModelConfig, build_model, embed
from artdb.core.learn.validation import album_centroids, split_artists, validation_count
from artdb.core.synth.training_data import synthetic_training_data

TINY = dict(
    embedding_dim=32, channels=(8, 16, 16, 32), artists_per_batch=8, per_artist=4,
    val_fraction=0.25, val_every=25, log_every=5, lr=3e-3, num_threads=1,
    stats_weight=0.0,  # the CNN alone: these tests are about what training learns
)


@pytest.fixture(scope="module")
def data():
    return synthetic_training_data(n_artists=40, album_strength=1.0, seed=0)


@pytest.fixture(scope="module")
def heldout():
    # other artists (and other genre envelopes) than anything seen in training or validation
    return synthetic_training_data(n_artists=24, album_strength=1.0, seed=99)


def heldout_ari(model, d: TrainingData) -> float:
    vecs = embed(model, d.features)
    units, unit_artists = album_centroids(vecs, d.artists, d.albums)
    groups = make_homonym_groups(unit_artists, np.random.default_rng(5), sizes=(2, 4))
    return fit_threshold(groups, units, unit_artists)[1]


def test_ml_semihard_beats_untrained_on_heldout_artists(data, heldout):
    cfg = TrainConfig(method="ml", mining="semihard", steps=150, patience=0, **TINY)
    torch.manual_seed(cfg.seed)
    untrained = build_model(ModelConfig(n_mels=data.n_mels, embedding_dim=32, channels=(8, 16, 16, 32)))
    events = []

    def progress(stage, done, total=None, **info):  # artdb.core.progress's protocol
        events.append({"stage": stage, "step": done, "total": total, **info})

    result = train(data, cfg, progress=progress)
    assert result.status == "completed"
    before, after = heldout_ari(untrained, heldout), heldout_ari(result.model, heldout)
    assert after > before + 0.15, (before, after)
    assert result.best_val_ari > result.initial_val_ari
    assert 0 < result.threshold < 2
    steps = [e for e in events if e["event"] == "step"]
    assert {"step", "loss", "active_fraction", "spread"} <= set(steps[0])
    assert any(e["event"] == "val" and "val_ari" in e for e in events)
    assert all(e["stage"] == "train" and e["total"] == 150 for e in events)
    assert [{k: v for k, v in e.items() if k not in ("stage", "total")} for e in events] == result.history
    # validation artists never appear in training classes
    assert not set(result.val_artists) & set(result.class_ids)


def test_cl_runs_quietly(data, capsys):
    result = train(data, TrainConfig(method="cl", steps=20, val_excerpts=1, **TINY))
    assert capsys.readouterr() == ("", "")  # library code never prints
    assert result.status in ("completed", "early_stopped")
    head = result.model.classifier
    assert head is not None and head.out_features == len(result.class_ids)
    assert any("ce" in e for e in result.history if e["event"] == "step")
    assert embed(result.model, data.features[:3]).shape == (3, 32)


def test_joint_runs_with_hard_schedule_and_crops(data):
    cfg = TrainConfig(method="joint", steps=20, hard_after=0.5, cl_weight=0.5, crop_frames=32, **TINY)
    result = train(data, cfg)
    step_events = [e for e in result.history if e["event"] == "step"]
    assert all("ce" in e and "triplet" in e for e in step_events)
    assert any(e["event"] == "mining" and e["type"] == "hard" for e in result.history)


def test_index_mining_refreshes_and_reports_cost(data):
    cfg = TrainConfig(mining="index", steps=20, index_refresh_every=8, index_budget=None, **TINY)
    result = train(data, cfg)
    refreshes = [e for e in result.history if e["event"] == "refresh"]
    assert len(refreshes) == 2 and result.timings["n_refresh"] == 2
    assert 0 < result.timings["refresh_fraction"] < 1


def test_deterministic_on_cpu(data):
    cfg = TrainConfig(steps=6, **{**TINY, "val_fraction": 0.0, "log_every": 1})
    a, b = train(data, cfg), train(data, cfg)
    la = [e["loss"] for e in a.history if e["event"] == "step"]
    lb = [e["loss"] for e in b.history if e["event"] == "step"]
    assert la == lb
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_trains_from_memmap(data, tmp_path):
    path = tmp_path / "features.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=data.features.shape)
    mm[:] = data.features
    mm.flush()
    ro = np.memmap(path, dtype=np.float16, mode="r", shape=data.features.shape)
    d = TrainingData(ro, data.artists, data.albums, data.genres)
    cfg = TrainConfig(steps=3, epochs=None, **{**TINY, "val_fraction": 0.0})
    assert train(d, cfg).steps == 3
    assert embed(build_model(ModelConfig(n_mels=32, channels=(4, 8))), ro[:5]).shape == (5, 128)


def test_epochs_set_the_number_of_steps(data):
    cfg = TrainConfig(epochs=0.5, **{**TINY, "val_fraction": 0.0})
    # 480 tracks, 32 per batch: half an epoch is 8 steps
    assert train(data, cfg).steps == 8


def test_split_is_by_artist(data, rng):
    tr, val = split_artists(data.artists, data.albums, 0.25, rng)
    assert len(val) == 10 and not set(tr) & set(val)
    assert set(tr) | set(val) == set(np.unique(data.artists))


def _single_album(d: TrainingData) -> TrainingData:
    # every artist's tracks on one album (a catalog of single-album artists)
    return dataclasses.replace(d, albums=d.artists.copy())


def test_validation_falls_back_to_tracks_without_multi_album_artists(data):
    single = _single_album(data)
    cfg = TrainConfig(method="ml", steps=50, patience=0, **{**TINY, "log_every": 25})
    result = train(single, cfg)
    assert result.val_unit == "track" and result.summary()["val_unit"] == "track"
    assert len(result.val_artists) == 10 and not set(result.val_artists) & set(result.class_ids)
    vals = [e for e in result.history if e["event"] == "val"]
    assert [e["step"] for e in vals] == [0, 25, 50]  # validation ran: model selection works
    assert np.isfinite(result.initial_val_ari) and np.isfinite(result.threshold)
    assert result.best_step > 0 and result.best_val_ari > result.initial_val_ari
    # album unit asked explicitly: no held-out artist qualifies, so no validation (old behaviour)
    album = train(single, dataclasses.replace(cfg, val_unit="album", steps=2))
    assert album.val_unit == "album" and album.val_artists == [] and np.isnan(album.initial_val_ari)
    # a few multi-album artists (8 of 40) are not a multi-album catalog: tracks still
    few = dataclasses.replace(data, albums=np.where(data.artists < 8, data.albums, data.artists + 10_000))
    assert train(few, dataclasses.replace(cfg, steps=1)).val_unit == "track"
    # multi-album catalogs keep the paper's album unit under "auto"
    assert train(data, dataclasses.replace(cfg, steps=1)).val_unit == "album"
    with pytest.raises(ConfigError):
        TrainConfig(val_unit="page")


def _constant_model(n_mels):
    model = build_model(ModelConfig(n_mels=n_mels, embedding_dim=32, channels=(8, 16, 16, 32)))
    with torch.no_grad():
        model.encoder.proj.weight.zero_()
        model.encoder.proj.bias.fill_(1.0)
    return model


def test_collapse_guard_rolls_back_constant_model(data):
    model = _constant_model(data.n_mels)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(steps=30, collapse_warmup=2, lr=1e-9, **{k: v for k, v in TINY.items() if k != "lr"})
    result = train(data, cfg, model=model)
    assert result.status == "collapsed"
    assert "collapsed" in result.message and "rolled back" in result.message
    assert result.steps == 5
    for k, v in result.model.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.equal(v, initial[k]), k
    with pytest.raises(TrainingCollapsedError, match="collapsed"):
        train(data, dataclasses.replace(cfg, on_collapse="raise"), model=_constant_model(data.n_mels))


def test_collapse_guard_on_huge_learning_rate(data):
    cfg = TrainConfig(steps=60, collapse_warmup=5, **{**TINY, "lr": 1e3, "val_fraction": 0.0})
    cfg = dataclasses.replace(cfg, lr_schedule="constant")
    result = train(data, cfg)
    assert result.status == "collapsed", result.history[-3:]


def test_collapse_guard_unit():
    g = CollapseGuard(min_spread=0.1, patience=2, warmup=0)
    assert g.update(0.1, 1.0, 0.5) is None
    assert g.update(0.2, 0.0, 1.0) is None
    assert "collapsed" in g.update(0.2, 0.0, 1.0)
    assert "nan" in CollapseGuard().update(float("nan"), 1.0)


def test_config_validation_and_round_trip():
    with pytest.raises(ConfigError):
        TrainConfig(method="svm")
    with pytest.raises(ConfigError):
        TrainConfig(mining="random")
    with pytest.raises(ConfigError):
        TrainConfig(p_same_genre=1.5)
    cfg = TrainConfig(channels=(4, 8), mining="index")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"nope": 1})
    with pytest.raises(ConfigError):
        TrainingData(features=np.zeros((3, 1, 8, 8), np.float16), artists=np.zeros(2))


class _Frontend:
    """Stands in for the front-end's frozen FrontendConfig (to_dict / fingerprint)."""

    def __init__(self, **kw):
        self.kw = {"sample_rate": 16000, "n_mels": 32, "hop_length": 160, **kw}

    def to_dict(self):
        return dict(self.kw)

    def fingerprint(self):
        return "fp-" + "-".join(f"{k}{v}" for k, v in sorted(self.kw.items()))


@pytest.fixture(scope="module")
def trained(data):
    return train(data, TrainConfig(method="joint", steps=10, **TINY))


def test_checkpoint_round_trip_identical_embeddings(trained, data, tmp_path):
    path = tmp_path / "modèles" / "m.pt"
    digest = save_checkpoint(path, trained, frontend=_Frontend())
    assert len(digest) == 64
    ck = load_checkpoint(path, expect_frontend=_Frontend(), expect_sha256=digest)
    assert ck.sha256 == digest
    assert ck.frontend == _Frontend().to_dict() and ck.frontend_fingerprint == _Frontend().fingerprint()
    assert ck.summary["best_step"] == trained.best_step and ck.train_config["method"] == "joint"
    assert ck.metrics["class_ids"] == trained.class_ids
    x = data.features[:6]
    np.testing.assert_array_equal(embed(trained.model, x), embed(ck.model, x))
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_checkpoint_refuses_other_frontend(trained, tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, trained, frontend=_Frontend())
    with pytest.raises(ModelMismatchError, match="hop_length: model 160 vs features 256"):
        load_checkpoint(path, expect_frontend=_Frontend(hop_length=256))
    with pytest.raises(ModelMismatchError):
        load_checkpoint(path, expect_frontend={"sample_rate": 22050})
    with pytest.raises(ArtdbError, match="sha256"):
        load_checkpoint(path, expect_sha256="0" * 64)


def test_checkpoint_rejects_foreign_file(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtdbError, match="not a loadable checkpoint"):
        load_checkpoint(bad)
    torch.save({"hello": 1}, bad)
    with pytest.raises(ArtdbError, match="not an artdb model checkpoint"):
        load_checkpoint(bad)


def test_hybrid_model_appends_weighted_standardised_stats(data, tmp_path):
    from artdb.core.learn.embedders import StatsEmbedder

    cfg = TrainConfig(method="ml", mining="index", index_refresh_every=2, index_budget=None, steps=4,
                      **{**TINY, "val_fraction": 0.0, "stats_weight": 0.64})
    result = train(data, cfg)
    mcfg = result.model.cfg
    assert (mcfg.stats_dim, mcfg.cnn_dim, mcfg.embedding_dim) == (76, 32, 108)
    assert any(e["event"] == "refresh" for e in result.history)  # index mining on the CNN part
    x = data.features[:8]
    v = embed(result.model, x)
    cnn = embed(result.model, x, hybrid=False)
    stats = StatsEmbedder.fit(data.features).embed(x)  # standardised on every track, like training
    assert v.shape == (8, 108) and cnn.shape == (8, 32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    # cosine of the hybrid = (1 - w) cos_cnn + w cos_stats
    np.testing.assert_allclose(v @ v.T, 0.36 * (cnn @ cnn.T) + 0.64 * (stats @ stats.T), atol=2e-4)
    # the standardisation travels in the checkpoint
    path = tmp_path / "h.pt"
    save_checkpoint(path, result, frontend=_Frontend())
    np.testing.assert_array_equal(embed(load_checkpoint(path).model, x), v)
    with pytest.raises(ConfigError):
        TrainConfig(stats_weight=1.0)
    with pytest.raises(ConfigError):
        ModelConfig(n_mels=32, embedding_dim=77, stats_dim=76, stats_weight=0.5)  # 1 dim left for the CNN


def test_side_info_sets_the_sampling_options():
    assert TrainConfig.from_side_info() == TrainConfig()  # artdb train's default: both
    genre = TrainConfig.from_side_info("genre", p_same_genre=0.3, p_other_album=0.9, steps=7)
    assert (genre.p_same_genre, genre.same_genre_share, genre.p_other_album, genre.steps) == (
        0.3, 0.5, 0.0, 7)
    album = TrainConfig.from_side_info("album", p_same_genre=0.3)
    assert (album.p_same_genre, album.same_genre_share, album.p_other_album) == (0.0, 0.0, 0.8)
    none = TrainConfig.from_side_info("none", method="cl")
    assert (none.p_same_genre, none.same_genre_share, none.p_other_album, none.method) == (
        0.0, 0.0, 0.0, "cl")
    with pytest.raises(ConfigError, match="side_info"):
        TrainConfig.from_side_info("tags")
    assert pick_device("cuda:1") == "cuda:1"
    assert pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")


# -- small catalogs --------------------------------------------------------------------------------
# artdb train's batch (16 artists x 4 tracks) and validation share (0.2), on the tiny network
SMALL = {**TINY, "artists_per_batch": 16, "per_artist": 4, "val_fraction": 0.2, "val_every": 2}


@pytest.mark.parametrize(
    "n_artists, n_val, P",
    [(2, 0, 2), (3, 0, 3), (7, 2, 5), (15, 3, 12)],  # 7: 0.2 of 7 rounds to 1, raised to a group of 2
)
def test_small_catalogs_train_with_the_batch_fitted(n_artists, n_val, P):
    d = synthetic_training_data(n_artists=n_artists, albums_per_artist=1, tracks_per_album=3, seed=1)
    result = train(d, TrainConfig(steps=4, patience=0, **SMALL))
    assert result.status == "completed" and result.steps == 4
    assert len(result.val_artists) == n_val and len(result.class_ids) == n_artists - n_val
    assert not set(result.val_artists) & set(result.class_ids)
    # what was used is recorded: in the config kept with the model, in adapted/notes and the history
    assert (result.train_config["artists_per_batch"], result.train_config["per_artist"]) == (P, 3)
    assert result.adapted["artists_per_batch"] == {"asked": 16, "used": P}
    assert result.adapted["per_artist"] == {"asked": 4, "used": 3}  # 3 tracks per artist
    assert result.summary()["adapted"] == result.adapted and result.summary()["notes"] == result.notes
    assert f"{P} artists per batch (asked 16)" in result.notes[0]
    adapt = [e for e in result.history if e["event"] == "adapt"]
    assert adapt == [{"event": "adapt", "step": 0, "adapted": result.adapted, "notes": result.notes}]
    if n_val:  # validation selects the model and fits the threshold
        assert np.isfinite(result.initial_val_ari) and np.isfinite(result.threshold)
        assert [e["step"] for e in result.history if e["event"] == "val"] == [0, 2, 4]
    else:  # too few to hold any out: all train, and the notes say so
        assert np.isnan(result.threshold) and any(n.startswith("no validation") for n in result.notes)
    vecs = embed(result.model, d.features)
    assert vecs.shape == (d.n_tracks, 32) and np.isfinite(vecs).all()


def test_small_catalog_with_uneven_artists_and_index_mining():
    # 5 artists of 1, 2, 2, 5 and 8 tracks: m = the median 2; the single-track artist repeats its track
    d = synthetic_training_data(n_artists=5, albums_per_artist=1, tracks_per_album=8, seed=2)
    keep = np.concatenate([np.flatnonzero(d.artists == a)[:k] for a, k in enumerate([1, 2, 2, 5, 8])])
    d = TrainingData(d.features[keep], d.artists[keep], d.albums[keep], d.genres[keep])
    cfg = TrainConfig(steps=4, mining="index", index_refresh_every=2, index_budget=None, method="joint",
                      **SMALL)
    result = train(d, cfg)
    assert result.status == "completed" and result.val_artists == []  # 4 with 2+ tracks: none held out
    assert (result.train_config["artists_per_batch"], result.train_config["per_artist"]) == (5, 2)
    assert result.model.classifier.out_features == 5
    assert any(e["event"] == "refresh" for e in result.history)


def test_below_the_minimum_refuses_saying_what_is_needed():
    d = synthetic_training_data(n_artists=3, albums_per_artist=1, tracks_per_album=3, seed=1)
    one = TrainingData(d.features[:5], d.artists[:5], d.albums[:5], d.genres[:5])  # 3 + 2 tracks
    assert train(one, TrainConfig(steps=1, **SMALL)).steps == 1  # 2 artists of 2+ tracks: enough
    rows = [0, 1, 2, 3, 6]  # artist 0: 3 tracks; artists 1 and 2: one each
    few = TrainingData(d.features[rows], d.artists[rows], d.albums[rows], d.genres[rows])
    msg = ("training needs at least 2 artist pages with 2+ tracks each (a triplet takes two tracks of one "
           "artist and one track of another); found 1 such page (3 in all, 5 tracks; 2 with fewer than 2)")
    with pytest.raises(CatalogTooSmallError, match=re.escape(msg)):
        train(few, TrainConfig(steps=1, **SMALL))
    assert isinstance(CatalogTooSmallError("x"), ConfigError)  # the CLI's clean message, exit 1


def test_large_catalogs_keep_the_configured_values(data):
    # 40 artists of 12 tracks: 8 held out, 32 train; P = 16 and m = 4 fit, nothing adapts
    result = train(data, TrainConfig(steps=1, **{**SMALL, "val_every": 25}))
    assert (result.train_config["artists_per_batch"], result.train_config["per_artist"]) == (16, 4)
    assert result.adapted == {} and result.notes == [] and len(result.val_artists) == 8
    assert not any(e["event"] == "adapt" for e in result.history)
    assert result.train_config == TrainConfig(steps=1, **{**SMALL, "val_every": 25}).to_dict()
    assert validation_count(data.artists, TrainConfig(val_fraction=0.25)) == (10, 10, "")
    assert validation_count(data.artists, TrainConfig(val_fraction=0.0)) == (0, 0, "")
