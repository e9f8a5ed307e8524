"""One-command GPU check: the batched parts of artdb on CUDA against the CPU, with agreement checks.

    python bench/gpu_check.py --out bench/results/gpu_check.json      # ~2-4 min on one GPU

Measured on the same machine, same inputs, CUDA vs CPU (``torch.cuda.synchronize`` around each
timing; the first call of each is a warm-up and not timed):

- ``frontend``: the log-mel front-end (``LogMel``, default ``FrontendConfig``) on a batch of
  ``--tracks`` tracks × k excerpts of synthetic audio; agreement = max |CUDA - CPU| in dB;
- ``backbone``: musicnn's log-mel + network on ``--patches`` patches (skipped without the
  musicnn weights); agreement = max relative difference of the layer vectors;
- ``ingest_backbone``: ``artdb index``'s backbone stage end to end (decode processes feeding the
  network on the device) on ``--ingest-tracks`` synthetic FLAC files; tracks/s, × realtime per
  decode worker, and the features' max relative difference;
- ``train_step``: one optimiser step of the log-mel CNN (default ``ModelConfig``, semi-hard
  triplet loss) on a batch of ``--batch`` excerpts, steps/s;
- ``exact_search``: ``TorchExactIndex`` top-10 of ``--queries`` queries in ``--n`` × ``--dim``
  vectors; agreement = share of identical top-10 ids.

``speedup`` = CPU seconds / CUDA seconds; the issue's bar is ≥ 20× for the batched parts. FAISS
GPU is not exercised (its wheels are not installed here). Without CUDA the script says so in the
JSON and exits 2, having changed nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import TripletMarginMiner

from artdb.core.features.backbone import PATCH_SAMPLES, MusicnnLogMel
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.logmel import LogMel
from artdb.core.features.musicnn import MusicnnBackbone
from artdb.core.learn.networks import ModelConfig, build_model
from artdb.indexer import TorchExactIndex

DEVICE = "cuda"  # the device measured against the CPU (--device: another, to try the script)


def timed(fn, device: str, repeat: int = 3) -> tuple[float, object]:
    """Best of ``repeat`` seconds of ``fn()`` after one warm-up call."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def side_by_side(name: str, make, compare) -> dict:
    """``make(device)`` returns a callable; both devices timed; ``compare(cpu_out, cuda_out)``."""
    cpu_s, cpu_out = timed(make("cpu"), "cpu")
    cuda_s, cuda_out = timed(make(DEVICE), DEVICE)
    result = {"cpu_s": round(cpu_s, 5), "cuda_s": round(cuda_s, 5), "speedup": round(cpu_s / cuda_s, 1),
              "agreement": compare(cpu_out, cuda_out)}
    print(name, json.dumps(result), flush=True)
    return result


def frontend(tracks: int) -> dict:
    config = FrontendConfig()
    samples = int(round(config.excerpt_seconds * config.sample_rate))
    audio = np.random.default_rng(0).standard_normal(
        (tracks, config.excerpts_per_track, samples)).astype(np.float32) * 0.1

    def make(device):
        lm = LogMel(config, device)
        return lambda: lm(audio)

    out = side_by_side("frontend", make, lambda a, b: float((a.cpu() - b.cpu()).abs().max()))
    seconds = tracks * config.excerpts_per_track * config.excerpt_seconds
    out["x_realtime_cuda"] = round(seconds / out["cuda_s"], 0)
    out["shape"] = [tracks, config.excerpts_per_track, samples]
    return out


def backbone(patches: int) -> dict:

    try:
        net = MusicnnBackbone.from_package("MSD_musicnn")
    except Exception as exc:  # noqa: BLE001 - no weights installed: say so
        return {"skipped": f"musicnn weights not available: {exc}"}
    audio = np.random.default_rng(1).standard_normal((patches, PATCH_SAMPLES)).astype(np.float32) * 0.1

    def make(device):
        lm = MusicnnLogMel(device)
        return lambda: net.embed_patches(lm(audio), torch.device(device), layers=("penultimate",),
                                         batch_size=64 if device == "cpu" else 1024)["penultimate"]

    def agree(a, b):
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        return float(np.abs(a - b).max() / (np.abs(a).max() + 1e-9))

    out = side_by_side("backbone", make, agree)
    out["patches"] = patches
    return out


