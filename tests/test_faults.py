"""The fault suite: ``artdb index`` killed (SIGKILL, SIGTERM, named kill points), then rerun.

Real processes on a catalog of real audio files, a real SQLite (and PostgreSQL) catalog, real FAISS.
After every kill: no process of the killed run survives; after the rerun: tracks == distinct
recordings, features == tracks, embedding rows == vectors in the index == tracks, no run left
``running`` and no temporary file left in the home. Fast cases run in the default suite; the
per-point cases are ``slow``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from audiofiles import write_audio
from processes import (
    artdb_env,
    finish,
    kill_session,
    needs_proc,
    run_artdb,
    start_artdb,
    stderr_so_far,
    survivors,
    wait_for_rows,
)
from sqlalchemy import func, select
from test_curation import FRONTEND, LIBRARY, THRESHOLD, artist_index, write_library

from artdb.core.analysis.audit import run_audit
from artdb.core.config import Paths
from artdb.core.faults import ENV_POINT, ENV_SIGNAL, POINTS
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.store import open_feature_store
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import (
    active_model,
    default_frontend_config,
    register_mfcc_baseline,
    register_model,
)
from artdb.core.processes import this_process
from artdb.core.recovery import (
    mark_interrupted_runs,
    remove_stale_temporary_files,
    write_atomically,
)
from artdb.core.vectors.index import index_path
from artdb.db.models import CuratorDecision, Embedding, IngestRun, Track, TrackCredit
from artdb.db.session import Catalog
from artdb.indexer import FaissIndex
from artdb.indexer.persist import temporary_owner, temporary_path

pytestmark = needs_proc

RECORDINGS = 24
BATCH = 4


def make_recordings(root: Path, n: int = RECORDINGS) -> int:
    """``n`` distinct recordings (distinct audio content) by 3 artists, FLAC and WAV."""
    for i in range(n):
        ext = ".flac" if i % 2 else ".wav"
        write_audio(root / f"artist{i % 3}" / f"album{i % 4}" / f"t{i:02d}{ext}", seconds=1.5,
                    freq=150 + 37 * i, seed=i, artist=f"Artist {i % 3}", album=f"Album {i % 4}",
                    title=f"Track {i}")
    return n


@pytest.fixture
def home(tmp_path):
    """(home, catalog URL, library) with an active MFCC baseline, so ingest also embeds."""
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'catalog.sqlite'}"
    catalog = Catalog.open(url)
    register_mfcc_baseline(catalog, activate=True)
    catalog.close()
    lib = tmp_path / "lib"
    make_recordings(lib)
    return home, url, lib


def index_args(lib: Path, *extra: str) -> list[str]:
    return ["index", str(lib), "--no-progress", "--json", "--batch-size", str(BATCH),
            "--workers", "2", *extra]


def assert_consistent(home: Path, url: str, recordings: int) -> None:
    """The catalog, the feature store and the active model's index agree exactly."""
    paths = Paths.from_home(home)
    catalog = Catalog.open(url)
    try:
        with catalog.session() as s:
            tracks = s.scalars(select(Track.id)).all()
            hashes = s.scalar(select(func.count(func.distinct(Track.content_hash))))
            running = s.scalars(select(IngestRun.id).where(IngestRun.status == "running")).all()
        model = active_model(catalog)
        with catalog.session() as s:
            rows = s.scalars(select(Embedding.track_id).where(Embedding.model_id == model.id)).all()
        with open_feature_store(paths, default_frontend_config(catalog), mode="r") as store:
            featured = store.ids().tolist()
    finally:
        catalog.close()
    assert len(tracks) == recordings and hashes == recordings
    assert sorted(featured) == sorted(tracks)
    assert sorted(rows) == sorted(tracks)
    index = FaissIndex.load(index_path(paths, model), expect_model=model.name)
    assert index.index_ids().tolist() == sorted(rows)
    assert running == []
    assert list(home.rglob("*.tmp")) == []


def run_statuses(url: str) -> list[str]:
    catalog = Catalog.open(url)
    try:
        with catalog.session() as s:
            return list(s.scalars(select(IngestRun.status).order_by(IngestRun.id)))
    finally:
        catalog.close()


