"""``artdb index``: counts, idempotence, moves and changes, manifests, resume (the fault folder of bad
input: tests/test_bad_input.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from audiofiles import write_audio
from sqlalchemy import func, select

from artdb.core.errors import ManifestError
from artdb.core.ingest import IngestOptions, ingest
from artdb.db.models import Album, ArtistPage, Genre, IngestRun, Label, Track, TrackCredit


def make_library(root: Path) -> dict:
    """Two artist pages, one of them 'Eclipse' fed by two different bands (a planted homonym)."""
    specs = [
        ("Eclipse", "Dawn", ".flac", "Rock", "Red Label"),
        ("Eclipse", "Dawn", ".ogg", "Rock", "Red Label"),
        ("eclipse", "Nightfall", ".mp3", "Jazz", "Blue Note-ish"),  # same page: case-folded name
        ("Eclipse", "Nightfall", ".wav", "Jazz", "Blue Note-ish"),
        ("Youssou N'Dour", "Set", ".flac", "Mbalax", None),
        ("Youssou Ndour", "Eyes Open", ".ogg", "Mbalax", None),  # a synonym: a separate page
    ]
    for i, (artist, album, ext, genre, label) in enumerate(specs):
        tags = dict(artist=artist, album=album, title=f"Song {i}", genre=genre, date=f"20{10 + i}",
                    isrc=f"FRXYZ{10 + i}00{i:03d}", tracknumber=str(i + 1))
        if label:
            tags["label"] = label
        write_audio(root / artist / album / f"{i:02d} song{ext}", seconds=0.5, freq=200 + 50 * i,
                    seed=i, **tags)
    return {"tracks": len(specs), "pages": 3, "albums": 4}


def count(catalog, model) -> int:
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_ingest_counts_and_rerun_adds_nothing(catalog, tmp_path):
    root = tmp_path / "lib"
    expected = make_library(root)
    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert summary.counts == {"added": expected["tracks"]}, summary.errors
    assert count(catalog, Track) == expected["tracks"]
    assert count(catalog, ArtistPage) == expected["pages"]
    assert count(catalog, Album) == expected["albums"]
    assert count(catalog, Genre) == 3
    assert count(catalog, Label) == 2
    with catalog.session() as s:
        eclipse = s.scalars(select(ArtistPage).where(ArtistPage.normalized_name == "eclipse")).one()
        assert eclipse.display_name == "Eclipse"
        assert {a.title for a in eclipse.albums} == {"Dawn", "Nightfall"}
        t = s.scalars(select(Track).where(Track.title == "Song 0")).one()
        assert t.isrc == "FRXYZ1000000" and t.track_number == 1 and t.duration == pytest.approx(0.5, abs=0.01)
        assert t.album.genre.name == "Rock" and t.album.label.name == "Red Label" and t.album.year == 2010

    again = ingest(catalog, root, IngestOptions(workers=2))
    assert again.counts == {"unchanged": expected["tracks"]}
    assert count(catalog, Track) == expected["tracks"]


def test_changed_file_updates_and_moved_file_relinks(catalog, tmp_path):
    root = tmp_path / "lib"
    make_library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    with catalog.session() as s:
        ids_before = set(s.scalars(select(Track.id)))

    # change one file's audio and tags
    changed = root / "Eclipse" / "Dawn" / "00 song.flac"
    write_audio(changed, seconds=0.7, freq=999, seed=42, artist="Eclipse", album="Dawn",
                title="Song 0 (remaster)")
    # move another
    src = root / "Eclipse" / "Dawn" / "01 song.ogg"
    dst = root / "moved" / "01 song.ogg"
    dst.parent.mkdir()
    shutil.move(src, dst)

    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert summary.counts == {"updated": 1, "moved": 1, "unchanged": 4}
    with catalog.session() as s:
        assert set(s.scalars(select(Track.id))) == ids_before
        t = s.scalars(select(Track).where(Track.audio_path == str(changed.resolve()))).one()
        assert t.title == "Song 0 (remaster)" and t.duration == pytest.approx(0.7, abs=0.01)
        assert s.scalar(select(func.count()).select_from(Track)
                        .where(Track.audio_path == str(dst.resolve()))) == 1

    # prune: delete a file
    os.remove(root / "Youssou Ndour" / "Eyes Open" / "05 song.ogg")
    summary = ingest(catalog, root, IngestOptions(workers=1, prune=True))
    assert summary.counts["pruned"] == 1
    assert count(catalog, Track) == 5
    with catalog.session() as s:  # the emptied album went with it
        assert s.scalar(select(func.count()).select_from(Album).where(Album.title == "Eyes Open")) == 0


def _drop_read_override() -> list[str] | None:
    """A command prefix that runs without the power to read any file, or None if unavailable.

    As root (CI), chmod 000 does not stop reads; dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH
    from the bounding set makes root obey file permissions like any user.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"],
                           capture_output=True)
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if probe.returncode == 0 else None


