"""Duplicates remembered: a file whose bytes are another path's track is settled on a rerun without
being read, like an unchanged file, while it, its track and the track's file are as they were.

Real files, real SQLite and PostgreSQL. What ingest reads is observed, not assumed: every call of
``analyze.analyze_file`` (a job) and ``analyze.content_hash`` (the whole file read) is recorded by a
wrapper around the real function (``workers=1`` analyses in this process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from audiofiles import write_audio
from sqlalchemy import func, inspect, select, text, update
from test_ingest import _drop_read_override

from artdb.core.ingest import IngestOptions, analyze as analyze_module, ingest
from artdb.db.models import DuplicateFile, IngestFile, Track
from artdb.db.session import Catalog, current_revision, downgrade, head_revision, make_engine, upgrade


@pytest.fixture
def reads(monkeypatch):
    """Paths analysed (``jobs``) and read whole for their hash (``hashed``) by ingest, in order."""
    seen: dict[str, list[str]] = {"jobs": [], "hashed": []}
    real_analyze, real_hash = analyze_module.analyze_file, analyze_module.content_hash

    def analyze_file(path, *args, **kwargs):
        seen["jobs"].append(path)
        return real_analyze(path, *args, **kwargs)

    def content_hash(path):
        seen["hashed"].append(path)
        return real_hash(path)

    monkeypatch.setattr(analyze_module, "analyze_file", analyze_file)
    monkeypatch.setattr(analyze_module, "content_hash", content_hash)

    def take() -> dict[str, list[str]]:
        out = {k: list(v) for k, v in seen.items()}
        for v in seen.values():
            v.clear()
        return out

    return take


def library(root: Path) -> tuple[str, str, str]:
    """Two recordings and a copy of the first under another name: (original, other, copy) paths."""
    original = write_audio(root / "a" / "orig.flac", seconds=0.5, freq=330, seed=1, artist="A",
                           album="Album", title="Orig")
    other = write_audio(root / "a" / "other.flac", seconds=0.5, freq=550, seed=2, artist="A",
                        album="Album", title="Other")
    copy = root / "b" / "compilation copy.flac"
    copy.parent.mkdir(parents=True)
    shutil.copy2(original, copy)
    return str(original.resolve()), str(other.resolve()), str(copy.resolve())


def remembered(catalog) -> dict[str, tuple]:
    with catalog.session() as s:
        return {p: (size, mtime, digest, tid) for p, size, mtime, digest, tid in s.execute(
            select(DuplicateFile.path, DuplicateFile.file_size, DuplicateFile.file_mtime,
                   DuplicateFile.content_hash, DuplicateFile.track_id))}


def track_of(catalog, path: str) -> tuple[int, str] | None:
    with catalog.session() as s:
        row = s.execute(select(Track.id, Track.content_hash).where(Track.audio_path == path)).first()
    return tuple(row) if row else None


def n_tracks(catalog) -> int:
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Track))


def test_a_remembered_duplicate_is_settled_without_being_read(catalog, tmp_path, reads):
    root = tmp_path / "lib"
    original, other, copy = library(root)
    first = ingest(catalog, root, IngestOptions(workers=1))
    assert first.counts == {"added": 2, "duplicate": 1}
    assert first.duplicates == [(copy, f"same audio content as {original}")]
    assert sorted(reads()["hashed"]) == sorted([original, other, copy])
    track_id, digest = track_of(catalog, original)
    st = os.stat(copy)
    assert remembered(catalog) == {copy: (st.st_size, st.st_mtime, digest, track_id)}

    again = ingest(catalog, root, IngestOptions(workers=1))
    assert again.counts == {"unchanged": 2, "duplicate": 1}
    assert again.duplicates == first.duplicates  # reported as the first run did
    assert reads() == {"jobs": [], "hashed": []}  # nothing analysed, nothing read
    with catalog.session() as s:  # the run's record of the file is the first run's
        assert s.execute(select(IngestFile.outcome, IngestFile.reason, IngestFile.track_id)
                         .where(IngestFile.run_id == again.run_id, IngestFile.path == copy)).one() \
            == ("duplicate", f"same audio content as {original}", None)
    assert remembered(catalog) == {copy: (st.st_size, st.st_mtime, digest, track_id)}
    assert n_tracks(catalog) == 2


def test_a_touched_or_changed_duplicate_is_analysed_again(catalog, tmp_path, reads):
    root = tmp_path / "lib"
    original, other, copy = library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    track_id, digest = track_of(catalog, original)
    reads()

    # touched (new mtime, same bytes): read again, still a duplicate, its new mtime remembered
    st = os.stat(copy)
    os.utime(copy, (st.st_atime, st.st_mtime + 60))
    touched = ingest(catalog, root, IngestOptions(workers=1))
    assert touched.counts == {"unchanged": 2, "duplicate": 1}
    assert reads() == {"jobs": [copy], "hashed": [copy]}
    assert remembered(catalog) == {copy: (st.st_size, st.st_mtime + 60, digest, track_id)}
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"unchanged": 2, "duplicate": 1}
    assert reads()["hashed"] == []

    # new bytes: read again, a recording of its own: a new track, no longer remembered
    write_audio(Path(copy), seconds=0.5, freq=990, seed=9, artist="A", album="Album", title="Edit")
    changed = ingest(catalog, root, IngestOptions(workers=1))
    assert changed.counts == {"unchanged": 2, "added": 1}
    assert reads()["hashed"] == [copy]
    assert track_of(catalog, copy) is not None and remembered(catalog) == {}


def test_a_duplicate_of_a_changed_or_touched_track_is_analysed_again(catalog, tmp_path, reads):
    """The skip holds only while the track's own file is unchanged too: the copy is read again
    when the original is touched, and becomes its own track when the original's audio changes."""
    root = tmp_path / "lib"
    original, other, copy = library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    reads()

    st = os.stat(original)
    os.utime(original, (st.st_atime, st.st_mtime + 60))
    touched = ingest(catalog, root, IngestOptions(workers=1))
    assert touched.counts == {"unchanged": 2, "duplicate": 1}
    assert sorted(reads()["hashed"]) == sorted([original, copy])
    ingest(catalog, root, IngestOptions(workers=1))
    assert reads()["hashed"] == []  # both as they were again

    # the original's audio changes (scanned first, one file per batch): its track takes the new
    # audio, and the copy, the only file left with the old audio, is a track of its own
    track_id, _ = track_of(catalog, original)
    write_audio(Path(original), seconds=0.5, freq=777, seed=7, artist="A", album="Album", title="Orig")
    changed = ingest(catalog, root, IngestOptions(workers=1, batch_size=1))
    assert changed.counts == {"updated": 1, "unchanged": 1, "added": 1}
    assert copy in reads()["hashed"]
    assert track_of(catalog, original)[0] == track_id and track_of(catalog, copy) is not None
    assert remembered(catalog) == {}