def kill_mid_ingest(home: Path, url: str, lib: Path, sig: signal.Signals) -> None:
    """Start ``artdb index``, send ``sig`` once a batch is committed (the pools are busy), and
    check that nothing of the run survives."""
    catalog = Catalog.open(url)
    with catalog.session() as s:
        before = s.scalar(select(func.count()).select_from(Track))
    catalog.close()
    proc = start_artdb(index_args(lib), artdb_env(home))
    try:
        wait_for_rows(url, "SELECT count(*) FROM tracks", before + BATCH, proc)
        proc.send_signal(sig)
        done = finish(proc, timeout=120)
        assert done.returncode != 0, "the run ended before the signal"
        assert survivors(proc.pid) == []
        if sig == signal.SIGTERM:
            assert "Traceback" not in done.stderr, done.stderr
    finally:
        kill_session(proc.pid)


def rerun(home: Path, url: str, lib: Path) -> dict:
    out = run_artdb(index_args(lib), artdb_env(home))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def kill_at(home: Path, lib: Path, point: str, *extra: str) -> None:
    """Run ``artdb index`` with the kill point armed; it must die there, leaving no process."""
    proc = start_artdb(index_args(lib, *extra), artdb_env(home, **{ENV_POINT: point}))
    try:
        done = finish(proc)
        assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr)
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)


def test_sigterm_then_kill_at_features_then_rerun_is_consistent(home):
    """The default suite's fault run. SIGTERM mid-ingest shuts down like Ctrl-C (run marked
    interrupted, no process left); SIGKILL with the pools busy and a batch's features durable but
    its rows not ("after features committed") leaves no orphan, and its run is marked interrupted
    by the next start; the rerun finds the feature store unlocked and completes exactly."""
    home, url, lib = home
    kill_mid_ingest(home, url, lib, signal.SIGTERM)
    assert run_statuses(url) == ["interrupted"]
    kill_at(home, lib, "after features committed")
    assert run_statuses(url) == ["interrupted", "running"]  # nobody could mark it
    summary = rerun(home, url, lib)
    assert summary["status"] == "done" and not summary["errors"]
    assert run_statuses(url) == ["interrupted", "interrupted", "done"]
    assert_consistent(home, url, RECORDINGS)


@pytest.mark.slow
def test_sigkill_mid_ingest_then_kill_between_index_and_sidecar_then_rerun(home):
    """An outside SIGKILL while both pools work, then a kill between the index file's rename and
    its sidecar's (the index then fails its checksum and is rebuilt from the catalog)."""
    home, url, lib = home
    kill_mid_ingest(home, url, lib, signal.SIGKILL)
    assert run_statuses(url) == ["running"]
    kill_at(home, lib, "between index and sidecar")  # after the ingest itself finished
    rerun(home, url, lib)
    assert run_statuses(url) == ["interrupted", "done", "done"]
    assert_consistent(home, url, RECORDINGS)


INGEST_POINTS = ["after features committed", "before feature commit", "after batch committed",
                 "after embedding rows committed", "before index rename", "between index and sidecar"]


@pytest.mark.slow
@pytest.mark.parametrize("point", INGEST_POINTS)
def test_ingest_killed_at_point_then_rerun_is_consistent(home, point):
    home, url, lib = home
    kill_at(home, lib, point)
    rerun(home, url, lib)
    assert_consistent(home, url, RECORDINGS)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after rebuild rows committed", "before index rename",
                                   "between index and sidecar"])
def test_rebuild_index_killed_at_point_then_rerun_is_consistent(home, point):
    home, url, lib = home
    rerun(home, url, lib)
    kill_at(home, lib, point, "--rebuild-index")
    rerun(home, url, lib)
    assert_consistent(home, url, RECORDINGS)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_sigkill_mid_ingest_then_rerun_is_consistent(tmp_path, pg_url):
    home = tmp_path / "home"
    catalog = Catalog.open(pg_url)
    register_mfcc_baseline(catalog, activate=True)
    catalog.close()
    lib = tmp_path / "lib"
    make_recordings(lib)
    proc = start_artdb(index_args(lib), artdb_env(home, db_url=pg_url))
    try:
        wait_for_rows(pg_url, "SELECT count(*) FROM tracks", BATCH, proc)
        proc.send_signal(signal.SIGKILL)
        finish(proc, timeout=60)
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)
    out = run_artdb(index_args(lib), artdb_env(home, db_url=pg_url))
    assert out.returncode == 0, out.stderr
    assert_consistent(home, pg_url, RECORDINGS)


