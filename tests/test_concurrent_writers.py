"""Several writers on one catalog: never a doubled recording, never a crash, never a lost vector.

Real processes (``writers.run_writers``: spawned, started together on a barrier, each running the
library call behind ``artdb index``), real SQLite files and real PostgreSQL schemas.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from audiofiles import write_audio
from sqlalchemy import func, select
from writers import Writer, run_writers

from artdb.core.config import Paths
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.learn.registry import register_mfcc_baseline
from artdb.core.vectors.index import open_track_index
from artdb.db.models import DuplicateFile, Embedding, IngestRun, Track
from artdb.db.session import Catalog

RECORDINGS = 24


def library(root, n=RECORDINGS, seconds=0.3, offset=0):
    """``n`` distinct recordings (distinct audio, so distinct content hashes) under ``root``."""
    for i in range(offset, offset + n):
        write_audio(root / f"Artist {i % 3}" / f"t{i:03d}.wav", seconds=seconds, freq=120 + 37 * i,
                    seed=i, artist=f"Artist {i % 3}", album=f"Album {i % 5}", title=f"T{i}")
    return root


def open_catalog(url):
    """Open (and migrate) the catalog once before the writers start, as a first `artdb` call does."""
    catalog = Catalog.open(url)
    return catalog


def catalog_counts(catalog):
    with catalog.session() as s:
        tracks = s.scalar(select(func.count()).select_from(Track))
        recordings = s.scalar(select(func.count(func.distinct(Track.content_hash))))
        runs = s.execute(select(IngestRun.id, IngestRun.status)).all()
    return tracks, recordings, runs


def assert_all_ran(results, n):
    assert len(results) == n
    for root, home, status, payload in results:
        assert status == "ok", f"writer on {root} (home {home}) raised:\n{payload}"
        assert payload["status"] == "done"
        assert payload["errors"] == [], payload["errors"]


def test_two_writers_same_recordings_in_two_folders_double_nothing(catalog_url, tmp_path):
    """Issue 13 item 5: the same recordings under two folders, ingested at once."""
    a = library(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    catalog = open_catalog(catalog_url)
    home = str(tmp_path / "home")
    results = run_writers([Writer(catalog_url, home, str(a)), Writer(catalog_url, home, str(b))])
    assert_all_ran(results, 2)
    tracks, recordings, runs = catalog_counts(catalog)
    assert (tracks, recordings) == (RECORDINGS, RECORDINGS)
    assert [s for _, s in runs] == ["done", "done"]
    summaries = [payload for *_, payload in results]
    assert sum(s["counts"].get("added", 0) for s in summaries) == RECORDINGS
    assert sum(s["counts"].get("duplicate", 0) for s in summaries) == RECORDINGS
    for s in summaries:
        for dup in s["duplicates"]:
            assert dup["duplicate_of"].startswith(("same audio content as ", "same recording as track "))
    # each duplicate remembered once (an upsert on its path), with the track holding its bytes,
    # whichever way it was found (planned, or another writer's insert won)
    with catalog.session() as s:
        remembered = s.execute(select(DuplicateFile.path, DuplicateFile.content_hash, Track.content_hash,
                                      Track.audio_path)
                               .join(Track, Track.id == DuplicateFile.track_id)).all()
    assert sorted(p for p, *_ in remembered) == sorted(d["path"] for s in summaries for d in s["duplicates"])
    assert all(mine == held and path != other for path, mine, held, other in remembered)
    catalog.close()


def test_two_writers_on_one_folder_neither_crashes(catalog_url, tmp_path):
    """Issue 13 item 6: the same folder, two processes (an IntegrityError on PostgreSQL before).
    A copy of one recording in it is found a duplicate by both: remembered once."""
    root = library(tmp_path / "lib")
    original = sorted(root.rglob("*.wav"))[0]
    copy = shutil.copy2(original, root / "zz copy.wav")
    catalog = open_catalog(catalog_url)
    home = str(tmp_path / "home")
    results = run_writers([Writer(catalog_url, home, str(root)), Writer(catalog_url, home, str(root))])
    assert_all_ran(results, 2)
    tracks, recordings, runs = catalog_counts(catalog)
    assert (tracks, recordings) == (RECORDINGS, RECORDINGS)
    assert [s for _, s in runs] == ["done", "done"]
    summaries = [payload for *_, payload in results]
    assert sum(s["counts"].get("added", 0) for s in summaries) == RECORDINGS
    with catalog.session() as s:  # one row, whichever of the two files the scan met first
        [row] = s.execute(select(DuplicateFile.path, Track.audio_path)
                          .join(Track, Track.id == DuplicateFile.track_id)).all()
    assert sorted(row) == sorted([str(copy.resolve()), str(original.resolve())])
    catalog.close()


FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)


def artdb_cli(*args, timeout=180):
    """The real ``artdb`` command in its own process."""
    return subprocess.run([sys.executable, "-m", "artdb.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_two_homes_on_one_catalog_keep_every_vector(catalog_url, tmp_path):
    """Issue 13 item 7: two data directories on one catalog, ingesting at once with an active model;
    then a read-only command in the second home. No embedding row is dropped and each home's index
    holds exactly the catalog's embedded tracks. (Three processes importing torch, ~1 min on 2
    loaded cores: under -m slow; the in-process tests below prove the same in the default suite.)"""
    a = library(tmp_path / "a", n=8, seconds=2.5)
    b = library(tmp_path / "b", n=8, seconds=2.5, offset=8)
    shutil.copytree(a / "Artist 0", b / "copies")  # 3 recordings under both folders
    catalog = open_catalog(catalog_url)
    model = register_mfcc_baseline(catalog, name="mfcc", frontend=FRONTEND, activate=True)
    homes = [str(tmp_path / "home-1"), str(tmp_path / "home-2")]
    results = run_writers([Writer(catalog_url, homes[0], str(a), features=True),
                           Writer(catalog_url, homes[1], str(b), features=True)])
    assert_all_ran(results, 2)
    tracks, recordings, runs = catalog_counts(catalog)
    assert (tracks, recordings) == (16, 16)
    assert n_embedded(catalog, model) == 16

    with catalog.session() as s:
        track_ids = sorted(s.scalars(select(Track.id)))
    out = artdb_cli("--home", homes[1], "--db", catalog_url, "neighbors", str(track_ids[0]), "-k", "3",
                    "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["neighbors"]) == 3
    assert "dropped" not in out.stderr
    assert n_embedded(catalog, model) == 16  # a read-only command dropped nothing

    for home in homes:
        index = open_track_index(catalog, Paths.from_home(home), model)
        assert index.index_ids().tolist() == track_ids, home
    catalog.close()


def n_embedded(catalog, model):
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_id == model.id))


# -- several homes on one catalog, one after the other (deterministic, in this process) -------------
@pytest.fixture
def two_homes(catalog, tmp_path):
    """Home 1 ingested 6 recordings with the active MFCC model; home 2 has never seen them."""
    from artdb.core.ingest.pipeline import IngestOptions
    from artdb.core.ingest.service import index_catalog

    model = register_mfcc_baseline(catalog, name="mfcc", frontend=FRONTEND, activate=True)
    home1, home2 = Paths.from_home(tmp_path / "home-1"), Paths.from_home(tmp_path / "home-2")
    root = library(tmp_path / "a", n=6, seconds=2.5)
    summary = index_catalog(catalog, home1, root, IngestOptions(workers=1))
    assert summary.counts == {"added": 6}
    return catalog, model, home1, home2, root


def track_ids(catalog):
    with catalog.session() as s:
        return sorted(s.scalars(select(Track.id)))


def test_a_read_only_command_in_another_home_drops_no_vector(two_homes):
    """Issue 13 item 7, deterministically: home 2 holds no features; reading its index used to
    delete every embedding row ('dropped_rows: 6') and leave both homes without vectors."""
    from artdb.core.vectors.neighbors import nearest

    catalog, model, home1, home2, _ = two_homes
    ids = track_ids(catalog)
    _, neighbors = nearest(catalog, home2, model, str(ids[0]), k=3)
    assert len(neighbors) == 3
    assert n_embedded(catalog, model) == 6
    for home in (home2, home1):
        assert open_track_index(catalog, home, model, repair=False).index_ids().tolist() == ids
    # the vectors home 2 copied are home 1's, exactly
    v1 = open_track_index(catalog, home1, model).reconstruct(np.array(ids))
    v2 = open_track_index(catalog, home2, model).reconstruct(np.array(ids))
    np.testing.assert_array_equal(v1, v2)


def test_another_home_replaces_the_vector_of_a_reingested_track(two_homes, tmp_path):
    """Home 1 re-ingests a changed file: home 2's copy of that track's vector (from the old audio)
    is replaced by the new one, whether or not home 2 saw the row disappear in between."""
    from artdb.core.ingest.pipeline import IngestOptions
    from artdb.core.ingest.service import index_catalog

    catalog, model, home1, home2, root = two_homes
    ids = track_ids(catalog)
    before = open_track_index(catalog, home2, model).reconstruct(np.array(ids))
    changed = next(root.rglob("t000.wav"))
    write_audio(changed, seconds=2.5, freq=3000, seed=99, artist="Artist 0", album="Album 0", title="T0")
    assert index_catalog(catalog, home1, root, IngestOptions(workers=1)).counts == {
        "updated": 1, "unchanged": 5}
    after1 = open_track_index(catalog, home1, model).reconstruct(np.array(ids))
    after2 = open_track_index(catalog, home2, model).reconstruct(np.array(ids))
    np.testing.assert_array_equal(after1, after2)
    moved = [not np.allclose(b, a) for b, a in zip(before, after2)]
    assert moved == [True] + [False] * 5


def test_rebuild_in_another_home_keeps_the_rows_it_cannot_make(two_homes, tmp_path):
    """--rebuild-index in home 2 (no features of home 1's tracks) used to delete every row."""
    from artdb.core.vectors.index import rebuild_index

    catalog, model, home1, home2, _ = two_homes
    ids = track_ids(catalog)
    report = rebuild_index(catalog, home2, model)
    assert (report.embedded, report.copied, report.total) == (0, 6, 6)
    assert n_embedded(catalog, model) == 6
    # home 1's file predates the new generation: replaced whole by the catalog's vectors
    v1 = open_track_index(catalog, home1, model).reconstruct(np.array(ids))
    np.testing.assert_array_equal(v1, open_track_index(catalog, home2, model).reconstruct(np.array(ids)))


def test_rows_of_an_older_catalog_get_their_vectors_from_the_home_that_has_the_features(two_homes):
    """Rows written before vectors were kept in the catalog (vector NULL): home 2 cannot make them
    and says so, dropping nothing; home 1 (its features) fills them in, then home 2 copies them."""
    from sqlalchemy import update

    from artdb.core.vectors.index import content_path, index_path

    catalog, model, home1, home2, _ = two_homes
    ids = track_ids(catalog)
    with catalog.session() as s:
        s.execute(update(Embedding).values(vector=None))
    for p in (index_path(home1, model), content_path(home1, model)):
        p.unlink()
    index2 = open_track_index(catalog, home2, model)
    assert index2.ntotal == 0 and n_embedded(catalog, model) == 6
    assert open_track_index(catalog, home1, model).index_ids().tolist() == ids
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding).where(Embedding.vector.is_(None))) == 0
    assert open_track_index(catalog, home2, model).index_ids().tolist() == ids