def test_a_duplicate_whose_track_is_pruned_becomes_a_track(catalog, tmp_path, reads):
    """Compilations in another folder: the copy is remembered while the original's track exists;
    pruning that track forgets it (ON DELETE CASCADE), and the next run catalogues the copy."""
    albums, compilations = tmp_path / "albums", tmp_path / "compilations"
    original = str(write_audio(albums / "orig.flac", seconds=0.5, freq=330, seed=1, artist="A",
                               album="Album", title="Orig").resolve())
    compilations.mkdir()
    copy = str(Path(shutil.copy2(original, compilations / "copy.flac")).resolve())
    assert ingest(catalog, albums, IngestOptions(workers=1)).counts == {"added": 1}
    assert ingest(catalog, compilations, IngestOptions(workers=1)).counts == {"duplicate": 1}
    reads()
    assert ingest(catalog, compilations, IngestOptions(workers=1)).counts == {"duplicate": 1}
    assert reads()["hashed"] == []
    _, digest = track_of(catalog, original)

    os.remove(original)
    assert ingest(catalog, albums, IngestOptions(workers=1, prune=True)).counts == {"pruned": 1}
    assert n_tracks(catalog) == 0 and remembered(catalog) == {}  # the row went with its track
    now = ingest(catalog, compilations, IngestOptions(workers=1))
    assert now.counts == {"added": 1}
    assert reads()["hashed"] == [copy]
    assert n_tracks(catalog) == 1 and track_of(catalog, copy)[1] == digest


