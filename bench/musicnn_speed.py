"""Speed of the torch musicnn port against the TensorFlow original, per track, same tracks, same run.

    .venv/bin/python bench/musicnn_speed.py [--catalog /work/cache/realcat-dev] [--tracks 10]
        [--seconds 30] [--threads 1 2] [--conv-path] [--tf-python /work/cache/musicnn-venv/bin/python]

Tracks: the first track (by path) of each of the first ``--tracks`` artists of the catalog
manifest, a centred ``--seconds`` window of each (10 non-overlapping 3-s patches for 30 s).
Per track, both sides do the same work: ``librosa.load(sr=16000, offset, duration)``, musicnn's
log-mel, MSD_musicnn on all patches, mean ``penultimate``.

- torch: ``artdb.core.features.musicnn`` on CPU with ``torch.set_num_threads(threads)``, in a
  subprocess of this venv (this file with ``--worker torch``);
- TensorFlow: musicnn's own ``batch_data`` steps and graph (as ``bench/peers/musicnn_embed.py``:
  graph built and restored once, intra-op threads ``threads``, inter-op 1), in a subprocess of
  musicnn's venv (``bench/peers/musicnn_setup.sh``), this file with ``--worker tf``;
- with ``--conv-path``, also the torch port with ``MusicnnNet.fast_inference = False`` (its plain
  convolutions: the port before the Fourier-domain front-end), as a third side.

One worker per side and thread count (``--threads 1 2``: the per-core figure, and two intra-op
threads), each serving one track per request. All load their model and run one warm-up track before
timing (not counted); then, track by track, every thread count and side takes its turn (TF, torch,
TF, torch, ...) so that all see the same load from other jobs. Reported per side and thread count:
mean seconds per track (wall, and CPU seconds of the worker, which hold up better when other jobs
share the cores), split into front-end (decode + log-mel) and network; the ratios TensorFlow / torch
(> 1: the port is faster); and the largest difference between the two sides' mean penultimate
vectors (parity on whole windows, front-end included).
Output: ``bench/results/musicnn_speed.json`` (and stdout).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pick_tracks(catalog: Path, n: int) -> list[str]:
    with open(catalog / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    first = {}
    for r in rows:
        first.setdefault(r["artist"], r["path"])
    return [str(catalog / "audio" / p) for p in sorted(first.values())[:n]]


def window(path: str, seconds: float) -> tuple[float, float | None]:
    import librosa

    total = librosa.get_duration(path=path)
    return ((total - seconds) / 2, seconds) if total > seconds else (0.0, None)


def cpu_model() -> str:
    """The CPU's model name (the ratio depends on it: both sides use its vector units)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


# ---------------------------------------------------------------- TensorFlow side (musicnn's venv)

