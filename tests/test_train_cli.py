"""``artdb train`` through the CLI on a real (tiny) synthetic catalog: registered, active, embedded."""

from __future__ import annotations

import json

from click.testing import CliRunner

from artdb.cli.main import cli
from artdb.core.synth import SynthConfig, generate_catalog


def test_train_registers_activates_and_embeds(tmp_path, artdb_home):
    root = tmp_path / "cat"
    generate_catalog(root, SynthConfig(artists=10, albums_per_artist=2, tracks_per_album=2, seconds=4,
                                       genres=2, homonym_groups=1, synonym_pairs=1, seed=3, workers=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    n_tracks = sum(json.loads(r.stdout)["counts"].values())
    r = runner.invoke(cli, ["train", "--steps", "4", "--artists-per-batch", "4", "--per-artist", "2",
                            "--val-every", "2", "--dim", "16", "--name", "tiny", "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == "tiny" and out["active"] and out["steps"] == 4
    r = runner.invoke(cli, ["models", "show", "tiny", "--json"])
    model = json.loads(r.stdout)
    assert model["active"] and model["dim"] == 16 + 76  # CNN part + standardised statistics (hybrid)
    assert model["config"]["frontend"]["sample_rate"] == 16000
    r = runner.invoke(cli, ["stats", "--json"])
    assert {m["name"]: m["embedded_tracks"] for m in json.loads(r.stdout)["models"]} == {"tiny": n_tracks}
    r = runner.invoke(cli, ["train", "--steps", "2", "--name", "tiny"])
    assert r.exit_code == 1 and "already exists" in r.output