# -- the catalog side ----------------------------------------------------------------------------------
def test_a_file_replaced_by_a_copy_of_another_recording_is_a_duplicate(catalog, tmp_path):
    """One track per recording also when a catalogued file's new audio is another track's."""
    from artdb.core.ingest.pipeline import IngestOptions, ingest

    root = library(tmp_path / "lib", n=3)
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"added": 3}
    files = sorted(root.rglob("*.wav"))
    shutil.copyfile(files[1], files[0])
    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert summary.counts == {"duplicate": 1, "unchanged": 2}
    assert summary.duplicates == [(str(files[0].resolve()), f"same audio content as {files[1].resolve()}")]
    assert catalog_counts(catalog)[:2] == (3, 3)


def test_two_processes_opening_a_new_sqlite_catalog_at_once(tmp_path):
    """Both migrate the new file: the second used to fail with 'table ... already exists'."""
    url = f"sqlite:///{tmp_path / 'new-catalog.sqlite'}"
    results = run_writers([Writer(url, str(tmp_path / "home"), str(library(tmp_path / "a", n=4)),
                                  open_after_start=True),
                           Writer(url, str(tmp_path / "home"), str(library(tmp_path / "b", n=4, offset=4)),
                                  open_after_start=True)])
    assert_all_ran(results, 2)
    catalog = Catalog.open(url)
    assert catalog_counts(catalog)[:2] == (8, 8)
    catalog.close()


