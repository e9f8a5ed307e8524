"""Issue 13's "done when", as one scripted run: a hostile user against one PostgreSQL catalog.

In order, with the real ``artdb`` command (each in its own session, so survivors can be counted):

1. mistyped database URLs, as a flag and in the environment;
2. a catalog folder full of bad input (tags PostgreSQL refuses, numbers beyond its integers,
   broken and silent files, a duplicate) beside good recordings, ingested from home 1 and stopped
   by SIGTERM once a batch is committed;
3. the rerun of that ingest and, at the same moment, a second writer in home 2 on the same
   catalog, whose folder holds copies of the same recordings, the same bad tags and a few new
   recordings;
4. both ingests again (a rerun adds nothing).

It ends with 0 aborted (failed or dangling) runs, 0 orphan processes, 0 doubled recordings,
0 tracebacks, and in each home an index holding exactly the catalog's embedded tracks.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from audiofiles import write_audio
from faults import write_fault_folder
from processes import (
    artdb_env,
    finish,
    kill_session,
    needs_proc,
    start_artdb,
    survivors,
    wait_for_rows,
)
from sqlalchemy import func, select

from artdb.core.config import Paths
from artdb.core.learn.registry import active_model, register_mfcc_baseline
from artdb.core.vectors.index import index_path
from artdb.db.models import Embedding, IngestRun, Track
from artdb.db.session import Catalog
from artdb.indexer import FaissIndex

pytestmark = [needs_proc, pytest.mark.slow, pytest.mark.postgres]

BATCH = 4
RECORDINGS = 16  # good recordings beside the fault folder: enough batches for a SIGTERM to land
NEW_IN_B = 4  # recordings only the second writer's folder holds

BAD_URLS = ["notaurl", "foo://", "mysql://user:secret@db.example/cat",
            "sqlite:////typo/dir/c.sqlite"]


def run(args: list[str], env: dict[str, str], ran: list) -> subprocess.CompletedProcess:
    """``artdb ARGS`` to its end; every run is kept to be checked for tracebacks and survivors."""
    proc = start_artdb(args, env)
    try:
        done = finish(proc)
        ran.append((args, done, survivors(proc.pid)))
        return done
    finally:
        kill_session(proc.pid)


def index_args(folder: Path, *extra: str) -> list[str]:
    return ["index", str(folder), "--no-progress", "--json", "--batch-size", str(BATCH),
            "--workers", "2", *extra]


def recordings(root: Path, n: int, first_seed: int) -> None:
    for i in range(n):
        seed = first_seed + i
        write_audio(root / f"artist{seed % 3}" / f"t{seed:03d}.flac", seconds=1.5,
                    freq=140 + 29 * seed, seed=seed, artist=f"Recorder {seed % 3}",
                    album=f"Takes {seed % 3}", title=f"Take {seed}")


def test_hostile_run_on_postgresql(tmp_path, pg_url):
    ran: list = []  # (args, completed process, survivors)
    home1, home2 = tmp_path / "home-1", tmp_path / "home-2"

    # 1. bad URLs: one line each, exit status != 0, nothing created
    for url in BAD_URLS:
        for env, args in ((artdb_env(home1), ["--db", url, "stats"]),
                          (artdb_env(home1, db_url=url), ["stats"])):
            done = run(args, env, ran)
            assert done.returncode != 0, (url, done.stdout)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error:"), (url, done.stderr)
            assert "secret" not in done.stderr
    assert not Path("/typo").exists()

    # the folders: A = the fault folder + good recordings; B = copies of A's recordings and bad
    # tags, plus recordings of its own
    folder_a = tmp_path / "lib-a"
    faults = write_fault_folder(folder_a)
    recordings(folder_a / "recordings", RECORDINGS, first_seed=100)
    folder_b = tmp_path / "lib-b"
    shutil.copytree(folder_a / "recordings", folder_b / "copies")
    shutil.copytree(folder_a / "tags", folder_b / "tags")
    recordings(folder_b / "new", NEW_IN_B, first_seed=200)
    distinct = len(faults.good) + RECORDINGS + NEW_IN_B

    catalog = Catalog.open(pg_url)
    model = register_mfcc_baseline(catalog, activate=True)
    catalog.close()
    env1, env2 = artdb_env(home1, db_url=pg_url), artdb_env(home2, db_url=pg_url)
    ingest_a = index_args(folder_a, "--manifest", str(faults.manifest))
    ingest_b = index_args(folder_b)

    # 2. SIGTERM mid-ingest: a clean shutdown, the run marked interrupted, nothing left running
    proc = start_artdb(ingest_a, env1)
    try:
        wait_for_rows(pg_url, "SELECT count(*) FROM tracks", BATCH, proc)
        proc.send_signal(signal.SIGTERM)
        done = finish(proc, timeout=120)
        ran.append((ingest_a, done, survivors(proc.pid)))
    finally:
        kill_session(proc.pid)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: interrupted: what was committed is kept; run the same "
                                   "command again to resume"), done.stderr
    stopped = done.stderr

    # 3. the rerun and a second writer in another home, at once
    first, second = start_artdb(ingest_a, env1), start_artdb(ingest_b, env2)
    try:
        for args, proc in ((ingest_a, first), (ingest_b, second)):
            done = finish(proc)
            ran.append((args, done, survivors(proc.pid)))
            assert done.returncode == 0, done.stderr
            summary = json.loads(done.stdout)
            assert summary["status"] == "done"
    finally:
        kill_session(first.pid)
        kill_session(second.pid)
    rerun_a = json.loads(ran[-2][1].stdout)
    reasons = {Path(e["path"]).relative_to(folder_a.resolve()).as_posix(): e["reason"]
               for e in rerun_a["errors"]}
    assert set(reasons) == set(faults.errors), reasons  # every bad file named, with its reason
    for path, part in faults.errors.items():
        assert part in reasons[path], (path, reasons[path])

    # 4. both again: nothing added, nothing refused that was not refused before
    for args, env in ((ingest_a, env1), (ingest_b, env2)):
        done = run(args, env, ran)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"].get("added", 0) == 0

    # 0 tracebacks, 0 orphans
    for args, done, left in ran:
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert left == [], (args, left)

    # 0 aborted runs: the one SIGTERM stopped is interrupted, every other done
    catalog = Catalog.open(pg_url)
    try:
        with catalog.session() as s:
            statuses = list(s.scalars(select(IngestRun.status).order_by(IngestRun.id)))
            tracks = s.scalar(select(func.count()).select_from(Track))
            hashes = s.scalar(select(func.count(func.distinct(Track.content_hash))))
            track_ids = sorted(s.scalars(select(Track.id)))
            embedded = sorted(s.scalars(select(Embedding.track_id)
                                        .where(Embedding.model_id == model.id)))
        assert statuses == ["interrupted", "done", "done", "done", "done"], (statuses, stopped)
        # 0 doubled rows: one track per recording, every one embedded once
        assert tracks == hashes == distinct
        assert embedded == track_ids
        assert active_model(catalog).id == model.id
    finally:
        catalog.close()
    for home in (home1, home2):
        index = FaissIndex.load(index_path(Paths.from_home(home), model), expect_model=model.name)
        assert index.index_ids().tolist() == track_ids, home
        assert list(home.rglob("*.tmp")) == []
