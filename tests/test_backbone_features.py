"""Backbone features: config and fingerprint, musicnn's log-mel in torch, the extractor against the
network itself, their store, and ingest computing them beside the log-mels (real files, real
SQLite catalog, the real MSD_musicnn weights)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from audiofiles import write_audio
from sqlalchemy import select

from artdb.core.config import Paths
from artdb.core.errors import AudioError, ConfigError, ModelMismatchError
from artdb.core.features import backbone as backbone_mod
from artdb.core.features.backbone import (
    PATCH_SAMPLES,
    BackboneConfig,
    BackboneExtractor,
    MusicnnLogMel,
    backbone_store_dir,
)
from artdb.core.features.frontend import FeatureExtractor, FrontendConfig, decode_excerpts
from artdb.core.features.frontend.logmel import LogMel
from artdb.core.features.musicnn import MusicnnBackbone, frontend as musicnn_frontend
from artdb.core.features.store import FeatureStore, feature_store_dir, open_backbone_store, open_feature_store
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import ensure_backbone_features, index_catalog, resolve_backbone
from artdb.core.learn.registry import default_frontend_config, register_model
from artdb.db.models import Track

SMALL = BackboneConfig(patches_per_track=2)


def rich_audio(path, seconds: float, seed: int, **tags):
    """A tone with harmonics, a glide and noise: more like music than a sine for the mel bands."""
    write_audio(path, seconds=seconds, sr=22050, freq=110 + 40 * seed, seed=seed, **tags)
    return path


def good_tracks(root, n: int, offset: int = 0) -> list:
    exts = [".flac", ".ogg", ".mp3", ".wav"]
    return [rich_audio(root / f"A{i % 2}" / f"t{i}{exts[i % 4]}", seconds=4 + i % 4, seed=i,
                       artist=f"Artist {i % 2}", album=f"Album {i % 3}", title=f"T{i}")
            for i in range(offset, offset + n)]


# -- config ----------------------------------------------------------------------------------------
def test_config_sizes_round_trip_and_validation():
    cfg = BackboneConfig()
    assert cfg.kind == "backbone"
    assert cfg.dim == 200 + 753 + 753
    assert cfg.layer_slices() == {"penultimate": slice(0, 200), "mean_pool": slice(200, 953),
                                  "max_pool": slice(953, 1706)}
    assert cfg.feature_shape == (20, 1706) and cfg.bytes_per_track == 20 * 1706 * 2  # 60 s per track
    dec = cfg.decode_config()
    assert dec.sample_rate == 16000 and dec.excerpt_samples == PATCH_SAMPLES == 47616
    assert dec.frames == musicnn_frontend.N_FRAMES == 187 and dec.excerpts_per_track == 20
    # JSON round trip: lists and ints come back as the declared tuple and floats.
    data = json.loads(json.dumps(SMALL.to_dict()))
    assert BackboneConfig.from_dict(data) == SMALL
    assert BackboneConfig.from_dict({**data, "silence_db": -60}).fingerprint() == SMALL.fingerprint()
    taggram = BackboneConfig(layers=["taggram", "penultimate"])
    assert taggram.dim == 250 and taggram.layer_slices()["penultimate"] == slice(50, 250)
    for bad in ({"layers": ("timbral",)}, {"layers": ()}, {"layers": ("penultimate",) * 2},
                {"model": "MSD_vgg"}, {"name": "openl3"}, {"patches_per_track": 0},
                {"min_track_seconds": 5.0}, {"short_tracks": "drop"}):
        with pytest.raises(ConfigError):
            BackboneConfig(**bad)
    with pytest.raises(ConfigError, match="unknown BackboneConfig field"):
        BackboneConfig.from_dict({**data, "hop": 1})


def test_fingerprint_stable_and_sensitive(monkeypatch):
    fp = SMALL.fingerprint()
    assert len(fp) == 16 and fp == BackboneConfig(patches_per_track=2).fingerprint()
    changed = [BackboneConfig(patches_per_track=3), BackboneConfig(patches_per_track=2, model="MTT_musicnn"),
               BackboneConfig(patches_per_track=2, layers=("mean_pool", "penultimate", "max_pool")),
               BackboneConfig(patches_per_track=2, silence_db=-50.0),
               BackboneConfig(patches_per_track=2, resample_quality="VHQ")]
    fps = {c.fingerprint() for c in changed}
    assert fp not in fps and len(fps) == len(changed)
    # The algorithm version and the weights are part of it.
    monkeypatch.setattr(backbone_mod, "ALGORITHM_VERSION", backbone_mod.ALGORITHM_VERSION + 1)
    assert SMALL.fingerprint() != fp
    monkeypatch.undo()
    assert SMALL.fingerprint() == fp
    monkeypatch.setattr(backbone_mod, "weights_identity", lambda model: "0" * 64)
    assert SMALL.fingerprint() != fp


# -- musicnn's log-mel in torch ----------------------------------------------------------------------
def test_torch_log_mel_matches_musicnn(tmp_path):
    """The same decoded excerpts through musicnn's librosa log-mel and ours: max abs diff < 1e-3
    (measured 3.5e-4: a float16 quantisation step flipped by float32 STFT rounding)."""
    path = rich_audio(tmp_path / "x.ogg", seconds=7.0, seed=3)
    excerpts = decode_excerpts(path, BackboneConfig(patches_per_track=3).decode_config())
    assert excerpts.shape == (3, PATCH_SAMPLES)
    ours = MusicnnLogMel()(excerpts).numpy()
    assert ours.shape == (3, 187, 96) and ours.dtype == np.float32
    for n, excerpt in enumerate(excerpts):
        ref = musicnn_frontend.log_mel(excerpt)
        assert ref.shape == (187, 96)
        assert np.abs(ours[n] - ref).max() < 1e-3
        assert np.abs(ours[n] - ref).mean() < 1e-5
    # Louder input: mel powers well above float16's resolution steps.
    loud = np.clip(excerpts[:1] * 3.0, -1, 1)
    assert np.abs(MusicnnLogMel()(loud).numpy()[0] - musicnn_frontend.log_mel(loud[0])).max() < 1e-3


# -- the extractor -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("bb-lib")
    paths = [rich_audio(root / "a.flac", seconds=6.0, seed=1), root / "missing.wav",
             rich_audio(root / "b.mp3", seconds=4.0, seed=2),
             rich_audio(root / "short.wav", seconds=1.5, seed=4)]  # shorter than a patch: padded
    events = []
    with BackboneExtractor(SMALL, workers=1) as bx:
        results = list(bx.extract([str(p) for p in paths], lambda *a, **k: events.append((a, k))))
        backbone = bx.backbone
    return paths, results, events, backbone


def test_extractor_output_in_order_with_failures(extracted):
    paths, results, events, _ = extracted
    assert [i for i, _, _ in results] == [0, 1, 2, 3]
    assert [p for _, p, _ in results] == [str(p) for p in paths]
    assert isinstance(results[1][2], AudioError) and "file not found" in results[1][2].reason
    for i in (0, 2, 3):
        feats = results[i][2]
        assert feats.shape == SMALL.feature_shape == (2, 1706) and feats.dtype == np.float16
        assert np.isfinite(feats).all()
        pools = SMALL.layer_slices()
        assert (feats[:, pools["max_pool"]] >= feats[:, pools["mean_pool"]] - 1e-2).all()
    assert [(a[0], a[1], a[2]) for a, _ in events] == [("backbone", n, 4) for n in (1, 2, 3, 4)]


def test_stored_layers_equal_the_network_on_the_same_patches(extracted):
    paths, results, _, _ = extracted
    reference = MusicnnBackbone.from_package("MSD_musicnn")  # loaded apart from the extractor's
    slices = SMALL.layer_slices()
    for i in (0, 2):
        excerpts = decode_excerpts(paths[i], SMALL.decode_config())
        patches = np.stack([musicnn_frontend.log_mel(x) for x in excerpts])  # musicnn's own log-mel
        ref = reference.embed_patches(patches, "cpu", layers=SMALL.layers)
        got = results[i][2].astype(np.float32)
        for name in SMALL.layers:
            np.testing.assert_allclose(got[:, slices[name]], ref[name], rtol=2e-3, atol=2e-3,
                                       err_msg=f"{name} of {paths[i].name}")


def test_a_failing_transform_costs_only_its_track(tmp_path):
    """The transform hook: a batch that raises is redone track by track; a track that still
    raises, or whose features are not finite, gets that as its error; the others are kept."""
    cfg = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)
    paths = [write_audio(tmp_path / f"{i}.wav", seconds=2.0, freq=200 + 300 * i, seed=i) for i in range(3)]
    excerpts = [decode_excerpts(p, cfg) for p in paths]
    log_mel = LogMel(cfg)

    def transform(audio):
        if len(audio) > 1:
            raise RuntimeError("batch too big for the device")
        if np.array_equal(audio[0], excerpts[1]):
            raise RuntimeError("this track breaks the network")
        out = log_mel(audio).numpy()  # an array works as well as a tensor
        if np.array_equal(audio[0], excerpts[2]):
            out[:] = float("nan")
        return out

    with FeatureExtractor(cfg, workers=0, transform=transform) as fx:
        results = [r for _, _, r in fx.extract([str(p) for p in paths])]
    np.testing.assert_array_equal(results[0], log_mel(excerpts[0][None])[0].to(torch.float16).numpy())
    assert isinstance(results[1], AudioError)
    assert results[1].reason == "computing the features failed: RuntimeError: this track breaks the network"
    assert isinstance(results[2], AudioError) and "not finite" in results[2].reason


# -- the store ---------------------------------------------------------------------------------------
def test_backbone_store_kind_and_mismatch(tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    directory = backbone_store_dir(paths, SMALL)
    assert directory.parent == paths.features and directory.name == f"musicnn-{SMALL.fingerprint()}"
    assert feature_store_dir(paths, SMALL) == directory
    feats = np.arange(2 * 2 * 1706, dtype=np.float32).reshape(2, 2, 1706).astype(np.float16)
    with open_backbone_store(paths, SMALL) as store:
        assert store.kind == "backbone" and store.shape == (2, 1706) and store.record_bytes == 2 * 1706 * 2
        store.put_many([5, 9], feats)
    header = json.loads((directory / "frontend.json").read_text())
    assert header["kind"] == "backbone" and header["backbone"] == SMALL.to_dict()
    with FeatureStore.open(directory, mode="r") as reader:  # adopts the stored config
        assert reader.config == SMALL
        np.testing.assert_array_equal(reader.get_many([9, 5]), feats[::-1])
    with pytest.raises(ModelMismatchError, match="patches_per_track: 2 != 3"):
        FeatureStore.open(directory, BackboneConfig(patches_per_track=3), mode="r")
    with pytest.raises(ModelMismatchError, match="layers"):
        FeatureStore.open(directory, BackboneConfig(patches_per_track=2, layers=("penultimate",)))
    with pytest.raises(ModelMismatchError, match="holds backbone features, not frontend"):
        FeatureStore.open(directory, FrontendConfig())
    # Other weights (the same parameters): refused by the stored fingerprint.
    header["fingerprint"] = "0" * 16
    (directory / "frontend.json").write_text(json.dumps(header))
    with pytest.raises(ModelMismatchError, match="weights or the algorithm differ"):
        FeatureStore.open(directory, SMALL, mode="r")
    with pytest.raises(ConfigError, match="needs a BackboneConfig"):
        open_backbone_store(paths, FrontendConfig())


def test_log_mel_store_without_kind_still_opens(tmp_path):
    """Stores written before backbone features existed have no "kind" in their header."""
    cfg = FrontendConfig(excerpts_per_track=2, n_mels=8, excerpt_seconds=0.5, min_track_seconds=0.5)
    directory = tmp_path / "old"
    with FeatureStore.open(directory, cfg) as store:
        store.put_many([1], np.ones((1, *cfg.feature_shape), np.float16))
    header = json.loads((directory / "frontend.json").read_text())
    assert header.pop("kind") == "frontend"
    (directory / "frontend.json").write_text(json.dumps(header))
    with FeatureStore.open(directory, cfg, mode="r") as store:
        assert store.kind == "frontend" and store.ids().tolist() == [1]
    with pytest.raises(ModelMismatchError, match="holds frontend features, not backbone"):
        FeatureStore.open(directory, SMALL)


# -- ingest ------------------------------------------------------------------------------------------
@pytest.fixture
def catalog(sqlite_url):
    """SQLite only: the ingest path is database-agnostic and the backbone runs are the slow part."""
    from artdb.db.session import Catalog

    cat = Catalog.open(sqlite_url)
    yield cat
    cat.close()


def test_resolve_backbone_follows_the_active_model(catalog):
    assert resolve_backbone(catalog) is None and resolve_backbone(catalog, "auto") is None
    assert resolve_backbone(catalog, "musicnn") == BackboneConfig()
    assert resolve_backbone(catalog, SMALL) is SMALL
    register_model(catalog, name="head", kind="mfcc", dim=38, activate=True,
                   config={"frontend": FrontendConfig().to_dict(), "backbone": SMALL.to_dict()})
    assert resolve_backbone(catalog) == SMALL == resolve_backbone(catalog, "musicnn")
    assert resolve_backbone(catalog, "none") is None
    with pytest.raises(ConfigError, match="backbone must be one of"):
        resolve_backbone(catalog, "vggish")


@pytest.fixture
def spies(monkeypatch):
    """Counts of log-mel batches and backbone batches computed (any extractor in the process)."""
    calls = {"log_mel": 0, "backbone": 0}
    log_mel_call, embed = LogMel.__call__, BackboneExtractor.embed

    def counted_log_mel(self, audio):
        calls["log_mel"] += 1
        return log_mel_call(self, audio)

    def counted_embed(self, audio):
        calls["backbone"] += len(audio)
        return embed(self, audio)

    monkeypatch.setattr(LogMel, "__call__", counted_log_mel)
    monkeypatch.setattr(BackboneExtractor, "embed", counted_embed)
    return calls


def test_ingest_with_backbone(catalog, tmp_path, spies):
    paths = Paths.from_home(tmp_path / "home")
    root = tmp_path / "lib"
    good_tracks(root, 3)
    # Log-mels pad a 2-s track; this backbone config rejects tracks shorter than a patch.
    rich_audio(root / "A0" / "short.flac", seconds=2.0, seed=9, artist="Artist 0", album="S", title="S")
    (root / "A1" / "garbage.flac").write_bytes(os.urandom(3000))
    config = BackboneConfig(patches_per_track=2, short_tracks="reject")
    frontend = default_frontend_config(catalog)

    # 1. log-mels only (no active model, backbone "auto"): no backbone store at all.
    first = index_catalog(catalog, paths, root, IngestOptions(workers=1))
    assert first.counts == {"added": 4, "error": 1}
    assert spies["backbone"] == 0 and not backbone_store_dir(paths, config).exists()
    with open_feature_store(paths, frontend, mode="r") as store:
        assert len(store) == 4
    logmel_bytes = (feature_store_dir(paths, frontend) / "data.0.f16").stat().st_size

    # 2. with the backbone, and two new tracks: the catalogued tracks lacking only backbone
    #    features get those and no new log-mels; the new ones get both; the short track is one
    #    clear error (it stays catalogued with its log-mels); the run goes on.
    good_tracks(root, 2, offset=3)
    spies["log_mel"] = 0
    second = index_catalog(catalog, paths, root, IngestOptions(workers=1), backbone=config)
    assert second.counts == {"added": 2, "unchanged": 3, "error": 2}
    errors = {os.path.basename(p): reason for p, reason in second.errors}
    assert errors["short.flac"].startswith("backbone features (musicnn): track is 2.00 s long")
    assert "garbage.flac" in errors
    assert spies["backbone"] == 5  # 3 catalogued + 2 new tracks
    with open_feature_store(paths, frontend, mode="r") as store:
        assert len(store) == 6
        assert (feature_store_dir(paths, frontend) / "data.0.f16").stat().st_size \
            == logmel_bytes + 2 * frontend.bytes_per_track  # only the new tracks' log-mels
    with open_backbone_store(paths, config, mode="r") as store:
        assert len(store) == 5 and store.get_many(store.ids()).shape == (5, 2, 1706)
    data_file = backbone_store_dir(paths, config) / "data.0.f16"
    assert data_file.stat().st_size == 5 * config.bytes_per_track

    # 3. a rerun recomputes nothing (the short track is tried again and fails again, undecoded).
    spies["log_mel"] = spies["backbone"] = 0
    third = index_catalog(catalog, paths, root, IngestOptions(workers=1), backbone=config)
    assert third.counts == {"unchanged": 5, "error": 2}
    assert spies == {"log_mel": 0, "backbone": 0}
    assert data_file.stat().st_size == 5 * config.bytes_per_track

    # 4. ensure_backbone_features: fills what is lacking; missing and unusable files are listed.
    with catalog.session() as s:
        ids = dict(s.execute(select(Track.audio_path, Track.id)).all())
    gone, dropped = str(root / "A1" / "t1.ogg"), str(root / "A0" / "t2.mp3")
    os.remove(gone)
    with open_backbone_store(paths, config) as store:
        store.delete([ids[gone], ids[dropped]])
    fill = ensure_backbone_features(catalog, paths, config, workers=1)
    assert (fill.tracks, fill.lacking, fill.computed) == (6, 3, 1)
    reasons = dict(fill.errors)
    assert reasons[gone] == "file not found"
    assert "shorter than one" in reasons[str(root / "A0" / "short.flac")]
    assert spies["backbone"] == 1
    with open_backbone_store(paths, config, mode="r") as store:
        assert ids[dropped] in store and ids[gone] not in store
    spies["backbone"] = 0
    assert ensure_backbone_features(catalog, paths, config, workers=1).computed == 0
    assert spies["backbone"] == 0


def test_cli_passes_the_backbone_choice(tmp_path, artdb_home, monkeypatch):
    from click.testing import CliRunner

    from artdb.cli.main import cli
    from artdb.core.ingest import service

    seen = {}

    def fake_index_catalog(catalog, paths, root, options, **kw):
        seen.update(kw)
        return service.ingest(catalog, root, options, features=None)

    monkeypatch.setattr(service, "index_catalog", fake_index_catalog)
    runner = CliRunner()
    result = runner.invoke(cli, ["index", "--help"])
    assert "--backbone [auto|musicnn|none]" in result.output
    (tmp_path / "lib").mkdir()
    result = runner.invoke(cli, ["index", str(tmp_path / "lib"), "--backbone", "musicnn", "--device", "cpu",
                                 "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert seen["backbone"] == "musicnn" and seen["device"] == "cpu"
    result = runner.invoke(cli, ["index", str(tmp_path / "lib"), "--no-progress", "--json"])
    assert seen["backbone"] == "auto"