def test_migration_merges_recordings_doubled_before(catalog_url):
    """A catalog doubled by the old race (two tracks per recording) is merged by migration 0002
    into the oldest track of each recording, then refuses a doubled recording for good."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from artdb.db.session import make_engine, upgrade

    engine = make_engine(catalog_url)
    upgrade(engine, "0001")
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        run = lambda sql, **kw: conn.execute(text(sql), kw)  # noqa: E731
        run("INSERT INTO artist_pages (id, display_name, normalized_name, disambiguation, created_at) "
            "VALUES (1, 'A', 'a', '', :now)", now=now)
        for album, title in ((1, "first"), (2, "only the copy")):
            run("INSERT INTO albums (id, title, normalized_title, page_id, created_at) "
                "VALUES (:id, :t, :t, 1, :now)", id=album, t=title, now=now)
        # tracks 3 and 4 are second copies of tracks 1 and 2 (another folder, same bytes)
        for track, album, content in ((1, 1, "h1"), (2, 1, "h2"), (3, 2, "h1"), (4, 1, "h2")):
            run("INSERT INTO tracks (id, album_id, title, audio_path, content_hash, file_size, "
                "file_mtime, created_at, updated_at) VALUES (:id, :album, 't', :path, :h, 1, 0, :now, :now)",
                id=track, album=album, path=f"/music/{track}.wav", h=content, now=now)
            run("INSERT INTO track_credits (track_id, page_id, role, position) VALUES (:id, 1, 'main', 0)",
                id=track)
        run("INSERT INTO models (id, name, kind, version, config, metrics, dim, active, created_at) "
            "VALUES (1, 'm', 'mfcc', '0', '{}', '{}', 2, :t, :now)", t=True, now=now)
        for track, content in ((1, "h1"), (3, "h1")):
            run("INSERT INTO embeddings (track_id, model_id, vector_id, content_hash, created_at) "
                "VALUES (:id, 1, :id, :h, :now)", id=track, h=content, now=now)
        run("INSERT INTO ingest_runs (id, root, status, started_at, counts) VALUES (1, '/music', 'done', "
            ":now, '{}')", now=now)
        for n, track in enumerate((1, 2, 3, 4)):
            run("INSERT INTO ingest_files (id, run_id, path, outcome, track_id) "
                "VALUES (:n, 1, :p, 'added', :t)", n=n + 1, p=f"/music/{track}.wav", t=track)

    upgrade(engine)
    with engine.connect() as conn:
        q = lambda sql: [tuple(r) for r in conn.execute(text(sql))]  # noqa: E731
        assert q("SELECT id, content_hash FROM tracks ORDER BY id") == [(1, "h1"), (2, "h2")]
        assert q("SELECT id FROM albums ORDER BY id") == [(1,)]  # the copy's own album is gone
        assert q("SELECT track_id FROM track_credits ORDER BY track_id") == [(1,), (2,)]
        assert q("SELECT track_id FROM embeddings") == [(1,)]
        assert q("SELECT path, track_id FROM ingest_files ORDER BY id") == [
            ("/music/1.wav", 1), ("/music/2.wav", 2), ("/music/3.wav", 1), ("/music/4.wav", 2)]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO tracks (album_id, title, audio_path, content_hash, file_size, "
                          "file_mtime, created_at, updated_at) VALUES (1, 't', '/x.wav', 'h1', 1, 0, "
                          ":now, :now)"), {"now": now})
    engine.dispose()


@pytest.mark.slow
def test_two_processes_embedding_one_home_at_once(catalog_url, tmp_path):
    """Two processes sync the active model's index of one home at once (e.g. `artdb index` and
    `artdb models activate`): the index file is rewritten by one at a time (index.lock), the
    catalog keeps one row per track, and both end with every vector."""
    from artdb.core.ingest.pipeline import IngestOptions
    from artdb.core.ingest.service import index_catalog

    catalog = open_catalog(catalog_url)
    home = tmp_path / "home"
    root = library(tmp_path / "a", n=8, seconds=2.5)
    register_mfcc_baseline(catalog, name="first", frontend=FRONTEND, activate=True)
    summary = index_catalog(catalog, Paths.from_home(home), root, IngestOptions(workers=1))
    assert summary.counts == {"added": 8}
    model = register_mfcc_baseline(catalog, name="second", frontend=FRONTEND, activate=True)
    results = run_writers([Writer(catalog_url, str(home), str(root), sync_only=True) for _ in range(2)])
    assert_all_ran(results, 2)
    # one takes the lock and embeds all; the other then finds them in the index file it loads
    assert sum(payload["embedded"] for *_, payload in results) == 8
    assert [payload["total"] for *_, payload in results] == [8, 8]
    assert n_embedded(catalog, model) == 8
    index = open_track_index(catalog, Paths.from_home(home), model, repair=False)
    assert index.index_ids().tolist() == track_ids(catalog)
    catalog.close()


def test_a_row_made_from_audio_its_track_no_longer_has_is_replaced(two_homes):
    """A writer that embedded a track while another re-ingested it leaves a row of the old audio;
    the next sync of a home holding the new audio's features replaces it (and never keeps both)."""
    from sqlalchemy import update

    from artdb.core.vectors.index import sync_model_index

    catalog, model, home1, home2, _ = two_homes
    ids = track_ids(catalog)
    with catalog.session() as s:
        s.execute(update(Embedding).where(Embedding.track_id == ids[0]).values(content_hash="0" * 64))
    report = sync_model_index(catalog, home1, model)
    assert report.embedded == 1 and n_embedded(catalog, model) == 6
    with catalog.session() as s:
        stale = s.scalar(select(func.count()).select_from(Embedding)
                         .join(Track, Track.id == Embedding.track_id)
                         .where(Embedding.content_hash != Track.content_hash))
    assert stale == 0
    assert open_track_index(catalog, home1, model, repair=False).index_ids().tolist() == ids
    assert open_track_index(catalog, home2, model).index_ids().tolist() == ids


