"""Scaling of ``artdb index``: the local pool against a loopback Dask cluster of 1 and 2 workers, and
the coordinator's write-side ceiling. JSON out.

One synthetic catalog (``--tracks`` files of ``--seconds`` s, FLAC/OGG/MP3/WAV, 22.05 kHz) and an
active model (the log-mel CNN, untrained: the same work per track as a trained one) are ingested
from scratch, in the same run, by:

- ``local``: ``--executor process --workers W`` (analysis pool + decode pool, log-mels and
  embedding in this process);
- ``dask_1``, ``dask_2``: a ``dask scheduler`` and 1 or 2 ``dask worker`` processes (one thread
  each) on 127.0.0.1; each worker analyses, decodes, extracts and embeds, this process writes.

Write-side ceiling: the products of the ``dask_2`` run (analysis, features, vectors) are replayed
into a fresh catalog with no computing at all, so only this process's writing is timed: with
features and vectors (feature store writes with fsync, catalog rows, embedding rows) and with
features off (catalog rows only). A bigger cluster cannot ingest faster than that.

    python bench/scale.py --tracks 120 --out bench/results/scale.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch  # noqa: E402
from audiofiles import write_audio  # noqa: E402
from loopback import LoopbackCluster  # noqa: E402

from artdb.core.config import Paths  # noqa: E402
from artdb.core.executor import dask_client  # noqa: E402
from artdb.core.features.frontend.config import FrontendConfig  # noqa: E402
from artdb.core.features.store import open_feature_store  # noqa: E402
from artdb.core.ingest.cluster import ClusterStage, ModelSpec  # noqa: E402
from artdb.core.ingest.pipeline import IngestOptions, ingest  # noqa: E402
from artdb.core.ingest.service import index_catalog  # noqa: E402
from artdb.core.learn.checkpoint import save_checkpoint  # noqa: E402
from artdb.core.learn.networks import ModelConfig, build_model  # noqa: E402
from artdb.core.learn.registry import active_model, register_model  # noqa: E402
from artdb.core.vectors.index import store_vectors  # noqa: E402
from artdb.db.session import Catalog  # noqa: E402

EXTS = (".flac", ".ogg", ".mp3", ".wav")


def make_catalog(root: Path, tracks: int, seconds: float) -> None:
    for i in range(tracks):
        artist = f"Artist {i // 12:03d}"
        write_audio(root / artist / f"Album {i // 4:04d}" / f"{i:05d}{EXTS[i % 4]}", seconds=seconds,
                    freq=110 + 7 * i, seed=i, artist=artist, album=f"Album {i // 4:04d}", title=f"T{i}")


def new_home(base: Path, name: str) -> tuple[Catalog, Paths]:
    """A home and catalog with the untrained log-mel CNN active (the same weights every time)."""
    torch.manual_seed(0)
    paths = Paths.from_home(base / name)
    catalog = Catalog.open(f"sqlite:///{base / f'{name}.sqlite'}")
    frontend = FrontendConfig()
    net = build_model(ModelConfig(n_mels=frontend.n_mels))
    path = paths.models / "cnn.pt"
    sha = save_checkpoint(path, net, frontend=frontend)
    register_model(catalog, name="cnn", kind="untrained", dim=int(net.cfg.embedding_dim),
                   config={"frontend": frontend.to_dict()}, checkpoint_path=paths.relative(path),
                   checksum=sha, activate=True)
    return catalog, paths


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (``/proc/PID/stat``), children that exited included."""
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def timed(label: str, fn, *args, workers: list[int] = ()) -> dict:
    """Wall and CPU seconds of ``fn(*args)``: this process's (the writer, plus its own pools) and
    the Dask workers' (``workers``: their pids). CPU per track holds up on a shared machine."""
    t0, c0, w0 = time.perf_counter(), cpu_seconds([os.getpid()]), cpu_seconds(workers)
    summary = fn(*args)
    seconds = time.perf_counter() - t0
    client_cpu = cpu_seconds([os.getpid()]) - c0
    out = {"seconds": round(seconds, 2), "tracks_per_s": round(summary.files / seconds, 2),
           "counts": summary.counts,
           "this_process_cpu_s_per_track": round(client_cpu / summary.files, 4)}
    if workers:
        out["workers_cpu_s_per_track"] = round((cpu_seconds(workers) - w0) / summary.files, 4)
    if summary.per_worker is not None:
        out["per_worker"] = sorted(summary.per_worker.values())
    print(label, json.dumps(out), flush=True)
    return out


