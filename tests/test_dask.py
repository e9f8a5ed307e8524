"""``artdb index --executor dask`` on a real cluster on loopback: a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 started here (no dashboard, one thread each), the catalog
ingested and embedded by them with this process as the only writer.

- the same catalog rows, features and vectors as a local run (CNN checkpoint sent to the workers);
- a worker killed mid-run (a kill point after its 3rd file): its tasks run again on the other one,
  every recording catalogued once, nothing lost;
- every process started here is gone afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from audiofiles import write_audio
from click.testing import CliRunner
from loopback import LoopbackCluster
from processes import artdb_env, finish, kill_session, needs_proc, start_artdb, survivors
from sqlalchemy import select
from test_vectors import FRONTEND, cnn_model

from artdb.cli.main import cli
from artdb.core.analysis.audit import run_audit
from artdb.core.config import Paths
from artdb.core.faults import ENV_COUNT, ENV_POINT
from artdb.core.features.store import open_feature_store
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.vectors import index as vectors
from artdb.db.models import Album, ArtistPage, Embedding, Track
from artdb.db.session import Catalog

distributed = pytest.importorskip("distributed", reason="the 'dist' extra (dask[distributed]) is missing")

@pytest.fixture
def cluster(tmp_path):
    c = LoopbackCluster(tmp_path)
    yield c
    c.stop()
    assert c.alive() == [], "a process of the loopback cluster outlived the test"


def library(root: Path, n: int) -> int:
    """``n`` files of 2.5 s, two artists; the last one a copy of the first under another name.
    Returns the number of distinct recordings."""
    for i in range(n - 1):
        write_audio(root / f"A{i % 2}" / f"t{i:02d}.flac", seconds=2.5, freq=150 + 60 * i, seed=i,
                    artist=f"Artist {i % 2}", album=f"Album {i % 4}", title=f"T{i}")
    shutil.copy(root / "A0" / "t00.flac", root / "A0" / "copy of t00.flac")
    return n - 1


def home_with_model(tmp_path: Path, name: str, url: str | None = None):
    """A home and catalog (SQLite unless ``url``) with a small CNN active (seeded: every home gets
    the same weights)."""
    torch.manual_seed(0)
    paths = Paths.from_home(tmp_path / name)
    catalog = Catalog.open(url or f"sqlite:///{tmp_path / f'{name}.sqlite'}")
    return catalog, paths, cnn_model(catalog, paths)


def snapshot(catalog: Catalog, paths: Paths, model) -> dict:
    """Everything an ingest writes, keyed by file path: the row, the features and the vector."""
    with catalog.session() as s:
        rows = s.execute(select(Track.audio_path, Track.id, Track.content_hash, Track.title,
                                Album.title, ArtistPage.display_name)
                         .join(Album, Track.album_id == Album.id)
                         .join(ArtistPage, Album.page_id == ArtistPage.id)).all()
        embedded = dict(s.execute(select(Embedding.track_id, Embedding.vector)
                                  .where(Embedding.model_id == model.id)).all())
    index = vectors.open_track_index(catalog, paths, model)
    out = {}
    with open_feature_store(paths, FRONTEND, mode="r") as store:
        for path, tid, digest, title, album, page in rows:
            out[path] = {"row": (digest, title, album, page),
                         "features": store.get_many([tid])[0],
                         "vector": np.frombuffer(embedded[tid], dtype="<f4"),
                         "indexed": index.reconstruct(np.array([tid]))[0]}
    return out


def _track_id(catalog: Catalog, path: str) -> int:
    with catalog.session() as s:
        return s.scalar(select(Track.id).where(Track.audio_path == path))


def test_a_loopback_cluster_ingests_and_embeds_like_a_local_run(cluster, tmp_path, catalog_url):
    """`artdb index --executor dask --scheduler ADDR` = a local run: rows, features, vectors;
    `--rebuild-index` embeds on the cluster too. The cluster's catalog on SQLite and on
    PostgreSQL (the shared catalog of docs/scale.md's deployment)."""
    root = tmp_path / "lib"
    recordings = library(root, 7)
    address = cluster.start(2)

    local_cat, local_paths, local_model = home_with_model(tmp_path, "local")
    local = index_catalog(local_cat, local_paths, root, IngestOptions(workers=1))
    dask_cat, dask_paths, dask_model = home_with_model(tmp_path, "dask", catalog_url)
    assert dask_model.checksum == local_model.checksum

    def artdb_index(*args: str) -> dict:
        result = CliRunner().invoke(cli, [
            "--home", str(dask_paths.home), "--db", catalog_url,
            "index", str(root), "--executor", "dask", "--scheduler", address, "--json", "--no-progress",
            *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    remote = artdb_index()
    assert remote["counts"] == local.counts == {"added": recordings, "duplicate": 1}
    # each file analysed once, by one of the two workers
    assert sum(remote["per_worker"].values()) == recordings + 1
    with distributed.Client(address) as client:
        assert set(remote["per_worker"]) <= set(client.scheduler_info()["workers"])
    a, b = snapshot(local_cat, local_paths, local_model), snapshot(dask_cat, dask_paths, dask_model)
    assert sorted(a) == sorted(b) and len(a) == recordings
    for path in a:
        assert a[path]["row"] == b[path]["row"]
        np.testing.assert_array_equal(a[path]["features"], b[path]["features"])
        np.testing.assert_allclose(a[path]["vector"], b[path]["vector"], rtol=0, atol=1e-6)
        # the index holds the row's vector (re-normalised on the way in)
        np.testing.assert_allclose(b[path]["vector"], b[path]["indexed"], rtol=0, atol=1e-6)

    # every file with new audio decoded once on a worker (the copy is hashed, found a duplicate)
    assert sum(remote["decoded_per_worker"].values()) == recordings + 1
    # touched files (new mtime, same audio): hashed on the workers, decoded by none, nothing rewritten
    for f in root.rglob("*.flac"):
        os.utime(f, (f.stat().st_atime, f.stat().st_mtime + 60))
    touched = artdb_index()
    assert touched["counts"] == {"unchanged": recordings, "duplicate": 1}
    assert sum(touched["per_worker"].values()) == recordings + 1
    assert sum(touched["decoded_per_worker"].values()) == 1  # only the duplicate, which has no track
    assert snapshot(dask_cat, dask_paths, dask_model).keys() == b.keys()
    # two tracks whose features went missing: touched, they are decoded again, to the same features
    lost = sorted(b)[:2]
    with open_feature_store(dask_paths, FRONTEND) as store:
        store.delete([_track_id(dask_cat, p) for p in lost])
    for f in root.rglob("*.flac"):
        os.utime(f, (f.stat().st_atime, f.stat().st_mtime + 60))
    refilled = artdb_index()
    assert refilled["counts"] == {"unchanged": recordings, "duplicate": 1}
    assert sum(refilled["decoded_per_worker"].values()) == 2 + 1
    again = snapshot(dask_cat, dask_paths, dask_model)
    for path in lost:
        np.testing.assert_array_equal(again[path]["features"], b[path]["features"])

    # an unchanged folder: no file analysed on any worker, the remembered duplicate included (it was
    # decoded on every run before duplicates were remembered)
    rerun = artdb_index()
    assert rerun["counts"] == {"unchanged": recordings, "duplicate": 1}
    assert sum(rerun["per_worker"].values()) == sum(rerun["decoded_per_worker"].values()) == 0
    # a rerun adds nothing; --rebuild-index embeds every track again, on the workers, to the same vectors
    assert artdb_index("--rebuild-index")["counts"] == {"unchanged": recordings, "duplicate": 1}
    rebuilt = snapshot(dask_cat, dask_paths, dask_model)
    for path in a:
        np.testing.assert_allclose(rebuilt[path]["vector"], a[path]["vector"], rtol=0, atol=1e-6)

    # the audit clusters its pages on the cluster to the same report as here
    def audit(**where):
        report = run_audit(dask_cat, dask_paths, dask_model, threshold=8.5e-5, store=False, **where)
        return [(p.page_id, p.album_ids, p.labels, round(p.score, 9)) for p in report.pages]

    here = audit()
    assert sorted(len(set(labels)) for _, _, labels, _ in here) == [1, 2]  # one page split, one kept
    assert audit(executor_backend="dask", scheduler_address=address) == here

    # workers pick their device themselves (cuda where they have it); --device cuda asked of workers
    # that have none stops before anything is written, naming the worker
    if not torch.cuda.is_available():
        result = CliRunner().invoke(cli, [
            "--home", str(dask_paths.home), "--db", catalog_url, "index", str(root), "--executor", "dask",
            "--scheduler", address, "--device", "cuda", "--no-progress"])
        assert result.exit_code != 0
        assert "worker tcp://127.0.0.1:" in result.output and "has no CUDA device" in result.output
        assert snapshot(dask_cat, dask_paths, dask_model).keys() == rebuilt.keys()


@pytest.mark.slow  # ~1 min on 2 cores per back-end: `make test-faults` runs it (CI too)
def test_a_worker_killed_mid_run_costs_only_a_retry(cluster, tmp_path, catalog_url):
    root = tmp_path / "lib"
    recordings = library(root, 16)
    # the first worker dies (SIGKILL) once it has analysed its 3rd file, before sending it back
    address = cluster.start(2, worker_env=[{ENV_POINT: "dask worker analysed a file", ENV_COUNT: "3"}, {}])
    catalog, paths, model = home_with_model(tmp_path, "home", catalog_url)
    summary = index_catalog(catalog, paths, root, IngestOptions(executor_backend="dask",
                                                                scheduler_address=address, batch_size=4))

    cluster.workers[0].wait(timeout=60)
    assert cluster.workers[0].returncode == -signal.SIGKILL  # it did die mid-run
    assert summary.status == "done" and summary.errors == []
    assert summary.counts == {"added": recordings, "duplicate": 1}
    with catalog.session() as s:
        hashes = s.scalars(select(Track.content_hash)).all()
        embedded = s.scalars(select(Embedding.track_id).where(Embedding.model_id == model.id)).all()
    assert len(hashes) == len(set(hashes)) == recordings  # nothing doubled, nothing lost
    assert len(embedded) == recordings
    assert vectors.open_track_index(catalog, paths, model).ntotal == recordings
    # every file counted once, for the worker whose result came back
    assert sum(summary.per_worker.values()) == recordings + 1
    catalog.close()


@needs_proc
def test_local_cluster_workers_die_with_a_killed_artdb_index(tmp_path):
    """`artdb index --executor dask` without --scheduler starts a local cluster on 127.0.0.1: killed
    (SIGKILL after its first batch), it leaves none of its worker processes behind."""
    root = tmp_path / "lib"
    library(root, 6)
    env = artdb_env(tmp_path / "home", **{ENV_POINT: "after batch committed"})
    proc = start_artdb(["index", str(root), "--executor", "dask", "--workers", "2", "--batch-size", "2",
                        "--no-progress"], env)
    try:
        done = finish(proc, timeout=300)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert survivors(proc.pid) == []
    finally:
        kill_session(proc.pid)


@pytest.mark.slow  # worker processes restarted six times: 15-60 s
def test_a_file_that_kills_every_worker_becomes_its_error(tmp_path, monkeypatch):
    """A task that kills whichever worker runs it (here: every task, by a kill point armed in the
    local cluster's workers) is given up after Dask's retries and becomes that file's error; the
    run itself ends `done`."""
    root = tmp_path / "lib"
    for i in range(2):
        write_audio(root / f"t{i}.flac", seconds=2.5, freq=200 + 50 * i, seed=i, artist="A", album="B")
    monkeypatch.setenv(ENV_POINT, "dask worker analysed a file")  # inherited by the local workers
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.sqlite'}")
    summary = index_catalog(catalog, Paths.from_home(tmp_path / "home"), root,
                            IngestOptions(executor_backend="dask", workers=1), with_features=False)
    assert summary.status == "done" and summary.counts == {"error": 2}
    assert all("killed the Dask worker" in reason for _, reason in summary.errors), summary.errors
    catalog.close()