def test_when_the_original_file_goes_its_track_moves_to_the_remembered_copy(catalog, tmp_path, reads):
    """Same folder: as before the memory, the copy is read again once the track's file is gone and
    the track is re-linked to it (same id), not pruned; --prune forgets copies that are gone."""
    root = tmp_path / "lib"
    original, other, copy = library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    track_id, _ = track_of(catalog, original)
    reads()
    os.remove(original)
    summary = ingest(catalog, root, IngestOptions(workers=1, prune=True))
    assert summary.counts == {"moved": 1, "unchanged": 1, "pruned": 0}
    assert reads()["hashed"] == [copy]
    assert track_of(catalog, copy)[0] == track_id and remembered(catalog) == {}

    # a copy of `other`, remembered, then deleted: kept without --prune (as tracks are), then forgotten
    second = str(Path(shutil.copy2(other, root / "b" / "second copy.flac")).resolve())
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"unchanged": 2, "duplicate": 1}
    assert set(remembered(catalog)) == {second}
    os.remove(second)
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"unchanged": 2}
    assert set(remembered(catalog)) == {second}
    assert ingest(catalog, root, IngestOptions(workers=1, prune=True)).counts == {"unchanged": 2, "pruned": 0}
    assert remembered(catalog) == {}
    assert n_tracks(catalog) == 2


def test_a_track_replaced_by_a_copy_of_another_is_remembered_at_its_path(catalog, tmp_path, reads):
    """A catalogued file overwritten with another track's bytes is a duplicate (its track keeps its
    row, as before the memory); the rerun settles it unread. The copy of its old audio is read on
    every run, as before: the file of the track it duplicates no longer matches that track."""
    root = tmp_path / "lib"
    original, other, copy = library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    shutil.copyfile(other, original)
    first = ingest(catalog, root, IngestOptions(workers=1))
    assert first.counts == {"unchanged": 1, "duplicate": 2}
    assert reads()["hashed"][-2:] == [original, copy]
    again = ingest(catalog, root, IngestOptions(workers=1))
    assert again.counts == {"unchanged": 1, "duplicate": 2}
    assert again.duplicates == first.duplicates == [(original, f"same audio content as {other}"),
                                                    (copy, f"same audio content as {original}")]
    assert reads()["hashed"] == [copy]


def test_a_duplicate_whose_track_another_writer_changes_meanwhile_is_an_error_then_analysed(
        catalog, tmp_path, reads, monkeypatch):
    """The copy was settled unread, then another writer's commit gave its track other audio before
    the batch was written: the copy is not reported a duplicate of audio its track no longer has
    (an error saying so), its memory goes, and the next run analyses it."""
    import artdb.core.ingest.pipeline as pipeline

    root = tmp_path / "lib"
    original, other, copy = library(root)
    ingest(catalog, root, IngestOptions(workers=1))
    reads()
    real = pipeline._write_batch_retrying

    def another_writer_commits_first(*args, **kwargs):
        monkeypatch.setattr(pipeline, "_write_batch_retrying", real)
        with catalog.session() as s:
            s.execute(update(Track).where(Track.audio_path == original).values(content_hash="f" * 64))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_batch_retrying", another_writer_commits_first)
    raced = ingest(catalog, root, IngestOptions(workers=1))
    assert raced.counts == {"unchanged": 2, "error": 1}
    assert raced.errors == [(copy, pipeline._COPIED_GONE_MEANWHILE)]
    assert reads()["hashed"] == [] and remembered(catalog) == {}
    after = ingest(catalog, root, IngestOptions(workers=1))
    assert after.counts == {"unchanged": 2, "added": 1}  # its audio is no track's now
    assert reads()["hashed"] == [copy]


