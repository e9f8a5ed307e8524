"""No-learning embedders: the standardised ``stats`` baseline, its registration and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audiofiles import write_audio
from click.testing import CliRunner

from artdb.cli.main import cli
from artdb.core.errors import CatalogError
from artdb.core.learn.embedders import (
    StatsEmbedder,
    fit_standardizer,
    load_embedder,
    stats_features,
)


def _feats(seed=0, n=12, k=2, mels=32, frames=40):
    return np.random.default_rng(seed).normal(size=(n, k, mels, frames)).astype(np.float16)


def test_stats_features_shape_and_gain_invariance():
    x = _feats()
    v = stats_features(x, n_mfcc=20)
    assert v.shape == (12, 76) and v.dtype == np.float32
    # a gain is a constant in dB: it moves c0 only, which is dropped
    np.testing.assert_allclose(stats_features(x.astype(np.float32) + 12.0), v, atol=1e-4)


def test_standardizer_fits_zero_mean_unit_std_and_reads_in_chunks():
    x = _feats(n=30)
    mean, std = fit_standardizer(x, chunk=7)
    z = (stats_features(x) - mean) / std
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    m2, s2 = fit_standardizer(x, rows=np.arange(10))
    np.testing.assert_allclose(m2, stats_features(x[:10]).mean(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(CatalogError):
        fit_standardizer(x, rows=np.arange(1))


def test_stats_embedder_round_trips_its_config_and_is_deterministic():
    x = _feats(n=16)
    emb = StatsEmbedder.fit(x, {"n_mels": 32})
    again = StatsEmbedder.from_config(json.loads(json.dumps(emb.config())))
    a, b = emb.embed(x[:5]), again.embed(x[:5])
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    # one track embeds the same alone as in a batch (the statistics are fixed, not the batch's)
    np.testing.assert_allclose(emb.embed(x[2:3]), a[2:3], atol=1e-6)
    with pytest.raises(CatalogError):
        StatsEmbedder.from_config({"frontend": {}})
    with pytest.raises(CatalogError):
        StatsEmbedder({}, mean=np.zeros(3), std=np.ones(3))


def test_add_baseline_stats_through_the_cli(tmp_path, artdb_home):
    root = tmp_path / "lib"
    for i in range(2):
        write_audio(root / f"low{i}.flac", seconds=2.0, freq=110 + 5 * i, seed=i, artist="Low Band",
                    album="Low", title=f"low {i}")
        write_audio(root / f"high{i}.wav", seconds=2.0, freq=2500 + 40 * i, seed=10 + i,
                    artist="High Band", album="High", title=f"high {i}")
    runner = CliRunner()
    r = runner.invoke(cli, ["models", "add-baseline", "stats"])
    assert r.exit_code == 1 and "artdb index" in r.output  # nothing to fit on yet
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["models", "add-baseline", "stats"])
    assert r.exit_code == 0 and "d=76" in r.output, r.output
    r = runner.invoke(cli, ["models", "show", "stats", "--json"])
    row = json.loads(r.stdout)
    assert row["kind"] == "stats" and row["dim"] == 76
    assert len(row["config"]["mean"]) == 76 and row["config"]["fitted_on"] == {"tracks": 4}
    r = runner.invoke(cli, ["models", "activate", "stats"])
    assert r.exit_code == 0 and "embedded 4 tracks" in r.output, r.output
    r = runner.invoke(cli, ["neighbors", str(root / "low0.flac"), "-k", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert [n["page"] for n in json.loads(r.stdout)["neighbors"]] == ["Low Band"]


def test_load_embedder_for_stats_rows():
    class Row:
        name, kind, checkpoint_path, checksum = "s", "stats", None, None
        config = StatsEmbedder.fit(_feats(n=8)).config()

    emb = load_embedder(Row())
    assert isinstance(emb, StatsEmbedder) and emb.dim == 76
