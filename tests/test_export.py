"""``artdb export`` and the embeddings-file formats ``artdb evaluate --embeddings`` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import select

from artdb.cli.context import AppContext
from artdb.cli.main import cli
from artdb.core.learn.registry import active_model
from artdb.core.vectors.aggregate import mean_normalized
from artdb.core.vectors.export import (
    Embeddings,
    EmbeddingsFileError,
    match_rows,
    read_embeddings,
    write_embeddings,
)
from artdb.core.vectors.index import open_track_index, track_groups
from artdb.db.models import Track


@pytest.fixture
def indexed(tmp_path, artdb_home):
    root = tmp_path / "lib"
    for i in range(4):
        write_audio(root / f"low{i}.flac", seconds=2.5, freq=110 + 5 * i, seed=i, artist="Low Band",
                    album=f"Low {i % 2}", title=f"low {i}")
        write_audio(root / f"hïgh{i}.ogg", seconds=2.5, freq=2500 + 40 * i, seed=10 + i,
                    artist="High Band", album=f"High {i % 2}", title=f"high {i}")
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "add-baseline", "mfcc", "--activate"]).exit_code == 0
    r = runner.invoke(cli, ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    return runner, root


def test_export_round_trip(indexed, tmp_path):
    runner, root = indexed
    out = tmp_path / "out" / "vecs"
    r = runner.invoke(cli, ["export", str(out), "--no-parquet", "--json"])
    assert r.exit_code == 1 and "directory" in r.output and not out.parent.exists()  # a typo makes no folder
    out.parent.mkdir()
    r = runner.invoke(cli, ["export", str(out), "--no-parquet", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["count"] == 8 and summary["model"] == "mfcc"
    emb = read_embeddings(str(out) + ".npy")
    assert emb.vectors.shape == (8, summary["dim"]) and emb.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1, atol=1e-5)
    assert sorted(p.split("/")[-1] for p in emb.paths)[0] == "hïgh0.ogg"
    meta = json.loads((tmp_path / "out" / "vecs.json").read_text(encoding="utf-8"))
    assert meta["level"] == "track" and {"id", "path", "artist", "album"} <= set(meta["items"][0])
    # the exported vectors are the index's: every indexed track once, ids ascending, same floats
    app = AppContext()
    catalog, paths = app.catalog(), app.paths
    index = open_track_index(catalog, paths, active_model(catalog))
    ids = np.asarray(emb.ids, dtype=np.int64)
    assert ids.tolist() == sorted(index.index_ids().tolist())
    np.testing.assert_array_equal(emb.vectors, index.reconstruct(ids))
    # matched back by path: the row of that very track
    low0 = str((root / "low0.flac").resolve())
    with catalog.session() as s:
        low0_id = s.scalars(select(Track.id).where(Track.audio_path == low0)).one()
    rows = match_rows(emb, paths=[str(root / "low0.flac")])
    assert emb.ids[rows[0]] == low0_id
    np.testing.assert_array_equal(emb.vectors[rows[0]], index.reconstruct(np.array([low0_id]))[0])
    # album level: one vector per album, mean of its tracks
    r = runner.invoke(cli, ["export", str(tmp_path / "albums"), "--level", "album", "--no-parquet", "--json"])
    assert r.exit_code == 0, r.output
    alb = read_embeddings(tmp_path / "albums.json")
    assert len(alb) == 4 and alb.paths is None and len(alb.ids) == 4
    album_ids, album_means = mean_normalized(emb.vectors, track_groups(catalog, "album", ids))
    assert alb.ids == album_ids.tolist()
    np.testing.assert_allclose(alb.vectors, album_means, atol=1e-6)
    r = runner.invoke(cli, ["export", str(tmp_path / "pages"), "--level", "artist", "--no-parquet"])
    assert r.exit_code == 0 and "2 artist vectors" in r.output


def test_export_without_a_model_is_a_clean_error(artdb_home, tmp_path):
    r = CliRunner().invoke(cli, ["export", str(tmp_path / "x")])
    assert r.exit_code == 1 and "no active model" in r.output


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "csv-wide", "jsonl"])
def test_formats_read_back(tmp_path, fmt, rng):
    vecs = rng.normal(size=(5, 3)).astype(np.float32)
    paths = [f"/music/a{i}.flac" for i in range(5)]
    if fmt == "npy":
        write_embeddings(tmp_path / "e", Embeddings(vecs, ids=list(range(5)), paths=paths), parquet=False)
        f = tmp_path / "e.npy"
    elif fmt == "npz":
        f = tmp_path / "e.npz"
        np.savez(f, vectors=vecs, paths=np.array(paths))
    elif fmt == "csv":
        f = tmp_path / "e.csv"
        f.write_text("path,vector\n"
                     + "".join(f'{p},"{json.dumps(v.tolist())}"\n' for p, v in zip(paths, vecs)))
    elif fmt == "csv-wide":
        f = tmp_path / "e.csv"
        f.write_text("path,d0,d1,d2\n"
                     + "".join(f"{p}," + ",".join(map(str, v)) + "\n" for p, v in zip(paths, vecs)))
    else:
        f = tmp_path / "e.jsonl"
        f.write_text("".join(json.dumps({"path": p, "vector": v.tolist()}) + "\n"
                             for p, v in zip(paths, vecs)))
    emb = read_embeddings(f)
    rows = match_rows(emb, paths=paths[::-1])
    assert np.allclose(emb.vectors[rows], vecs[::-1], atol=1e-6)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "x.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(EmbeddingsFileError, match="key column"):
        read_embeddings(tmp_path / "x.csv")
    with pytest.raises(EmbeddingsFileError, match="unknown embeddings format"):
        (tmp_path / "x.txt").write_text("")
        read_embeddings(tmp_path / "x.txt")
