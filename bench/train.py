"""Benchmark the learning library: training and inference throughput, index-mining overhead,
and the clustering linkage used for homonym detection.

Sections (JSON on stdout and in ``--out``):

* ``train``: training excerpts/s of the default CNN (``TrainConfig()`` architecture) on
  front-end-shaped excerpts (96 mels x 151 frames: 3 s at a 20 ms hop), measured between step
  events of a real :func:`artdb.core.learn.loop.train` run (sampling, data reads, mining included).
* ``inference``: :func:`artdb.core.learn.networks.embed` excerpts/s, channels_last (artdb's default) vs
  contiguous weights, and with ``--compile`` a ``torch.compile``'d encoder.
* ``index_mining``: a real ``mining="index"`` run: seconds per refresh (re-embed one excerpt per
  training track + exact index + search), refresh share of training time without a cap and with
  the default ``index_budget=0.15``, and the share a once-per-epoch refresh would cost.
* ``linkage``: held-out ARI of a small trained model for each agglomerative linkage, threshold
  fitted on half of the homonym groups and scored on the other half.

Everything is repeated on CUDA (mixed precision) when a GPU is visible and ``--device`` allows.
Usage: ``python bench/train.py [--quick] [--threads 2] [--compile] [--out bench/results/train.json]``.
The machine may be shared: record that with ``--note``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from artdb.core.analysis.clustering import fit_threshold, make_homonym_groups, mean_ari
from artdb.core.learn.config import TrainConfig
from artdb.core.learn.loop import train
from artdb.core.learn.networks import ModelConfig, build_model, count_parameters, embed
from artdb.core.learn.validation import album_centroids
from artdb.core.synth.training_data import synthetic_training_data

SHAPE = dict(n_mels=96, n_frames=151)


def train_throughput(device: str, steps: int, P: int, m: int) -> dict:
    data = synthetic_training_data(n_artists=max(2 * P, 16), albums_per_artist=2, tracks_per_album=2,
                                   n_excerpts=2, seed=0, **SHAPE)
    stamps: list[float] = []

    def on(stage, done, total=None, event=None, **info):
        if event == "step":
            stamps.append(time.perf_counter())

    warm = 2
    cfg = TrainConfig(steps=steps + warm, artists_per_batch=P, per_artist=m, val_fraction=0.0,
                      log_every=1, device=device)
    res = train(data, cfg, progress=on)
    dt = stamps[-1] - stamps[warm - 1]
    return {
        "device": device,
        "batch_excerpts": P * m,
        "steps_timed": steps,
        "excerpts_per_s": P * m * steps / dt,
        "s_per_step": dt / steps,
        "parameters": count_parameters(res.model),
    }


def inference(device: str, n: int, use_compile: bool) -> dict:
    x = np.random.default_rng(0).normal(size=(n, 1, SHAPE["n_mels"], SHAPE["n_frames"])).astype(np.float16)
    out = {"device": device, "excerpts": n}
    variants = [("channels_last", True), ("contiguous", False)]
    for name, cl in variants:
        torch.manual_seed(0)
        model = build_model(ModelConfig(n_mels=SHAPE["n_mels"]), channels_last=cl).to(device)
        embed(model, x[:8], device=device)  # warm-up
        t = time.perf_counter()
        embed(model, x, device=device, batch_size=64)
        out[f"{name}_excerpts_per_s"] = n / (time.perf_counter() - t)
    if use_compile:
        model = build_model(ModelConfig(n_mels=SHAPE["n_mels"])).to(device)
        model.encoder = torch.compile(model.encoder)
        t = time.perf_counter()
        embed(model, x[:64], device=device, batch_size=64)
        out["compile_first_call_s"] = time.perf_counter() - t
        t = time.perf_counter()
        embed(model, x[: (n // 64) * 64], device=device, batch_size=64)
        out["compiled_excerpts_per_s"] = (n // 64) * 64 / (time.perf_counter() - t)
    return out


def index_mining(device: str, n_artists: int, steps: int, every: int) -> dict:
    data = synthetic_training_data(n_artists=n_artists, albums_per_artist=2, tracks_per_album=4,
                                   n_excerpts=2, seed=1, **SHAPE)
    base = TrainConfig(mining="index", steps=steps, artists_per_batch=8, per_artist=4,
                       val_fraction=0.0, index_refresh_every=every, device=device, log_every=1)
    out = {"device": device, "train_tracks": data.n_tracks, "steps": steps, "refresh_every": every}
    for label, budget in (("uncapped", None), ("budget_0.15", 0.15)):
        res = train(data, dataclasses.replace(base, index_budget=budget))
        t = res.timings
        refreshes = [e["seconds"] for e in res.history if e["event"] == "refresh"]
        out[label] = {
            "n_refresh": t["n_refresh"],
            "refresh_fraction": t["refresh_fraction"],
            "s_per_refresh": float(np.mean(refreshes)) if refreshes else None,
            "train_excerpts_per_s": t["excerpts_per_s"],
        }
    r = out["uncapped"]
    if r["s_per_refresh"]:
        epoch_s = data.n_tracks / r["train_excerpts_per_s"]  # every track seen once
        out["once_per_epoch_fraction"] = r["s_per_refresh"] / (r["s_per_refresh"] + epoch_s)
    return out


def linkage_comparison(steps: int) -> dict:
    data = synthetic_training_data(n_artists=40, album_strength=1.0, seed=0)
    held = synthetic_training_data(n_artists=96, album_strength=1.0, seed=99)
    cfg = TrainConfig(steps=steps, embedding_dim=32, channels=(8, 16, 16, 32), artists_per_batch=8,
                      per_artist=4, lr=3e-3, val_every=50, patience=0)
    res = train(data, cfg)
    vecs = embed(res.model, held.features)
    units, artists = album_centroids(vecs, held.artists, held.albums)
    groups = make_homonym_groups(artists, np.random.default_rng(0), sizes=(2, 4))
    fit, score = groups[0::2], groups[1::2]
    out = {"train_steps": steps, "groups_fit": len(fit), "groups_scored": len(score)}
    for linkage, metric in (("average", "cosine"), ("complete", "cosine"), ("single", "cosine"),
                            ("ward", "euclidean")):
        t, ari_fit, _ = fit_threshold(fit, units, artists, linkage=linkage, metric=metric)
        out[f"{linkage}_{metric}"] = {
            "threshold": t, "ari_fit": ari_fit,
            "ari_heldout": mean_ari(score, units, artists, t, linkage=linkage, metric=metric),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd encoder")
    ap.add_argument("--quick", action="store_true", help="fewer steps and excerpts")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"]
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices = ["cuda"] if args.device == "cuda" else ["cpu", "cuda"]
    q = args.quick
    result = {
        "bench": "train",
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "note": args.note,
        "shape": SHAPE,
        "train": [], "inference": [], "index_mining": [],
    }
    t0 = time.perf_counter()
    for dev in devices:
        big = dev == "cuda"
        result["train"].append(train_throughput(dev, steps=(3 if q else 6) * (4 if big else 1),
                                                P=16, m=4))
        result["inference"].append(inference(dev, n=(128 if q else 256) * (8 if big else 1),
                                             use_compile=args.compile))
        result["index_mining"].append(index_mining(dev, n_artists=24 if q else 32,
                                                   steps=12 if q else 20, every=4 if q else 5))
    result["linkage"] = linkage_comparison(steps=100 if q else 200)
    result["wall_s"] = time.perf_counter() - t0
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