@pytest.mark.skipif(_drop_read_override() is None, reason="root without setpriv cannot be denied a read")
def test_the_cli_rerun_does_not_open_a_remembered_duplicate(tmp_path, catalog_url):
    """The real command in its own process: after the first run the copy cannot be read at all
    (mode 000, and no power to override it); the rerun still reports it, as a duplicate."""
    root = tmp_path / "lib"
    original, other, copy = library(root)
    env = {**os.environ, "ARTDB_HOME": str(tmp_path / "home")}
    env.pop("ARTDB_DATABASE_URL", None)

    def artdb_index() -> dict:
        out = subprocess.run(
            [*_drop_read_override(), sys.executable, "-m", "artdb.cli.main", "--db", catalog_url, "index",
             str(root), "--json", "--no-progress", "--workers", "1", "--no-features"],
            env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert artdb_index()["counts"] == {"added": 2, "duplicate": 1}
    os.chmod(copy, 0)  # changes its ctime, not its size or mtime
    try:
        again = artdb_index()
    finally:
        os.chmod(copy, 0o644)
    assert again["counts"] == {"unchanged": 2, "duplicate": 1}, again["errors"]
    assert again["duplicates"] == [{"path": copy, "duplicate_of": f"same audio content as {original}"}]
    # the same file unreadable and touched is read, and fails as any unreadable file does
    os.chmod(copy, 0)
    os.utime(copy, None)
    try:
        touched = artdb_index()
    finally:
        os.chmod(copy, 0o644)
    assert touched["counts"] == {"unchanged": 2, "error": 1}
    assert touched["errors"][0]["path"] == copy and "cannot read" in touched["errors"][0]["reason"]


def test_migration_0006_on_a_catalog_with_data(catalog_url, tmp_path):
    """Down to 0005 and up again on a catalog that has tracks and remembered duplicates: the
    catalog is kept, the memory goes and comes back with the next ingest (one read of the copy);
    the database itself drops a row with its track."""
    root = tmp_path / "lib"
    original, other, copy = library(root)
    catalog = Catalog.open(catalog_url)
    ingest(catalog, root, IngestOptions(workers=1))
    with catalog.session() as s:
        tracks = sorted(s.execute(select(Track.id, Track.audio_path, Track.content_hash)).all())
    assert len(tracks) == 2 and set(remembered(catalog)) == {copy}
    catalog.close()

    engine = make_engine(catalog_url)
    downgrade(engine, "0005")
    assert current_revision(engine) == "0005"
    with engine.connect() as conn:
        assert "duplicate_files" not in set(inspect(conn).get_table_names())
        assert sorted(tuple(r) for r in conn.execute(text(
            "SELECT id, audio_path, content_hash FROM tracks"))) == [tuple(t) for t in tracks]
    upgrade(engine)
    assert current_revision(engine) == head_revision() == "0006"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM duplicate_files")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM tracks")).scalar() == 2
    engine.dispose()

    catalog = Catalog.open(catalog_url)
    rerun = ingest(catalog, root, IngestOptions(workers=1))
    assert rerun.counts == {"unchanged": 2, "duplicate": 1}
    track_id, _ = track_of(catalog, original)
    assert {p: row[3] for p, row in remembered(catalog).items()} == {copy: track_id}
    with catalog.session() as s:  # ON DELETE CASCADE, done by the database (no ORM relationship)
        s.execute(text("DELETE FROM track_credits WHERE track_id = :t"), {"t": track_id})
        s.execute(text("DELETE FROM tracks WHERE id = :t"), {"t": track_id})
    assert remembered(catalog) == {}
    catalog.close()
