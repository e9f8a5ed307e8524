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
    r = runner.invoke(cli, ["train", *_cnn_options(), "--steps", "4", "--artists-per-batch", "4",
                            "--per-artist", "2", "--val-every", "2", "--dim", "16", "--name", "tiny",
                            "--json", "--no-progress"])
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


def _cnn_options() -> list[str]:
    """The CNN on log-mels (where the batch is fitted): ``--backbone none`` where artdb train has
    a backbone option."""
    from artdb.cli.train import train

    return ["--backbone", "none"] if any("--backbone" in p.opts for p in train.params) else []


def test_train_fits_the_batch_to_a_small_catalog(tmp_path, artdb_home):
    # a new user's first catalog: 7 artist pages of 4 tracks; artdb train's defaults (16 artists x 4
    # tracks per batch, a fifth of the artists held out) fit it instead of refusing
    root = tmp_path / "cat"
    truth = generate_catalog(root, SynthConfig(artists=7, albums_per_artist=2, tracks_per_album=2,
                                               seconds=3, genres=2, homonym_groups=0, synonym_pairs=0,
                                               seed=5, workers=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["train", *_cnn_options(), "--steps", "4", "--val-every", "2", "--dim", "16",
                            "--name", "first", "--no-progress"])
    assert r.exit_code == 0, r.output
    # 2 of the 7 pages held out (one homonym group), the other 5 in every batch
    assert "fitted to a small catalog: 5 artists per batch (asked 16)" in r.output
    assert "validation holds out 2 artists" in r.output
    r = runner.invoke(cli, ["models", "show", "first", "--json"])
    model = json.loads(r.stdout)
    assert model["active"] and model["metrics"]["adapted"]["artists_per_batch"] == {"asked": 16, "used": 5}
    assert model["metrics"]["n_val_artists"] == 2 and model["metrics"]["steps"] == 4
    # below the minimum (one page left): refused, saying what is needed
    names = [a.name for a in truth.artists]
    r = runner.invoke(cli, ["train", *_cnn_options(), "--steps", "2", "--name", "one", "--no-progress",
                            *[x for n in names[1:] for x in ("--exclude-pages", n)]])
    assert r.exit_code == 1
    assert "needs at least 2 artist pages with 2+ tracks each" in r.output and "found 1 such page" in r.output


def test_evaluate_scores_a_model_of_the_home_named_on_the_command_line(tmp_path, artdb_home):
    """``artdb --home H evaluate --model M``: the model's checkpoint lies in H, not in the default
    home (ARTDB_HOME, here another folder), and is scored on a catalog of other artists."""
    home, seen, unseen = tmp_path / "my home", tmp_path / "seen", tmp_path / "unseen"
    for root, seed in ((seen, 3), (unseen, 4)):
        generate_catalog(root, SynthConfig(artists=8, albums_per_artist=2, tracks_per_album=2, seconds=4,
                                           genres=2, homonym_groups=0, synonym_pairs=0, seed=seed,
                                           workers=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["--home", str(home), "index", str(seen), "--no-progress", "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--home", str(home), "train", *_cnn_options(), "--steps", "4",
                            "--artists-per-batch", "4", "--per-artist", "2", "--val-every", "2",
                            "--dim", "16", "--name", "mine", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert not (artdb_home / "models" / "mine.pt").exists() and (home / "models" / "mine.pt").exists()
    r = runner.invoke(cli, ["--home", str(home), "evaluate", "--catalog", str(unseen), "--model", "mine",
                            "--systems", "random", "--quick", "--workers", "1", "--evidence", "audio",
                            "--out", str(tmp_path / "eval"), "--no-progress", "--json"])
    assert r.exit_code == 0, r.output
    systems = json.dumps(json.loads(r.stdout)["summary"])
    assert "mine" in systems