POOL_THEN_DIE = """
import os, signal, sys
from artdb.core.executor import process_pool
pool = process_pool(2, start_method=sys.argv[1])
print(sorted(pool.map(abs, [-1, -2])), flush=True)  # the workers are up
os.kill(os.getpid(), signal.SIGKILL if sys.argv[2] == "KILL" else signal.SIGTERM)
"""


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_pool_workers_die_with_their_parent(start_method, sig, tmp_path):
    """Workers of every pool (``core.executor.process_pool``) die when their parent is killed,
    whatever the start method: none is left blocked on the pool's queue."""
    proc = subprocess.Popen([sys.executable, "-c", POOL_THEN_DIE, start_method, sig],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=120)
        assert proc.returncode == -getattr(signal, f"SIG{sig}")
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)


def test_only_runs_of_provably_dead_owners_are_marked_interrupted(catalog):
    """A run is marked interrupted only when its process is gone from this host: not a live
    concurrent writer's, not another host's, not one without a recorded owner."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = this_process()
    runs = {
        "live": dict(owner_host=me.host, owner_pid=me.pid, owner_started=me.started),
        "dead": dict(owner_host=me.host, owner_pid=gone.pid),
        "reused": dict(owner_host=me.host, owner_pid=me.pid, owner_started="another-boot:1"),
        "elsewhere": dict(owner_host="another-host.example", owner_pid=gone.pid),
        "unrecorded": {},
        "finished": dict(owner_host=me.host, owner_pid=gone.pid, status="done"),
    }
    ids = {}
    with catalog.session() as s:
        for name, fields in runs.items():
            run = IngestRun(root=f"/{name}", status=fields.pop("status", "running"), **fields)
            s.add(run)
            s.flush()
            ids[name] = run.id
    assert sorted(mark_interrupted_runs(catalog)) == sorted([ids["dead"], ids["reused"]])
    with catalog.session() as s:
        status = {r.root[1:]: r.status for r in s.scalars(select(IngestRun))}
    assert status == {"live": "running", "dead": "interrupted", "reused": "interrupted",
                      "elsewhere": "running", "unrecorded": "running", "finished": "done"}
    assert mark_interrupted_runs(catalog) == []


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    folder = paths.indexes / "1-m"
    folder.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    mine = temporary_path(folder / "track.faiss")  # this (live) process is writing it
    dead = folder / f".track.faiss.{gone.pid}@{host}.abcd1234.tmp"
    dead_model = paths.models / f".m.pt.{gone.pid}@{host}.zz_9yx00.tmp"
    elsewhere = folder / f".track.faiss.{gone.pid}@another-host.example.abcd1234.tmp"
    unowned = folder / "notes.tmp"
    for path in (dead, dead_model, elsewhere, unowned):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert temporary_owner(mine) == (host, os.getpid())
    assert sorted(remove_stale_temporary_files(paths)) == sorted([dead, dead_model])
    assert mine.exists() and elsewhere.exists() and unowned.exists()
    assert not dead.exists() and not dead_model.exists()


def test_a_killed_write_outside_the_home_is_cleaned_by_the_next_write_of_that_file(tmp_path):
    """A report or export lives wherever the user asked, outside any home: the temporary file a
    killed write left beside it goes at the next write of the same file, never a live writer's."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    target = tmp_path / "report.html"
    dead = tmp_path / f".report.html.{gone.pid}@{host}.abcd1234.tmp"
    live = tmp_path / f".report.html.{os.getppid()}@{host}.abcd1234.tmp"
    other = tmp_path / f".export.npy.{gone.pid}@{host}.abcd1234.tmp"  # another file's: not ours to judge
    for path in (dead, live, other):
        path.write_bytes(b"half")
    write_atomically(target, lambda f: f.write(b"<html>"))
    assert target.read_bytes() == b"<html>"
    assert not dead.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])


PEER_THEN_DIE = """
import os, signal, sys, threading, time
from artdb.core.evaluation.peers import run_musicnn
threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGKILL)).start()
run_musicnn(["x.wav"], sys.executable, sys.argv[1], script=sys.argv[2])
"""

PEER_SCRIPT = "import time\ntime.sleep(600)\n"  # stands for minutes of TensorFlow


