"""Other ways to build the default model's track vector, scored on real artists beside the default.

    python bench/vector_variants.py --catalog /work/cache/realcat-both \
        --second-manifest /work/cache/realcat-extra/manifest.csv --workdir /work/cache/eval/both \
        --seeds 8 --out bench/results/vector-variants-realcat

``--catalog``: the dev and dev-extra builds merged into one folder (audio trees hard-linked side by
side, manifests concatenated; docs/training.md); ``--second-manifest``: the dev-extra manifest,
which says which artists belong to the second catalog. Three ways of scoring, each with
``artdb evaluate``'s protocol functions (track unit, ``--group-draws`` random partitions per seed,
thresholds by 5-fold CV over groups; same-source thresholds fitted on random groups):

- ``split``: a seeded 60/40 split of the 25 artists, trained on the training pool, scored on the
  test artists (``make_split``, as ``artdb evaluate`` draws it);
- ``second->first``: trained on dev-extra's 6 artists, scored on the 19 dev artists (unseen);
- ``first->second``: trained on the 19 dev artists, scored on dev-extra's 6 (unseen; the way the
  hidden recordings are scored).

Every variant sees the same groups. ``default`` is the product itself (``train_backbone_head`` +
``fitted_on`` + ``embed_backbone``, standardisation fitted on every track as the product's pooled
refit does); the second row is the product as it was before its whitening's shrinkage target took
in the patch scatter (``whitening_target=0``). The numpy variants redo that earlier default's steps
with one change each; ``numpy, identity target`` (no change) checks that they start from the same
vectors as the second row. Features are computed once in
``--workdir`` (musicnn MSD and MTT, 20 patches per track, and the log-mel store's MFCC statistics).
Writes PREFIX.json and PREFIX.md; prints each variant's paired difference to ``default``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
import types
from pathlib import Path

import numpy as np
import torch

from artdb.core.evaluation.dataset import open_catalog_dataset
from artdb.core.evaluation.runner import EvalConfig, make_split, score_vectors
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.mfcc import stats_features
from artdb.core.learn.adapt import fitted_on
from artdb.core.learn.backbone import HeadConfig, embed_backbone, train_backbone_head

LAYERS = ("penultimate", "mean_pool")  # the default's
MODES = ("split", "second->first", "first->second")


def load_features(catalog: str, workdir: str) -> dict:
    """Per track (sorted by catalog id): MSD and MTT backbone features, raw MFCC stats, labels."""
    out: dict = {}
    for tag, cfg in (("msd", BackboneConfig()), ("mtt", BackboneConfig(model="MTT_musicnn"))):
        with open_catalog_dataset(catalog, workdir=workdir, backbone=cfg) as (ds, _):
            order = np.argsort(ds.track_ids)
            out[tag] = np.asarray(ds.backbone_features, dtype=np.float32)[order]
            out["slices"] = ds.backbone_layer_slices()
            if tag == "msd":
                for f in ("artists", "albums", "genres", "sources", "track_ids"):
                    out[f] = np.asarray(getattr(ds, f))[order]
                out["stats"] = stats_features(np.asarray(ds.features)[order])[:, None, :]
    return out


class Variants:
    def __init__(self, data: dict):
        self.d = data
        self.art = data["artists"]

    def layer(self, tag: str) -> np.ndarray:
        x = self.d[tag]
        if tag == "stats":
            return x
        return np.concatenate([x[..., slice(*self.d["slices"][n])] for n in LAYERS], -1)

    def product(self, train_rows, head: dict | None = None, seed: int = 0) -> np.ndarray:
        cfg = HeadConfig(**(head or {}), seed=seed)
        torch.manual_seed(cfg.seed)
        r = train_backbone_head(self.d["msd"][train_rows], self.art[train_rows], cfg,
                                layer_slices=self.d["slices"])
        fitted_on(self.d["msd"], r.model)  # every track: the product's pooled refit
        return embed_backbone(r.model, self.d["msd"])

    def numpy(self, train_rows, feats=("msd",), pool="mean", blockwise=False, prenorm=False,
              shrink=0.8) -> np.ndarray:
        """The default's steps: track mean, standardised on every track, whitened within the
        training pages (scatter in the training tracks' standardised coordinates, the most spread
        quarter of pages left out, shrunk ``shrink``), L2-normalised; one change at a time."""
        served, trained = [], []
        for tag in feats:
            x = self.layer(tag).astype(np.float64)
            z = x.mean(1) if pool == "mean" else np.concatenate([x.mean(1), x.std(1)], 1)
            for rows, out in ((slice(None), served), (train_rows, trained)):
                mu, sd = z[rows].mean(0), z[rows].std(0)
                sd[sd < 1e-6] = 1.0
                b = (z - mu) / sd
                out.append(b / np.sqrt(b.shape[1]) if blockwise else b)
        z, zw = np.concatenate(served, 1), np.concatenate(trained, 1)[train_rows]
        if prenorm:
            zw = zw / np.linalg.norm(zw, axis=1, keepdims=True)
        z = z @ within_whitening(zw, self.art[train_rows], shrink)
        return z / np.linalg.norm(z, axis=1, keepdims=True)


def within_whitening(z: np.ndarray, labels: np.ndarray, shrink: float, quantile: float = 0.75) -> np.ndarray:
    """``core.learn.backbone.fit_within_whitening`` in numpy (its sampling cap never binds here)."""
    _, page, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = counts[page] >= 2
    z, page = z[keep], page[keep]
    means = np.zeros((len(counts), z.shape[1]))
    np.add.at(means, page, z)
    means /= np.maximum(counts, 1)[:, None]
    r = z - means[page]
    spread = np.bincount(page, weights=(r ** 2).sum(1), minlength=len(counts)) / np.maximum(counts, 1)
    r = r[spread[page] <= np.quantile(spread[np.unique(page)], quantile)]
    s = r.T @ r / len(r)
    s = (1 - shrink) * s + shrink * np.eye(len(s)) * np.trace(s) / len(s)
    w, v = np.linalg.eigh(s)
    return (v * np.maximum(w, 1e-12) ** -0.5) @ v.T


VARIANTS = {
    "default": ("product", {}),
    "shrunk towards the identity alone (before)": ("product", {"head": {"whitening_target": 0.0}}),
    "patch-scatter share 0.25": ("product", {"head": {"whitening_target": 0.25}}),
    "patch-scatter share 0.75": ("product", {"head": {"whitening_target": 0.75}}),
    "patch-scatter share 1.0": ("product", {"head": {"whitening_target": 1.0}}),
    "numpy, identity target": ("numpy", {}),
    "mean+std over patches": ("numpy", {"pool": "mean+std"}),
    "+ MFCC stats (76 d)": ("numpy", {"feats": ("msd", "stats")}),
    "+ MFCC stats, equal block weight": ("numpy", {"feats": ("msd", "stats"), "blockwise": True}),
    "MSD + MTT musicnn": ("numpy", {"feats": ("msd", "mtt")}),
    "MTT musicnn alone": ("numpy", {"feats": ("mtt",)}),
    "L2 before the whitening fit": ("numpy", {"prenorm": True}),
    "head share forced 0.25": ("product", {"head": {"head_weights": (0.25,), "min_val_groups": 0}}),
}


def run(v: Variants, second: np.ndarray, mode: str, seeds, draws: int) -> dict:
    scores: dict = {name: {} for name in VARIANTS}
    n = len(v.art)
    for seed in seeds:
        if mode == "split":
            rows, train_pool = np.arange(n), True
        else:
            rows, train_pool = np.flatnonzero(~second if mode == "second->first" else second), False
        labels = types.SimpleNamespace(artists=v.art[rows], albums=v.d["albums"][rows],
                                       genres=v.d["genres"][rows], sources=v.d["sources"][rows])
        cfg = EvalConfig(units=("track",), experiments=("unbalanced",), seeds=(seed,), group_draws=draws,
                         train_pool=train_pool)
        split = make_split(labels, cfg, seed)
        train_rows = (np.flatnonzero(np.isin(v.art, split.train_artists)) if mode == "split"
                      else np.setdiff1d(np.arange(n), rows))
        for name, (kind, opts) in VARIANTS.items():
            z = v.product(train_rows, seed=seed, **opts) if kind == "product" else v.numpy(train_rows, **opts)
            test = z[rows][split.test_rows]
            for (_, gname), gs in split.group_sets.items():
                s = score_vectors(test, gs, cfg)
                scores[name].setdefault(gname, []).append(float(np.mean(s.ari)) if s.ari else None)
    return scores


def summarise(scores: dict) -> dict:
    out = {}
    for name, by_group in scores.items():
        out[name] = {}
        for g, vals in by_group.items():
            a = np.array([x for x in vals], dtype=float)
            base = np.array(scores["default"][g], dtype=float)
            d = a - base
            out[name][g] = {"ari": float(np.nanmean(a)), "std_over_seeds": float(np.nanstd(a)),
                            "minus_default": float(np.nanmean(d)),
                            "seeds_above_default": int(np.sum(d > 1e-9)), "seeds": int(np.sum(~np.isnan(a)))}
    return out


def markdown(result: dict) -> str:
    lines = [f"# Track-vector variants on real artists ({result['date']})", ""]
    for mode, table in result["modes"].items():
        groups = list(next(iter(table.values())))
        lines += [f"## {mode}", "", "| variant | " + " | ".join(groups) + " |",
                  "| --- | " + " | ".join("---" for _ in groups) + " |"]
        for name, cells in table.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{c['ari']:.3f} ± {c['std_over_seeds']:.3f} ({c['minus_default']:+.3f}, "
                f"{c['seeds_above_default']}/{c['seeds']})" for c in cells.values()) + " |")
        lines.append("")
    lines.append("Cells: mean ARI ± std over seeds (difference to `default`, seeds above it / seeds).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--second-manifest", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--group-draws", type=int, default=10)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    v = Variants(load_features(args.catalog, args.workdir))
    with open(args.second_manifest, newline="", encoding="utf-8") as f:
        second = np.isin(v.art, sorted({r["artist"] for r in csv.DictReader(f)}))
    result = {"what": __doc__.splitlines()[0], "date": time.strftime("%Y-%m-%d"),
              "catalog": args.catalog, "tracks": int(len(v.art)), "artists": int(len(np.unique(v.art))),
              "second_catalog_artists": int(len(np.unique(v.art[second]))), "seeds": args.seeds,
              "group_draws": args.group_draws, "machine": platform.processor() or platform.machine(),
              "modes": {}}
    for mode in args.modes.split(","):
        result["modes"][mode] = summarise(run(v, second, mode, range(args.seeds), args.group_draws))
        for name, cells in result["modes"][mode].items():
            print(mode, name, " | ".join(f"{g} {c['ari']:.3f} ({c['minus_default']:+.3f}, "
                                         f"{c['seeds_above_default']}/{c['seeds']})"
                                         for g, c in cells.items()), flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out + ".json").write_text(json.dumps(result, indent=1))
    Path(args.out + ".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":  # evaluate's worker processes import this module again (spawn)
    raise SystemExit(main())
