"""The metric head on backbone features (learn.backbone) and ``artdb train --backbone musicnn``.

Known answers on arrays; then the real thing end to end: a tiny synthetic catalog ingested, musicnn's
features computed from its audio, a head trained, checkpointed (weights_only), registered, activated
and the catalog embedded through the registry's embedder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from artdb.cli.main import cli
from artdb.core.errors import ConfigError
from artdb.core.learn.backbone import (
    BackboneHead,
    HeadConfig,
    embed_backbone,
    layer_span,
    train_backbone_head,
)
from artdb.core.learn.checkpoint import load_checkpoint, save_checkpoint
from artdb.core.synth import SynthConfig, generate_catalog

SLICES = {"penultimate": (0, 12), "mean_pool": (12, 20)}


def _artist_patches(rng, n_artists=8, tracks=4, patches=3, spread=0.3, dim=20):
    """Each artist a random centre in the ``penultimate`` slice; patches scattered around it."""
    centres = rng.normal(size=(n_artists, dim)) * 3
    feats, labels = [], []
    for a in range(n_artists):
        for _ in range(tracks):
            feats.append(centres[a] + spread * rng.normal(size=(patches, dim)))
            labels.append(f"artist {a}")
    return np.asarray(feats, dtype=np.float16), np.asarray(labels)


def test_pooled_vector_is_the_standardised_patch_mean(rng):
    feats, labels = _artist_patches(rng)
    res = train_backbone_head(feats, labels, HeadConfig(steps=0, layer="penultimate", whitening=0.0),
                              layer_slices=SLICES)
    model = res.model
    assert model.head_weight == 0.0 and model.dim == 12  # no head trained: the pooled part alone
    x = feats.astype(np.float64)[..., :12].mean(axis=1)
    want = (x - x.mean(0)) / x.std(0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(embed_backbone(model, feats), want, atol=2e-3)
    # validation ran on held-out artists and separable artists cluster perfectly
    assert len(res.val_artists) >= 2 and res.val_ari[0.0] == pytest.approx(1.0)
    assert res.threshold is not None and 0 < res.threshold < 2


def test_another_catalog_is_standardised_with_the_training_tracks_pooled_in(rng):
    """Scored on another catalog (artdb evaluate --model), the statistics are those of the training
    tracks and the scored ones together, exactly as if fitted on both at once."""
    from artdb.core.learn.adapt import fitted_on
    from artdb.core.learn.backbone import fit_standardisers, standardisation

    train, labels = _artist_patches(rng, n_artists=6)
    other, _ = _artist_patches(rng, n_artists=3, tracks=5)
    other = (other.astype(np.float32) * 2 + 5).astype(np.float16)  # another catalog: other scale and centre
    model = train_backbone_head(train, labels, HeadConfig(steps=0, whitening=0.0), layer_slices=SLICES).model
    state = fitted_on(other, model, prior_tracks=len(train))
    assert state["n_tracks"] == len(train) + len(other)
    both = BackboneHead(model.layer_start, model.layer_stop, model.cfg)
    fit_standardisers(both, np.concatenate([train, other]))
    for key, want in standardisation(both).items():
        np.testing.assert_allclose(state[key], want, rtol=1e-4, atol=1e-5)
    alone = fitted_on(other, model)  # no prior: the scored catalog alone, as a rebuild in its home
    assert alone["n_tracks"] == len(other)
    assert not np.allclose(alone["pooled_mean"], state["pooled_mean"], atol=1e-3)


def test_within_artist_whitening_is_the_shrunk_scatter_inverse_root_and_tightens_artists(rng, tmp_path):
    feats, labels = _artist_patches(rng, n_artists=10, spread=1.0)
    cfg = HeadConfig(steps=0, layer="penultimate")
    assert (cfg.whitening, cfg.whitening_target) == (0.8, 0.25)  # the defaults
    model = train_backbone_head(feats, labels, cfg, layer_slices=SLICES).model
    patches = feats.astype(np.float64)[..., :12]
    x = patches.mean(axis=1)
    z = (x - x.mean(0)) / x.std(0)
    resid = [z[labels == a] - z[labels == a].mean(0) for a in np.unique(labels)]
    spread = np.array([np.mean(np.sum(x ** 2, axis=1)) for x in resid])
    keep = spread <= np.quantile(spread, 0.75)  # the most spread pages (mixed ones) are left out
    assert 0 < keep.sum() < len(resid)
    r = np.concatenate([x for x, k in zip(resid, keep) if k])
    scatter = r.T @ r / len(r)
    # the shrinkage target: 3/4 the mean-variance identity, 1/4 the scatter of patches around
    # their track's mean (every track's, in the same standardised units), at the same trace
    p = ((patches - x[:, None]) / x.std(0)).reshape(-1, 12)
    patch_scatter = p.T @ p
    target = 0.75 * np.eye(12) * np.trace(scatter) / 12 + 0.25 * patch_scatter * np.trace(scatter) / np.trace(
        patch_scatter)
    w, v = np.linalg.eigh(0.2 * scatter + 0.8 * target)
    want = z @ (v * w ** -0.5) @ v.T
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = embed_backbone(model, feats)
    np.testing.assert_allclose(got, want, atol=2e-3)
    cfg0 = HeadConfig(steps=0, layer="penultimate", whitening_target=0.0)
    identity = train_backbone_head(feats, labels, cfg0, layer_slices=SLICES).model
    w, v = np.linalg.eigh(0.2 * scatter + 0.8 * np.eye(12) * np.trace(scatter) / 12)
    want = z @ (v * w ** -0.5) @ v.T
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(embed_backbone(identity, feats), want, atol=2e-3)

    def within_over_between(vecs):
        d = 1 - vecs @ vecs.T
        same = labels[:, None] == labels[None, :]
        off = ~np.eye(len(vecs), dtype=bool)
        return d[same & off].mean() / d[~same].mean()

    plain = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert within_over_between(got) < within_over_between(plain)  # artists come out tighter
    # the matrix travels with the checkpoint; a model made without whitening has no such buffer
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    again = load_checkpoint(path).model
    np.testing.assert_allclose(embed_backbone(again, feats), got, atol=1e-6)
    old = BackboneHead(0, 12, HeadConfig(steps=0, whitening=0.0))
    assert "pooled_whiten" not in old.state_dict()


def test_patch_scatter_target_damps_what_varies_within_a_track(rng):
    """Directions along which a track's own patches vary (sections of one piece) are damped beyond
    what the pages alone show; a model stored before the option keeps the identity target."""
    feats, labels = _artist_patches(rng, n_artists=10, spread=0.3)
    feats = feats.astype(np.float64)
    feats[..., 0] += 4.0 * rng.normal(size=feats.shape[:2])  # dimension 0 swings within every track
    feats = feats.astype(np.float16)

    def gain(target):
        model = train_backbone_head(feats, labels, HeadConfig(steps=0, layer="penultimate",
                                                              whitening_target=target),
                                    layer_slices=SLICES).model
        w = model.pooled_whiten.numpy()
        return abs(w[0, 0]) / np.abs(np.diag(w))[1:].mean()

    assert gain(0.25) < 0.8 * gain(0.0)
    assert gain(0.5) < gain(0.25)  # damped the more, the larger its share
    assert HeadConfig.from_dict({k: v for k, v in HeadConfig().to_dict().items()
                                 if k != "whitening_target"}).whitening_target == 0.0
    with pytest.raises(ConfigError, match="whitening_target"):
        HeadConfig(whitening_target=1.5)


def _genre_catalog(rng, n_genres=3, per_genre=4, tracks=4, patches=3, dim=20):
    """Artists around their genre's centre; the genres far apart along a few directions."""
    genre_centres = rng.normal(size=(n_genres, dim)) * 6
    feats, labels, genres = [], [], []
    for g in range(n_genres):
        for a in range(per_genre):
            centre = genre_centres[g] + rng.normal(size=dim) * 2
            for _ in range(tracks):
                feats.append(centre + 0.5 * rng.normal(size=(patches, dim)))
                labels.append(f"artist {g}-{a}")
                genres.append(f"genre {g}")
    return np.asarray(feats, dtype=np.float16), np.asarray(labels), np.asarray(genres)