def test_a_home_never_embeds_features_of_audio_another_home_replaced(two_homes):
    """Both homes ingested one folder (both hold features of its tracks); home 1 re-ingests a
    changed file; home 2 syncs before home 1's own sync does: its features of that track are of the
    old audio, so it must not embed them under the new audio's name (it used to, for good)."""
    from sqlalchemy import delete

    from artdb.core.ingest.pipeline import IngestOptions
    from artdb.core.ingest.service import index_catalog
    from artdb.core.vectors.index import sync_model_index

    catalog, model, home1, home2, root = two_homes
    assert index_catalog(catalog, home2, root, IngestOptions(workers=1)).counts == {"unchanged": 6}
    ids = track_ids(catalog)
    changed = next(root.rglob("t000.wav"))
    write_audio(changed, seconds=2.5, freq=3000, seed=99, artist="Artist 0", album="Album 0", title="T0")
    assert index_catalog(catalog, home1, root, IngestOptions(workers=1)).counts == {
        "updated": 1, "unchanged": 5}
    new_vector = open_track_index(catalog, home1, model).reconstruct(np.array(ids[:1]))
    with catalog.session() as s:  # as if home 1's sync had not run yet
        s.execute(delete(Embedding).where(Embedding.track_id == ids[0]))
    assert sync_model_index(catalog, home2, model).embedded == 0
    assert n_embedded(catalog, model) == 5
    assert sync_model_index(catalog, home1, model).embedded == 1
    np.testing.assert_array_equal(open_track_index(catalog, home2, model).reconstruct(np.array(ids[:1])),
                                  new_vector)


