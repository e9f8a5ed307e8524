"""``artdb neighbors`` and ``artdb models`` through the CLI, on real files, DB and FAISS."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audiofiles import write_audio
from click.testing import CliRunner

from artdb.cli.context import AppContext
from artdb.cli.main import cli
from artdb.core.learn.registry import active_model
from artdb.core.vectors.index import open_track_index


@pytest.fixture
def indexed(tmp_path, artdb_home):
    root = tmp_path / "lib"
    # Two pages; tones make each page's tracks close to each other.
    for i in range(4):
        write_audio(root / f"low{i}.flac", seconds=2.5, freq=110 + 5 * i, seed=i, artist="Low Band",
                    album=f"Low {i % 2}", title=f"low {i}")
        write_audio(root / f"high{i}.ogg", seconds=2.5, freq=2500 + 40 * i, seed=10 + i,
                    artist="High Band", album=f"High {i % 2}", title=f"high {i}")
    runner = CliRunner()
    r = runner.invoke(cli, ["models", "add-baseline", "mfcc", "--activate"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == {"added": 8}
    return runner, root


def test_track_album_artist_neighbors(indexed):
    runner, root = indexed
    r = runner.invoke(cli, ["neighbors", str(root / "low0.flac"), "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["query"]["name"] == "low 0"
    assert [n["page"] for n in out["neighbors"]] == ["Low Band"] * 3
    # the scores are the cosines between the query's vector and each neighbour's, best first
    app = AppContext()
    catalog = app.catalog()
    index = open_track_index(catalog, app.paths, active_model(catalog))
    ids = np.array([out["query"]["id"]] + [n["id"] for n in out["neighbors"]])
    v = index.reconstruct(ids)
    scores = [n["score"] for n in out["neighbors"]]
    np.testing.assert_allclose(scores, v[1:] @ v[0], atol=1e-5)
    assert scores == sorted(scores, reverse=True)
    # every track: the three others of its band first, each closer than any track of the other
    # band by a wide margin (MFCC statistics of 110-125 Hz vs 2.5-2.6 kHz tones: ~0.7 here)
    for path in sorted(root.iterdir()):
        r = runner.invoke(cli, ["neighbors", str(path), "-k", "7", "--json"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        own = out["query"]["page"]
        pages = [n["page"] for n in out["neighbors"]]
        assert pages[:3] == [own] * 3 and own not in pages[3:], (path.name, pages)
        scores = [n["score"] for n in out["neighbors"]]
        assert scores[2] - scores[3] > 0.5, (path.name, scores)

    r = runner.invoke(cli, ["neighbors", "Low Band - Low 0", "--level", "album", "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["neighbors"][0]["name"] == "Low 1"

    r = runner.invoke(cli, ["neighbors", "low band", "--level", "artist", "--json"])
    assert r.exit_code == 0, r.output
    assert [n["name"] for n in json.loads(r.stdout)["neighbors"]] == ["High Band"]

    r = runner.invoke(cli, ["neighbors", str(root / "low0.flac"), "-k", "2", "--exclude-same-page", "--json"])
    assert {n["page"] for n in json.loads(r.stdout)["neighbors"]} == {"High Band"}

    r = runner.invoke(cli, ["neighbors", str(root / "low0.flac"), "-k", "2"])
    assert r.exit_code == 0 and "low 0" in r.output


def test_unknown_query_is_a_clean_error(indexed):
    runner, _ = indexed
    r = runner.invoke(cli, ["neighbors", "Nobody", "--level", "artist"])
    assert r.exit_code == 1
    assert "no artist page named 'Nobody'" in r.output


def test_models_list_show_and_stats(indexed):
    runner, _ = indexed
    r = runner.invoke(cli, ["models", "list", "--json"])
    assert json.loads(r.stdout)[0]["name"] == "mfcc" and json.loads(r.stdout)[0]["active"]
    r = runner.invoke(cli, ["models", "show", "mfcc", "--json"])
    assert json.loads(r.stdout)["config"]["n_mfcc"] == 20
    r = runner.invoke(cli, ["stats", "--json"])
    assert json.loads(r.stdout)["models"][0]["embedded_tracks"] == 8
    r = runner.invoke(cli, ["index", "--help"])
    assert "--rebuild-index" in r.output


def test_baseline_added_after_ingest_embeds_the_catalog(indexed):
    runner, _ = indexed
    r = runner.invoke(cli, ["models", "add-baseline", "stats", "--activate"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["stats", "--json"])
    embedded = {m["name"]: m["embedded_tracks"] for m in json.loads(r.stdout)["models"]}
    assert embedded == {"mfcc": 8, "stats": 8}