def test_genre_damping_halves_the_directions_between_genre_means(rng):
    """After the whitening the genre means' directions are shrunk by ``genre_damping``: the known
    answer from the undamped model, and artists of one genre come out farther apart relative to
    artists of different genres; no genre tags (or one genre) leave the model as it was."""
    feats, labels, genres = _genre_catalog(rng)
    cfg = HeadConfig(steps=0, layer="penultimate")
    plain = train_backbone_head(feats, labels, HeadConfig(steps=0, layer="penultimate", genre_damping=0.0),
                                layer_slices=SLICES, genres=genres)
    damped = train_backbone_head(feats, labels, cfg, layer_slices=SLICES, genres=genres)
    assert plain.genre_directions == 0 and damped.genre_directions == 2  # 3 genres: 2 directions
    w0 = plain.model.pooled_whiten.numpy().astype(np.float64)
    x = feats.astype(np.float64)[..., :12].mean(axis=1)
    z = (x - x.mean(0)) / x.std(0) @ w0
    means = np.stack([z[genres == g].mean(0) for g in np.unique(genres)])
    c = (means - z.mean(0)) * np.sqrt([np.sum(genres == g) for g in np.unique(genres)])[:, None]
    between = c.T @ c
    u = np.linalg.eigh(between)[1][:, -2:]  # the between-genre scatter's two leading directions
    np.testing.assert_allclose(damped.model.pooled_whiten.numpy(), w0 - 0.5 * w0 @ u @ u.T, atol=1e-4)
    want = z - 0.5 * z @ u @ u.T
    np.testing.assert_allclose(embed_backbone(damped.model, feats),
                               want / np.linalg.norm(want, axis=1, keepdims=True), atol=2e-3)

    def same_genre_over_cross_genre(vecs):
        d = 1 - vecs @ vecs.T
        other_artist = labels[:, None] != labels[None, :]
        same_genre = genres[:, None] == genres[None, :]
        return d[other_artist & same_genre].mean() / d[~same_genre].mean()

    assert (same_genre_over_cross_genre(embed_backbone(damped.model, feats))
            > 1.2 * same_genre_over_cross_genre(embed_backbone(plain.model, feats)))
    for no_genres in (None, np.full(len(labels), ""), np.full(len(labels), "rock")):
        r = train_backbone_head(feats, labels, cfg, layer_slices=SLICES, genres=no_genres)
        assert r.genre_directions == 0
        np.testing.assert_array_equal(r.model.pooled_whiten.numpy(), w0)
    # untagged tracks do not count as a genre of their own
    partly = np.where(np.arange(len(genres)) % 3 == 0, "", genres)
    assert train_backbone_head(feats, labels, cfg, layer_slices=SLICES, genres=partly).genre_directions == 2
    # a catalog with more tags than GENRE_DIRECTIONS: the directions kept are those of the genres
    # holding the tracks, not of the one-track tags (each a track's own direction)
    many = genres.astype(object).copy()
    many[::4] = [f"tag {i}" for i in range(len(many[::4]))]  # 12 one-track tags beside the 3 genres
    r = train_backbone_head(feats, labels, cfg, layer_slices=SLICES, genres=many.astype(str))
    assert r.genre_directions == 8
    names = np.unique(many)
    c = np.stack([(z[many == g].mean(0) - z.mean(0)) * np.sqrt(np.sum(many == g)) for g in names])
    u8 = np.linalg.eigh(c.T @ c)[1][:, -8:]  # the between-genre scatter's 8 leading directions
    np.testing.assert_allclose(r.model.pooled_whiten.numpy(), w0 - 0.5 * w0 @ u8 @ u8.T, atol=1e-4)
    # a model stored before the option damps nothing
    stored = damped.model.config()["head"]
    del stored["genre_damping"]
    assert HeadConfig.from_dict(stored).genre_damping == 0.0