@pytest.mark.skipif(_drop_read_override() is None, reason="root without setpriv cannot be denied a read")
def test_unreadable_file(tmp_path):
    """A file the ingesting process cannot read is reported; the rest is ingested."""
    root = tmp_path / "lib"
    write_audio(root / "ok.flac", seconds=0.5, artist="A", album="B", title="C")
    locked = write_audio(root / "locked.flac", seconds=0.5, seed=3, artist="A", album="B", title="D")
    locked.chmod(0)
    env = {**os.environ, "ARTDB_HOME": str(tmp_path / "home")}
    env.pop("ARTDB_DATABASE_URL", None)
    out = subprocess.run(
        [*_drop_read_override(), sys.executable, "-m", "artdb.cli.main", "index", str(root), "--json",
         "--no-progress", "--workers", "1", "--no-features"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"] == {"added": 1, "error": 1}
    assert "cannot read" in summary["errors"][0]["reason"]
    assert "locked.flac" in summary["errors"][0]["path"]


def test_manifest_overrides_tags(catalog, tmp_path):
    root = tmp_path / "lib"
    write_audio(root / "a" / "x.flac", seconds=0.5, seed=1)  # untagged
    write_audio(root / "a" / "y.ogg", seconds=0.5, seed=2, artist="Wrong", album="Old")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,artist,album,genre,year,label\n"
                        "a/x.flac,Björk,Debut,Pop,1993,One Little Indian\n"
                        "a/y.ogg,Björk,Post,Pop,1995,\n", encoding="utf-8")
    summary = ingest(catalog, root, IngestOptions(workers=1, manifest=manifest))
    assert summary.counts == {"added": 2}
    with catalog.session() as s:
        page = s.scalars(select(ArtistPage)).one()
        assert page.display_name == "Björk"
        assert {a.title for a in page.albums} == {"Debut", "Post"}

    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"path": "../outside.flac", "artist": "X"}) + "\n")
    with pytest.raises(ManifestError, match="escapes"):
        ingest(catalog, root, IngestOptions(workers=1, manifest=jsonl))


def test_featured_credits(catalog, tmp_path):
    root = tmp_path / "lib"
    write_audio(root / "t.flac", seconds=0.5, artist="Main Act feat. Guest One & Guest Two", album="A")
    ingest(catalog, root, IngestOptions(workers=1))
    with catalog.session() as s:
        credits = s.execute(select(ArtistPage.display_name, TrackCredit.role)
                            .join(TrackCredit, TrackCredit.page_id == ArtistPage.id)
                            .order_by(TrackCredit.position)).all()
    assert credits == [("Main Act", "main"), ("Guest One", "featured"), ("Guest Two", "featured")]


class _Boom(Exception):
    pass


def test_interrupted_run_loses_nothing_committed_and_resumes(catalog, tmp_path, monkeypatch):
    root = tmp_path / "lib"
    for i in range(10):
        write_audio(root / f"t{i:02d}.flac", seconds=0.3, seed=i, artist="A", album="B", title=f"T{i}")
    import artdb.core.ingest.pipeline as pipeline

    real = pipeline._write_batch
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_batch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        ingest(catalog, root, IngestOptions(workers=1, batch_size=4))
    assert count(catalog, Track) == 4
    with catalog.session() as s:
        assert s.scalars(select(IngestRun.status)).one() == "interrupted"
    monkeypatch.setattr(pipeline, "_write_batch", real)
    summary = ingest(catalog, root, IngestOptions(workers=1, batch_size=4))
    assert summary.counts == {"unchanged": 4, "added": 6}
    assert count(catalog, Track) == 10


def test_cli_index_json_and_stats(tmp_path, artdb_home):
    from click.testing import CliRunner

    from artdb.cli.main import cli

    root = tmp_path / "lib"
    expected = make_library(root)
    runner = CliRunner()
    result = runner.invoke(cli, ["index", str(root), "--json", "--no-progress", "--workers", "1",
                                 "--no-features"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"added": expected["tracks"]}
    result = runner.invoke(cli, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tracks"] == expected["tracks"] and data["artist_pages"] == expected["pages"]
    assert (artdb_home / "catalog.sqlite").exists()


def test_ingest_on_a_dask_cluster_matches_the_process_pool(tmp_path):
    """The scale-out seam: analysis on a Dask LocalCluster (loopback only) gives the same catalog."""
    pytest.importorskip("distributed")
    from artdb.db.session import Catalog

    root = tmp_path / "lib"
    expected = make_library(root)
    cat = Catalog.open(f"sqlite:///{tmp_path / 'dask.sqlite'}")
    summary = ingest(cat, root, IngestOptions(workers=2, executor_backend="dask"))
    assert summary.counts == {"added": expected["tracks"]}
    assert count(cat, ArtistPage) == expected["pages"] and count(cat, Album) == expected["albums"]
    cat.close()