def tf_worker(seconds: float, threads: int) -> None:
    """Serve tracks one at a time: a path per stdin line -> a JSON line (timings, vector) on stdout."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import musicnn
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config, models

    assert int(np.__version__.split(".")[0]) < 2, "musicnn needs numpy < 2"
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.compat.v1.disable_eager_execution()
    n_frames = 187

    def load_model():
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            outs = models.define_model(x, is_training, "MSD_musicnn", 50)
        sess = tf.compat.v1.Session()
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(musicnn.__file__) + "/MSD_musicnn/")
        return sess, x, is_training, outs[8]

    (sess, x, is_training, pen), load_s, _ = _timed(load_model)

    def front(path):  # musicnn.extractor.batch_data, on the window
        offset, duration = window(path, seconds)
        audio, sr = librosa.load(path, sr=config.SR, offset=offset, duration=duration)
        rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP,
                                             n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
        rep = np.log10(10000 * rep.astype(np.float16) + 1)
        return np.stack([rep[t:t + n_frames] for t in range(0, rep.shape[0] - n_frames + 1, n_frames)])

    def net(batch):
        return sess.run(pen, feed_dict={x: batch, is_training: False}).mean(axis=0)

    versions = {"tensorflow": tf.__version__, "numpy": np.__version__, "librosa": librosa.__version__}
    print(json.dumps({"load_s": load_s, "versions": versions}), flush=True)
    for line in sys.stdin:
        p = line.rstrip("\n")
        batch, fw, fc = _timed(lambda: front(p))
        vec, nw, nc = _timed(lambda: net(batch))
        print(json.dumps({"patches": len(batch), "frontend_wall_s": fw, "frontend_cpu_s": fc,
                          "network_wall_s": nw, "network_cpu_s": nc, "vector": vec.tolist()}), flush=True)


# ---------------------------------------------------------------- torch side (this venv)

def torch_worker(seconds: float, threads: int, fast: bool = True) -> None:
    """Serve tracks as ``tf_worker`` does, with the torch port."""
    import numpy as np
    import torch

    from artdb.core.features.musicnn import MusicnnBackbone, frontend

    torch.set_num_threads(threads)
    bb, load_s, _ = _timed(lambda: MusicnnBackbone.from_package("MSD_musicnn"))
    bb.net.fast_inference = fast
    versions = {"torch": torch.__version__, "numpy": np.__version__, "fast_inference": fast,
                "threads": torch.get_num_threads()}
    print(json.dumps({"load_s": load_s, "versions": versions}), flush=True)
    for line in sys.stdin:
        p = line.rstrip("\n")
        offset, duration = window(p, seconds)
        batch, fw, fc = _timed(lambda: frontend.batch_data(p, offset=offset, duration=duration)[0])
        vec, nw, nc = _timed(lambda: bb.embed_patches(batch, "cpu", layers=("penultimate",))
                             ["penultimate"].mean(axis=0))
        print(json.dumps({"patches": len(batch), "frontend_wall_s": fw, "frontend_cpu_s": fc,
                          "network_wall_s": nw, "network_cpu_s": nc, "vector": vec.tolist()}), flush=True)


class Worker:
    """A side in a subprocess: one path per stdin line, one JSON line back."""

    def __init__(self, python: str, kind: str, seconds: float, threads: int, extra=()):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS=str(threads))
        self.kind = kind
        self.proc = subprocess.Popen([python, __file__, "--worker", kind, "--seconds", str(seconds),
                                      "--threads", str(threads), *extra], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = self._read()
        self.load_s, self.versions = hello["load_s"], hello["versions"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            sys.exit(f"the {self.kind} side died (rc={self.proc.wait()})"
                     + ("; is --tf-python musicnn's venv?" if self.kind == "tf" else ""))
        return json.loads(line)

    def track(self, path: str) -> dict:
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def summarize(load_s: float, versions: dict, rows: list[dict]) -> dict:
    n = len(rows)
    s = {k: sum(r[k] for r in rows) / n for k in rows[0] if k not in ("patches", "vector")}
    return {
        "model_load_s": round(load_s, 3),
        "per_track_wall_s": round(s["frontend_wall_s"] + s["network_wall_s"], 3),
        "per_track_cpu_s": round(s["frontend_cpu_s"] + s["network_cpu_s"], 3),
        "frontend_wall_s": round(s["frontend_wall_s"], 3),
        "network_wall_s": round(s["network_wall_s"], 3),
        "network_cpu_s": round(s["network_cpu_s"], 3),
        "network_wall_s_per_patch": round(sum(r["network_wall_s"] for r in rows)
                                          / sum(r["patches"] for r in rows), 4),
        "network_cpu_s_per_patch": round(sum(r["network_cpu_s"] for r in rows)
                                         / sum(r["patches"] for r in rows), 4),
        "versions": versions,
    }


def ratios(tf_sum: dict, torch_sum: dict) -> dict:
    return {
        "per_track_wall": round(tf_sum["per_track_wall_s"] / torch_sum["per_track_wall_s"], 2),
        "per_track_cpu": round(tf_sum["per_track_cpu_s"] / torch_sum["per_track_cpu_s"], 2),
        "network_wall": round(tf_sum["network_wall_s"] / torch_sum["network_wall_s"], 2),
        "network_cpu": round(tf_sum["network_cpu_s"] / torch_sum["network_cpu_s"], 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="/work/cache/realcat-dev")
    ap.add_argument("--tracks", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--conv-path", action="store_true",
                    help="also time the torch port's plain convolutions (fast_inference=False)")
    ap.add_argument("--tf-python",
                    default=os.environ.get("MUSICNN_PYTHON", "/work/cache/musicnn-venv/bin/python"))
    ap.add_argument("--out", default=str(HERE / "results" / "musicnn_speed.json"))
    ap.add_argument("--note", default="", help="what else ran on the machine (kept in the JSON)")
    ap.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--no-fast", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker == "tf":
        tf_worker(args.seconds, args.threads[0])
        return 0
    if args.worker == "torch":
        torch_worker(args.seconds, args.threads[0], fast=not args.no_fast)
        return 0

    import numpy as np

    paths = pick_tracks(Path(args.catalog), args.tracks)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    sides = {}  # (threads, side) -> Worker, in turn order
    for n in args.threads:
        sides[n, "tensorflow"] = Worker(args.tf_python, "tf", args.seconds, n)
        sides[n, "torch"] = Worker(sys.executable, "torch", args.seconds, n)
        if args.conv_path:
            sides[n, "torch_conv_path"] = Worker(sys.executable, "torch", args.seconds, n, ["--no-fast"])
    for w in sides.values():
        w.track(paths[0])  # warm-up, not counted
    rows = {key: [] for key in sides}
    for p in paths:  # interleaved, so that all sides see the same load from other jobs
        for key, w in sides.items():
            rows[key].append(w.track(p))
    for w in sides.values():
        w.close()

    by_threads = {}
    for n in args.threads:
        sums = {side: summarize(sides[n, side].load_s, sides[n, side].versions, rows[n, side])
                for (m, side) in sides if m == n}
        vecs = {side: np.asarray([r["vector"] for r in rows[n, side]], dtype=np.float32)
                for (m, side) in sides if m == n}
        entry = {**sums, "ratio_tf_over_torch": ratios(sums["tensorflow"], sums["torch"]),
                 "penultimate_mean_max_abs_diff": float(np.abs(vecs["tensorflow"] - vecs["torch"]).max())}
        if "torch_conv_path" in sums:
            entry["ratio_tf_over_torch_conv_path"] = ratios(sums["tensorflow"], sums["torch_conv_path"])
            entry["ratio_torch_conv_path_over_torch"] = ratios(sums["torch_conv_path"], sums["torch"])
        by_threads[str(n)] = entry
    first = rows[args.threads[0], "torch"]
    result = {
        "what": "MSD_musicnn mean penultimate per track: torch port (artdb.core.features.musicnn) vs "
                "the TensorFlow original, same tracks, same run",
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "note": args.note},
        "threads": args.threads,
        "tracks": [os.path.relpath(p, os.path.join(args.catalog, "audio")) for p in paths],
        "window_s": args.seconds,
        "patches_per_track": [r["patches"] for r in first],
        "by_threads": by_threads,
        "bench_wall_s": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