def ingest_backbone(tracks: int, seconds: float, workers: int, folder: Path) -> dict:
    """``artdb index``'s backbone stage end to end: the decode pool (``workers`` processes) feeding
    musicnn on the device, on ``tracks`` synthetic 44.1 kHz stereo FLAC files of ``seconds``
    each (written once into ``folder``); CUDA features against the CPU's."""
    import soundfile as sf

    from artdb.core.features.backbone import BackboneConfig, extract_backbone_features

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 44100)) / 44100
    paths = []
    for i in range(tracks):
        tone = sum(np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(t))) / (k + 1)
                   for k, f in enumerate(110 * (1 + i % 7) * np.array([1, 2, 3, 5])))
        audio = 0.2 * tone[:, None] + 0.02 * rng.standard_normal((len(t), 2))
        path = folder / f"track{i:03d}.flac"
        if not path.exists():
            sf.write(path, (audio / np.abs(audio).max() * 0.8).astype(np.float32), 44100)
        paths.append(str(path))
    config = BackboneConfig()

    def run(device, which):
        t0 = time.perf_counter()
        feats = [r[2] for r in extract_backbone_features(which, config, workers=workers, device=device)]
        return time.perf_counter() - t0, feats

    sides = []
    for device in ("cpu", DEVICE):
        run(device, paths[:2])  # warm-up: pool start, weights, kernels
        wall, feats = run(device, paths)
        bad = [f for f in feats if not isinstance(f, np.ndarray)]
        if bad:
            return {"error": f"{len(bad)} tracks failed on {device}: {bad[0]}"}
        sides.append(({"wall_s": round(wall, 3), "tracks_per_s": round(tracks / wall, 2),
                       "x_realtime_per_worker": round(tracks * seconds / wall / workers, 0)},
                      np.stack(feats).astype(np.float32)))
    (cpu, a), (dev, b) = sides
    result = {"tracks": tracks, "seconds_per_track": seconds, "workers": workers,
              "patches_per_track": config.patches_per_track, "cpu": cpu, "cuda": dev,
              "speedup": round(cpu["wall_s"] / dev["wall_s"], 1),
              "agreement": float(np.abs(a - b).max() / (np.abs(a).max() + 1e-9))}
    print("ingest_backbone", json.dumps(result), flush=True)
    return result


def train_step(batch: int) -> dict:


    config = FrontendConfig()
    frames = int(round(config.excerpt_seconds * config.sample_rate / config.hop_length)) + 1
    x = torch.randn(batch, config.n_mels, frames)
    labels = torch.arange(batch) // 4

    def make(device):
        torch.manual_seed(0)
        model = build_model(ModelConfig(n_mels=config.n_mels)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = TripletMarginLoss(margin=0.2)
        miner = TripletMarginMiner(margin=0.2, type_of_triplets="all")
        xd, ld = x.to(device), labels.to(device)

        def step():
            opt.zero_grad()
            emb, _ = model(xd)
            loss = loss_fn(emb, ld, miner(emb, ld))
            loss.backward()
            opt.step()
            return float(loss.detach())
        return step

    out = side_by_side("train_step", make, lambda a, b: {"cpu_loss": a, "cuda_loss": b})
    out["batch"] = batch
    out["steps_per_s_cuda"] = round(1 / out["cuda_s"], 1)
    return out


def exact_search(n: int, dim: int, queries: int) -> dict:

    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal((queries, dim), dtype=np.float32)
    ids = np.arange(n, dtype=np.int64)

    def make(device):
        index = TorchExactIndex(dim, device=device)
        index.add(x, ids)
        return lambda: index.search(q, 10)[1]

    out = side_by_side("exact_search", make, lambda a, b: float((np.asarray(a) == np.asarray(b)).mean()))
    out.update(n=n, dim=dim, queries=queries, qps_cuda=round(queries / out["cuda_s"], 0))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=256)
    p.add_argument("--patches", type=int, default=2048)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--ingest-tracks", type=int, default=64, help="synthetic files for the ingest stage")
    p.add_argument("--ingest-seconds", type=float, default=120.0)
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                   help="decode processes of the ingest stage")
    p.add_argument("--scratch", default="/tmp/artdb-gpu-check", help="folder for the synthetic files")
    p.add_argument("--device", default="cuda", help="measured against the CPU (cpu: a dry run of the script)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    available = torch.cuda.is_available() or not args.device.startswith("cuda")

    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__, "cuda": torch.cuda.is_available()}}
    result["machine"]["device"] = args.device
    if available:
        result["machine"]["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        result["machine"]["torch_threads"] = torch.get_num_threads()
        result["frontend"] = frontend(args.tracks)
        result["backbone"] = backbone(args.patches)
        result["ingest_backbone"] = ingest_backbone(args.ingest_tracks, args.ingest_seconds, args.workers,
                                                    Path(args.scratch))
        result["train_step"] = train_step(args.batch)
        result["exact_search"] = exact_search(args.n, args.dim, args.queries)
        batched = [result[k]["speedup"] for k in ("frontend", "backbone", "train_step", "exact_search")
                   if "speedup" in result[k]]
        result["all_batched_at_least_20x"] = bool(batched) and min(batched) >= 20
    else:
        result["skipped"] = "no CUDA device visible to torch: nothing measured"
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0 if available else 2


if __name__ == "__main__":
    sys.exit(main())