class Recorder:
    """Wraps an analyser and keeps what it yields (the products of every file)."""

    def __init__(self, inner):
        self.inner, self.items = inner, []
        self.per_worker = inner.per_worker

    def analyse(self, jobs):
        for item in self.inner.analyse(jobs):
            self.items.append(item)
            yield item


class Replay:
    """Yields recorded products again: ingest then only writes."""

    per_worker = None

    def __init__(self, items):
        self.items = items

    def analyse(self, jobs):
        for _ in jobs:
            pass
        yield from self.items


def cluster_ingest(catalog: Catalog, paths: Paths, root: Path, address: str, recorder: list | None,
                   options: IngestOptions):
    """What ``index_catalog`` does on a cluster, with the analyser wrapped to record its products."""
    config = FrontendConfig()
    model = active_model(catalog)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(scheduler_address=address))
        store = stack.enter_context(open_feature_store(paths, config))
        stage = stack.enter_context(ClusterStage(
            client, [(store, config, "log-mels")], ModelSpec.of(model, paths), 0, 2 * options.batch_size,
            lambda rows, vectors: store_vectors(catalog, model, rows, vectors)))
        analyser = Recorder(stage)
        summary = ingest(catalog, root, options, features=stage, analyser=analyser)
    recorder.extend(analyser.items)
    return summary


def replay(catalog: Catalog, paths: Paths, root: Path, items: list, with_features: bool,
           options: IngestOptions):
    config = FrontendConfig()
    model = active_model(catalog)
    with contextlib.ExitStack() as stack:
        if not with_features:
            return ingest(catalog, root, options, features=None,
                          analyser=Replay([(n, r, None) for n, r, _ in items]))
        store = stack.enter_context(open_feature_store(paths, config))

        class Writer(ClusterStage):  # the stage's writing side, without a cluster
            def __init__(self):
                self.stores = [(store, config, "log-mels")]
                self._pending = []
                self.store_vectors = lambda rows, vectors: store_vectors(catalog, model, rows, vectors)

        return ingest(catalog, root, options, features=Writer(), analyser=Replay(items))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=120)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2, help="local pool size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    result: dict = {"tracks": args.tracks, "seconds_per_track": args.seconds, "batch_size": args.batch_size,
                    "model": "log-mel CNN (untrained, default ModelConfig), default FrontendConfig",
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "load_average_start": os.getloadavg()},
                    "note": args.note}
    options = IngestOptions(workers=args.workers, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(prefix="artdb-scale-") as tmp:
        base = Path(tmp)
        root = base / "lib"
        t0 = time.perf_counter()
        make_catalog(root, args.tracks, args.seconds)
        result["synth_s"] = round(time.perf_counter() - t0, 1)

        catalog, paths = new_home(base, "local")
        result["local"] = timed("local", index_catalog, catalog, paths, root, options)
        recorded: list = []
        for n in (1, 2):
            cluster = LoopbackCluster(base / f"cluster{n}")
            cluster.directory.mkdir()
            try:
                address = cluster.start(n)
                catalog, paths = new_home(base, f"dask{n}")
                dask_options = IngestOptions(executor_backend="dask", scheduler_address=address,
                                             batch_size=args.batch_size)
                if n == 1:
                    result["dask_1"] = timed("dask_1", index_catalog, catalog, paths, root, dask_options,
                                             workers=[w.pid for w in cluster.workers])
                else:  # as index_catalog does, recording the workers' products for the replay
                    result["dask_2"] = timed("dask_2", cluster_ingest, catalog, paths, root, address,
                                             recorded, dask_options, workers=[w.pid for w in cluster.workers])
            finally:
                cluster.stop()
        for with_features in (True, False):
            catalog, paths = new_home(base, f"replay{int(with_features)}")
            key = "write_ceiling" if with_features else "write_ceiling_features_off"
            result[key] = timed(key, replay, catalog, paths, root, recorded, with_features, options)
    for key in ("dask_1", "dask_2"):
        result[key]["vs_local"] = round(result[key]["tracks_per_s"] / result["local"]["tracks_per_s"], 2)
    result["dask_2_vs_dask_1"] = round(result["dask_2"]["tracks_per_s"] / result["dask_1"]["tracks_per_s"], 2)
    result["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