def test_an_update_that_races_another_writer_is_planned_again(catalog, tmp_path, monkeypatch):
    """A catalogued file changes; while its batch is being written, another writer commits a track
    of the very audio it now holds. The update breaks the unique key: the batch is rolled back,
    planned again from the catalog's new state, and the file becomes a duplicate (no crash)."""
    from artdb.core.ingest.catalog_writer import CatalogWriter
    from artdb.core.ingest.pipeline import IngestOptions, ingest

    root = library(tmp_path / "lib", n=2)
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"added": 2}
    changed = sorted(root.rglob("*.wav"))[0]
    write_audio(changed, seconds=0.3, freq=2222, seed=7, artist="Artist 0", album="Album 0", title="T0")
    elsewhere = str(tmp_path / "elsewhere.wav")
    real_update = CatalogWriter.update_track
    raced = []

    def update_while_another_writer_commits(self, session, track, fa):
        if not raced:  # the other writer's own connection and transaction, committed now
            raced.append(fa.content_hash)
            with catalog.session() as other:
                other.add(Track(album_id=track.album_id, title="the other writer's", audio_path=elsewhere,
                                content_hash=fa.content_hash, file_size=1, file_mtime=0.0))
        return real_update(self, session, track, fa)

    monkeypatch.setattr(CatalogWriter, "update_track", update_while_another_writer_commits)
    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert raced and summary.status == "done"
    assert summary.counts == {"duplicate": 1, "unchanged": 1}
    assert summary.duplicates == [(str(changed.resolve()), f"same audio content as {elsewhere}")]
    assert catalog_counts(catalog)[:2] == (3, 3)