def test_the_peer_subprocess_dies_with_artdb(tmp_path):
    """`artdb evaluate --peer` runs the TensorFlow peer as a child process for minutes: when artdb
    is killed, the kernel kills the peer too (no TensorFlow process left eating the cores)."""
    script = tmp_path / "peer.py"
    script.write_text(PEER_SCRIPT)
    proc = subprocess.Popen([sys.executable, "-c", PEER_THEN_DIE, str(tmp_path / "out.npz"),
                             str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)


def test_every_kill_point_is_named_in_the_suite():
    """A kill point nobody kills at proves nothing: each is exercised above or below."""
    exercised = set(INGEST_POINTS) | {"after rebuild rows committed", "before checkpoint rename",
                                      "after split committed",
                                      "dask worker analysed a file"}  # tests/test_dask.py
    assert exercised == set(POINTS)


@pytest.mark.slow
def test_second_artdb_index_on_a_home_waits_for_the_first(home):
    """`artdb index` on a home whose feature store another process writes (here: this test)
    waits, says for whom, and completes once the first lets go."""
    home, url, lib = home
    first = open_feature_store(Paths.from_home(home), FrontendConfig())
    proc = start_artdb(index_args(lib), artdb_env(home))
    try:
        expected = f"waiting for another artdb process (pid {os.getpid()}) writing this home"
        deadline = time.monotonic() + 300
        while expected not in stderr_so_far(proc):
            assert proc.poll() is None and time.monotonic() < deadline, stderr_so_far(proc)
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting
        first.close()
        done = finish(proc)
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("waiting for another artdb process") == 1
    finally:
        first.close()
        kill_session(proc.pid)
    assert_consistent(home, url, RECORDINGS)


@pytest.mark.slow
def test_train_killed_before_checkpoint_rename_leaves_no_model_and_no_tmp(home):
    home, url, lib = home
    rerun(home, url, lib)
    train = ["train", "--backbone", "none", "--steps", "4", "--val-every", "2", "--name", "m1",
             "--no-progress", "--json"]
    proc = start_artdb(train, artdb_env(home, **{ENV_POINT: "before checkpoint rename"}))
    try:
        done = finish(proc)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)
    assert list((home / "models").glob("*.tmp")), "the kill left no temporary checkpoint"
    catalog = Catalog.open(url)
    assert active_model(catalog).name == "mfcc"  # the killed training registered nothing
    catalog.close()
    rerun(home, url, lib)  # the next start removes the dead process's temporary file
    assert list((home / "models").glob("*.tmp")) == []
    out = run_artdb(train, artdb_env(home))
    assert out.returncode == 0, out.stderr
    assert_consistent(home, url, RECORDINGS)


@pytest.mark.slow
def test_sigterm_by_kill_point_marks_run_interrupted(home):
    """ARTDB_FAULT_SIGNAL=TERM: the same points, delivered as SIGTERM (a clean shutdown)."""
    home, url, lib = home
    proc = start_artdb(index_args(lib), artdb_env(home, **{ENV_POINT: "after batch committed",
                                                         ENV_SIGNAL: "TERM"}))
    try:
        done = finish(proc)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)
    assert run_statuses(url) == ["interrupted"]
    rerun(home, url, lib)
    assert_consistent(home, url, RECORDINGS)



@pytest.mark.slow
def test_split_killed_after_commit_then_the_artist_index_follows(catalog, tmp_path):
    """`artdb split` killed right after its transaction: the split is whole (one transaction) and
    the artist-page index, saved before at the old revision, is rebuilt to the new pages."""
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-test", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20,
                                   "audit": {"threshold": THRESHOLD, "linkage": "average",
                                             "metric": "cosine"}}, activate=True)
    write_library(tmp_path / "lib", LIBRARY)
    index_catalog(catalog, paths, tmp_path / "lib", IngestOptions(workers=1))
    run_audit(catalog, paths, model)
    before, _ = artist_index(catalog, paths, model)
    url = catalog.engine.url.render_as_string(hide_password=False)
    proc = start_artdb(["split", "Eclipse"],
                       artdb_env(paths.home, db_url=url, **{ENV_POINT: "after split committed"}))
    try:
        done = finish(proc)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)
    with catalog.session() as s:
        credited = sorted(set(s.scalars(select(TrackCredit.page_id).join(
            Embedding, (Embedding.track_id == TrackCredit.track_id) & (Embedding.model_id == model.id))
            .where(TrackCredit.position == 0))))
        decisions = s.scalars(select(CuratorDecision.action)).all()
    assert decisions == ["split"]
    after, _ = artist_index(catalog, paths, model)
    assert after.tolist() == credited and len(after) == len(before) + 1