def test_whitening_on_a_large_catalog_reads_a_sample_of_pages(rng, monkeypatch):
    """Past WHITENING_MAX_TRACKS tracks the scatter comes from a seeded sample of whole pages (memory
    stays flat on a catalog of millions): a different but valid matrix, the same one on a rerun."""
    import artdb.core.learn.backbone as backbone

    feats, labels = _artist_patches(rng, n_artists=10, spread=1.0)
    cfg = HeadConfig(steps=0, layer="penultimate")
    full = train_backbone_head(feats, labels, cfg, layer_slices=SLICES).model.pooled_whiten.numpy()
    monkeypatch.setattr(backbone, "WHITENING_MAX_TRACKS", 12)  # 3 of the 10 pages (4 tracks each)
    runs = [train_backbone_head(feats, labels, cfg, layer_slices=SLICES).model.pooled_whiten.numpy()
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.isfinite(runs[0]).all() and not np.allclose(runs[0], full, atol=1e-3)
    np.testing.assert_allclose(runs[0], runs[0].T, atol=1e-5)  # S^-1/2 of a symmetric scatter


def test_whitening_is_not_fitted_on_a_page_that_mixes_artists(rng, monkeypatch):
    """A homonym page spreads along the directions that tell its artists apart: were it in the
    scatter, whitening would damp them and the audit could no longer split that page."""
    import artdb.core.learn.backbone as backbone

    feats, labels = _artist_patches(rng, n_artists=10, spread=0.5)
    pages = np.where(np.isin(labels, ["artist 0", "artist 1"]), "Eclipse", labels)

    def halves_apart(quantile):
        monkeypatch.setattr(backbone, "WHITENING_PAGE_QUANTILE", quantile)
        model = train_backbone_head(feats, pages, HeadConfig(steps=0, layer="penultimate"),
                                    layer_slices=SLICES).model
        v = embed_backbone(model, feats)
        a, b = v[labels == "artist 0"].mean(0), v[labels == "artist 1"].mean(0)
        within = np.mean([np.linalg.norm(v[labels == f"artist {i}"] - v[labels == f"artist {i}"].mean(0),
                                         axis=1).mean() for i in range(2, 10)])
        return np.linalg.norm(a - b) / within

    # measured 16.3 vs 10.0: the default keeps the mixed page out of the scatter
    assert halves_apart(0.75) > 1.3 * halves_apart(1.0)


def test_the_default_reads_penultimate_and_mean_pool_and_layers_join_only_side_by_side(rng):
    three = {"penultimate": (0, 6), "mean_pool": (6, 14), "max_pool": (14, 20)}
    feats, labels = _artist_patches(rng)
    res = train_backbone_head(feats, labels, HeadConfig(steps=0), layer_slices=three)
    assert HeadConfig().layer == "penultimate+mean_pool"
    assert (res.model.layer_start, res.model.layer_stop) == (0, 14)
    assert layer_span("all", three) == (0, 20) and layer_span("mean_pool+max_pool", three) == (6, 20)
    assert layer_span("max_pool", three) == (14, 20)
    with pytest.raises(ConfigError, match="not side by side"):
        layer_span("penultimate+max_pool", three)
    with pytest.raises(ConfigError, match="not stored"):
        train_backbone_head(feats, labels, HeadConfig(steps=0, layer="taggram"), layer_slices=three)


def test_head_share_is_chosen_on_held_out_artists(rng):
    feats, labels = _artist_patches(rng, n_artists=10, spread=1.5)
    cfg = HeadConfig(steps=40, hidden=32, head_dim=8, seed=1, min_val_groups=1, layer="penultimate")
    res = train_backbone_head(feats, labels, cfg, layer_slices=SLICES)
    assert set(res.val_ari) == set(cfg.head_weights)
    best = max(res.val_ari.values())
    w = res.model.head_weight
    # the share is 0 unless it beat the pooled vector by min_gain, else the best one
    if w == 0.0:
        assert best < res.val_ari[0.0] + cfg.min_gain
    else:
        assert res.val_ari[w] == best and best >= res.val_ari[0.0] + cfg.min_gain
    assert res.model.dim == 12 + (8 if w > 0 else 0)


def test_too_few_artists_to_validate_keeps_the_pooled_vector(rng):
    feats, labels = _artist_patches(rng, n_artists=3, tracks=2)
    res = train_backbone_head(feats, labels, HeadConfig(steps=5), layer_slices=SLICES)
    assert res.model.head_weight == 0.0 and res.threshold is None
    assert any("no validation" in n for n in res.notes)


def test_checkpoint_round_trip_is_weights_only(tmp_path, rng):
    feats, labels = _artist_patches(rng, n_artists=10, spread=1.0)
    res = train_backbone_head(feats, labels, HeadConfig(steps=10, hidden=16, head_dim=4,
                                                        head_weights=(0.5,), min_gain=-1.0,
                                                        min_val_groups=1),
                              layer_slices=SLICES)
    assert res.model.head_weight == 0.5  # forced: the only candidate, gain requirement off
    path = tmp_path / "m.pt"
    sha = save_checkpoint(path, res.model, frontend={"name": "musicnn", "patches_per_track": 3})
    ck = load_checkpoint(path, expect_sha256=sha)  # torch.load(weights_only=True) inside
    assert isinstance(ck.model, BackboneHead) and ck.model.head_weight == 0.5
    np.testing.assert_array_equal(embed_backbone(ck.model, feats), embed_backbone(res.model, feats))
    payload = torch.load(path, weights_only=True)
    assert payload["model_config"]["arch"] == "backbone-head"


def test_cli_train_default_is_the_musicnn_backbone(tmp_path, artdb_home):
    root = tmp_path / "cat"
    generate_catalog(root, SynthConfig(artists=8, albums_per_artist=1, tracks_per_album=3, seconds=4,
                                       genres=2, homonym_groups=0, synonym_pairs=0, seed=2, workers=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    n_tracks = sum(json.loads(r.stdout)["counts"].values())
    # no --backbone: musicnn; one 3-s patch per track keeps the real network cheap here
    r = runner.invoke(cli, ["train", "--backbone-patches", "1", "--head-steps", "5", "--name", "bb",
                            "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == "bb" and out["active"] and out["backbone"]["patches_per_track"] == 1
    r = runner.invoke(cli, ["models", "show", "bb", "--json"])
    model = json.loads(r.stdout)
    assert model["kind"] == "backbone" and model["active"]
    # the default layers (penultimate 200 + mean_pool 753), plus the head when chosen
    assert model["dim"] in (953, 953 + 128)
    assert model["config"]["backbone"]["model"] == "MSD_musicnn"
    # the catalog's two genres (album tags) reach the training: one genre direction is damped
    assert model["config"]["train"]["genre_damping"] == 0.5 and model["metrics"]["genre_directions"] == 1
    r = runner.invoke(cli, ["train", "--backbone-patches", "1", "--head-steps", "0", "--genre-damping", "0",
                            "--name", "undamped", "--no-activate", "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["genre_directions"] == 0
    undamped = json.loads(runner.invoke(cli, ["models", "show", "undamped", "--json"]).stdout)
    assert undamped["config"]["train"]["genre_damping"] == 0.0
    r = runner.invoke(cli, ["train", "--genre-damping", "1.5", "--no-progress"])
    assert r.exit_code == 2 and "--genre-damping" in r.output
    r = runner.invoke(cli, ["stats", "--json"])
    # (the undamped model was registered without activating: nothing embedded with it)
    assert {m["name"]: m["embedded_tracks"] for m in json.loads(r.stdout)["models"]} == {"bb": n_tracks,
                                                                                          "undamped": 0}
    # the index answers with the model's vectors: 3 other tracks, best first, cosine scores
    r = runner.invoke(cli, ["neighbors", "1", "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    hits = hits if isinstance(hits, list) else hits["neighbors"]
    scores = [h["score"] for h in hits]
    assert len(hits) == 3 and scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_the_threshold_is_fitted_on_several_held_out_splits_and_moves_less_with_the_draw(rng):
    """12 artists: one held-out split holds 4 of them, two or so homonym groups. Fitted on the
    groups of 8 splits together, the threshold depends less on which artists a seed holds out."""
    feats, labels = _artist_patches(rng, n_artists=12, tracks=3, spread=2.0)

    def thresholds(splits):
        out = []
        for seed in range(8):
            res = train_backbone_head(feats, labels, HeadConfig(steps=0, seed=seed, threshold_splits=splits),
                                      layer_slices=SLICES)
            out.append(res.threshold)
            assert res.threshold_splits == splits and res.summary()["threshold_splits"] == splits
            assert (res.threshold_groups > 8) == (splits == 8)  # 1-2 groups per split
        return np.asarray(out)

    one, eight = thresholds(1), thresholds(8)
    assert np.all(np.isfinite(one)) and np.all(np.isfinite(eight))
    assert eight.std() < 0.5 * one.std()
    # the first split is the one that chose the head's share: with one split nothing else is read
    res = train_backbone_head(feats, labels, HeadConfig(steps=0, seed=3, threshold_splits=1),
                              layer_slices=SLICES)
    assert res.threshold == one[3]
    # a model stored before the option fitted its threshold on one split
    assert HeadConfig.from_dict({"seed": 0}).threshold_splits == 1
    with pytest.raises(ConfigError, match="threshold_splits"):
        HeadConfig(threshold_splits=0)


def test_a_gain_on_too_few_groups_gives_the_head_no_share(rng):
    feats, labels = _artist_patches(rng, n_artists=10, spread=1.0)
    cfg = HeadConfig(steps=10, hidden=16, head_dim=4, head_weights=(0.5,), min_gain=-1.0,  # 8 groups needed
                     layer="penultimate")
    res = train_backbone_head(feats, labels, cfg, layer_slices=SLICES)
    assert res.model.head_weight == 0.0 and res.model.dim == 12
    assert any("fewer than the 8" in n for n in res.notes)


def test_rebuild_refits_the_standardisation_on_the_served_catalog(tmp_path, artdb_home):
    """A backbone model trained on one catalog, which then grows with other artists: new tracks are
    embedded with the stored statistics; ``index --rebuild-index`` refits them on every served
    track (learn.adapt) and the index then holds exactly the refitted function's vectors."""
    from artdb.core.config import Paths
    from artdb.core.features.backbone import BackboneConfig
    from artdb.core.features.store import open_backbone_store
    from artdb.core.learn.backbone import SERVED_KEY
    from artdb.core.learn.embedders import load_embedder
    from artdb.core.learn.registry import get_model
    from artdb.core.vectors.index import open_track_index
    from artdb.db.session import Catalog

    first, second = tmp_path / "first", tmp_path / "second"
    for root, seed, artists in ((first, 3, 8), (second, 4, 4)):
        generate_catalog(root, SynthConfig(artists=artists, albums_per_artist=1, tracks_per_album=3,
                                           seconds=4, genres=2, homonym_groups=0, synonym_pairs=0,
                                           seed=seed, workers=1))
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(first), "--no-progress", "--workers", "1"]).exit_code == 0
    r = runner.invoke(cli, ["train", "--backbone-patches", "1", "--head-steps", "0", "--name", "bb",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["index", str(second), "--no-progress", "--workers", "1"])
    assert r.exit_code == 0, r.output
    paths = Paths.from_home(artdb_home)
    catalog = Catalog.open(f"sqlite:///{artdb_home / 'catalog.sqlite'}")
    try:
        assert SERVED_KEY not in (get_model(catalog, "bb").config or {})
        trained_mean = load_embedder(get_model(catalog, "bb")).model.pooled_mean.numpy().copy()
        r = runner.invoke(cli, ["index", str(second), "--rebuild-index", "--no-progress", "--workers", "1"])
        assert r.exit_code == 0, r.output
        model = get_model(catalog, "bb")
        served = model.config[SERVED_KEY]
        with open_backbone_store(paths, BackboneConfig(patches_per_track=1), mode="r") as store:
            ids = np.sort(np.asarray(store.ids(), dtype=np.int64))
            feats = store.get_many(ids).astype(np.float64)
        embedder = load_embedder(model).model
        feats = feats[..., embedder.layer_start:embedder.layer_stop]  # the layers the default reads
        assert feats.shape[-1] == 953  # penultimate 200 + mean_pool 753
        assert served["n_tracks"] == len(ids) > 8 * 3  # both catalogs' tracks
        track_means = feats.mean(axis=1)
        np.testing.assert_allclose(served["pooled_mean"], track_means.mean(axis=0), rtol=1e-4, atol=1e-4)
        assert not np.allclose(served["pooled_mean"], trained_mean, atol=1e-3)  # it did move
        z = (track_means - track_means.mean(0)) / np.where(track_means.std(0) < 1e-6, 1, track_means.std(0))
        z = z @ embedder.pooled_whiten.numpy().astype(np.float64)  # fitted on the trained pages, kept
        expected = z / np.linalg.norm(z, axis=1, keepdims=True)
        index = open_track_index(catalog, paths, model)
        np.testing.assert_allclose(index.reconstruct(ids), expected, atol=2e-3)
    finally:
        catalog.close()