def test_a_rebuild_that_changes_the_model_reaches_every_home(two_homes, tmp_path):
    """A rebuild that changes the model's function (as a backbone model's standardisation refitted
    on the catalog does) re-embeds with the new function what it can; the rows it cannot make
    again (home 2's own tracks) go, since their vectors are of the old function, and home 2's next
    sync makes them; each home's copies of the old function are replaced (the audio alone would
    call them current)."""
    from artdb.core.ingest.pipeline import IngestOptions
    from artdb.core.ingest.service import index_catalog
    from artdb.core.learn.registry import register_stats_baseline
    from artdb.core.vectors.index import rebuild_index, sync_model_index

    catalog, _, home1, home2, _ = two_homes
    model = register_stats_baseline(catalog, home1, name="stats", frontend=FRONTEND, activate=True)
    assert sync_model_index(catalog, home1, model).embedded == 6
    own = library(tmp_path / "b", n=2, seconds=2.5, offset=50)
    assert index_catalog(catalog, home2, own, IngestOptions(workers=1)).counts == {"added": 2}
    ids = np.array(track_ids(catalog))
    before = open_track_index(catalog, home2, model).reconstruct(ids)
    shifted = {"mean": [m + 1.0 for m in model.config["mean"]]}
    report = rebuild_index(catalog, home1, model, config_update=shifted)
    assert (report.embedded, report.total) == (6, 6) and n_embedded(catalog, model) == 6
    assert sync_model_index(catalog, home2, model).embedded == 2
    after1 = open_track_index(catalog, home1, model).reconstruct(ids)
    after2 = open_track_index(catalog, home2, model).reconstruct(ids)
    assert not np.isclose(before, after2).all(axis=1).any()  # every vector is of the new function
    np.testing.assert_array_equal(after1, after2)
