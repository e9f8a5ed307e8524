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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import select
from test_vectors import FRONTEND, cnn_model

from artdb.cli.main import cli
from artdb.core.config import Paths
from artdb.core.faults import ENV_COUNT, ENV_POINT
from artdb.core.features.store import open_feature_store
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.vectors import index as vectors
from artdb.db.models import Album, ArtistPage, Embedding, Track
from artdb.db.session import Catalog

distributed = pytest.importorskip("distributed", reason="the 'dist' extra (dask[distributed]) is missing")

DASK = str(Path(sys.executable).parent / "dask")


class LoopbackCluster:
    """A scheduler and workers on 127.0.0.1, each its own process (no nanny: a killed worker
    stays dead)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.directory / f"proc{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=self.directory)
        self.procs.append(proc)
        return proc

    def start(self, workers: int = 2, worker_env: list[dict] | None = None) -> str:
        self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(self.scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(workers):
            self.workers.append(self._spawn(
                ["worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
                 "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
                 "--local-directory", str(self.directory / f"w{i}")],
                env=(worker_env or [{}] * workers)[i]))
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        return address

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def alive(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]


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


def home_with_model(tmp_path: Path, name: str):
    """A home and catalog with a small CNN active (seeded: every home gets the same weights)."""
    torch.manual_seed(0)
    paths = Paths.from_home(tmp_path / name)
    catalog = Catalog.open(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
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


def test_a_loopback_cluster_ingests_and_embeds_like_a_local_run(cluster, tmp_path):
    """`artdb index --executor dask --scheduler ADDR` = a local run: rows, features, vectors;
    `--rebuild-index` embeds on the cluster too."""
    root = tmp_path / "lib"
    recordings = library(root, 7)
    address = cluster.start(2)

    local_cat, local_paths, local_model = home_with_model(tmp_path, "local")
    local = index_catalog(local_cat, local_paths, root, IngestOptions(workers=1))
    dask_cat, dask_paths, dask_model = home_with_model(tmp_path, "dask")
    assert dask_model.checksum == local_model.checksum

    def artdb_index(*args: str) -> dict:
        result = CliRunner().invoke(cli, [
            "--home", str(dask_paths.home), "--db", f"sqlite:///{tmp_path / 'dask.sqlite'}",
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

    # a rerun adds nothing; --rebuild-index embeds every track again, on the workers, to the same vectors
    assert artdb_index("--rebuild-index")["counts"] == {"unchanged": recordings, "duplicate": 1}
    rebuilt = snapshot(dask_cat, dask_paths, dask_model)
    for path in a:
        np.testing.assert_allclose(rebuilt[path]["vector"], a[path]["vector"], rtol=0, atol=1e-6)


@pytest.mark.slow  # ~1 min on 2 cores: `make test-faults` runs it (CI too)
def test_a_worker_killed_mid_run_costs_only_a_retry(cluster, tmp_path):
    root = tmp_path / "lib"
    recordings = library(root, 16)
    # the first worker dies (SIGKILL) once it has analysed its 3rd file, before sending it back
    address = cluster.start(2, worker_env=[{ENV_POINT: "dask worker analysed a file", ENV_COUNT: "3"}, {}])
    catalog, paths, model = home_with_model(tmp_path, "home")
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
