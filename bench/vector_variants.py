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
in the patch scatter (``whitening_target=0``). The committed results
(``bench/results/vector-variants-realcat.*``, 2026-11-30 eighth session) were made while the default
was ``whitening_target=0.5``: there ``default`` is 0.5 and ``patch-scatter share 0.25`` is today's
default. The numpy variants redo that earlier default's steps
with one change each; ``numpy, identity target`` (no change) checks that they start from the same
vectors as the second row. Features are computed once in
``--workdir`` (musicnn MSD and MTT, 20 patches per track, and the log-mel store's MFCC statistics).
Writes PREFIX.json and PREFIX.md; prints each variant's paired difference to ``default``.

``--linkage complete|ward`` clusters the groups another way (ward: euclidean distance on the unit
vectors; thresholds fitted the same way); ``--peer FILE`` scores an embeddings file (the
TensorFlow peer's, ``bench/peers/musicnn_embed.py``) as one more row on the same groups
(``bench/results/vector-variants-realcat-linkage-*``, docs/training.md "Under complete and ward
linkage").
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

from artdb.core.config import DEFAULT_METRIC
from artdb.core.evaluation.dataset import open_catalog_dataset
from artdb.core.evaluation.runner import EvalConfig, make_split, score_vectors
from artdb.core.evaluation.systems import file_vectors
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.mfcc import stats_features
from artdb.core.learn.adapt import fitted_on
from artdb.core.learn.backbone import (
    WHITENING_PAGE_QUANTILE,
    HeadConfig,
    embed_backbone,
    train_backbone_head,
)

LAYERS = ("penultimate", "mean_pool")  # the default's
MODES = ("split", "second->first", "first->second")


def load_features(catalog: str, workdir: str, peer: str | None = None) -> dict:
    """Per track (sorted by catalog id): MSD and MTT backbone features, raw MFCC stats, labels, and
    the peer's vectors from an embeddings file (``--peer``, matched as ``artdb evaluate`` does)."""
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
                if peer:
                    out["peer"] = file_vectors(peer, ds)[order]
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

    def product(self, train_rows, head: dict | None = None, seed: int = 0, album_weight: float = 1.0,
                patch_scatter_of: str = "training", local_centering: tuple | None = None,
                served_rows=None, genre_tags: str = "true") -> np.ndarray:
        """The product's model; optionally its whitening refitted (``album_weight``,
        ``patch_scatter_of``, :func:`refit_whitening`) or its vectors locally centred
        (``(k, beta)``: minus beta x the mean of each track's k nearest served tracks).
        ``genre_tags="shuffled"``: the training artists' genres dealt out again at random (same
        genre sizes in artists; seeded): what the genre damping does when tags say nothing."""
        cfg = HeadConfig(**(head or {}), seed=seed)
        torch.manual_seed(cfg.seed)
        genres = self.d["genres"][train_rows]
        if genre_tags == "shuffled":
            names, first = np.unique(self.art[train_rows], return_index=True)
            dealt = dict(zip(names, np.random.default_rng(seed).permutation(genres[first])))
            genres = np.array([dealt[a] for a in self.art[train_rows]])
        r = train_backbone_head(self.d["msd"][train_rows], self.art[train_rows], cfg,
                                layer_slices=self.d["slices"], genres=genres)
        served = np.arange(len(self.art)) if served_rows is None else served_rows
        if album_weight != 1.0 or patch_scatter_of != "training":
            patch_rows = {"training": train_rows, "served": served}[patch_scatter_of]
            refit_whitening(r.model, self.d["msd"], self.art, self.d["albums"], train_rows, album_weight,
                            patch_rows)
        fitted_on(self.d["msd"], r.model)  # every track: the product's pooled refit
        z = embed_backbone(r.model, self.d["msd"])
        if local_centering:
            k, beta = local_centering
            sim = z @ z[served].T
            sim[served, np.arange(len(served))] = -np.inf  # a track is not its own neighbour
            nearest = np.argsort(-sim, axis=1)[:, :k]
            z = z - beta * z[served][nearest].mean(1)
            z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z

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


def refit_whitening(model, feats, artists, albums, rows, album_weight: float, patch_rows) -> None:
    """``fit_within_whitening`` again with two changes: the scatter of album means around their
    page's mean (what varies between one artist's releases: production, era) weighs
    ``album_weight`` times the scatter of tracks around their album's mean, the sum rescaled to the
    plain scatter's trace; the patch-scatter target is taken over ``patch_rows`` (the training
    tracks, as the product does, or every served track: label-free). With ``album_weight`` 1 and
    the training tracks it is the product's matrix (its sampling cap never binds here)."""
    lab, alb = np.asarray(artists)[rows], np.asarray(albums)[rows]
    _, page, counts = np.unique(lab, return_inverse=True, return_counts=True)
    keep = counts[page] >= 2
    rows, page, lab, alb = rows[keep], page[keep], lab[keep], alb[keep]
    lo, hi, d = model.layer_start, model.layer_stop, model.in_dim
    std = model.pooled_std.numpy().astype(np.float64)
    z = (np.asarray(feats[rows], dtype=np.float32)[..., lo:hi].mean(1) - model.pooled_mean.numpy()) / std
    xp = np.asarray(feats[patch_rows], dtype=np.float32)[..., lo:hi]
    p = ((xp - xp.mean(1, keepdims=True)) / std).reshape(-1, d).astype(np.float64)
    patch = p.T @ p
    page_mean = np.zeros((len(counts), d))
    np.add.at(page_mean, page, z)
    page_mean /= np.maximum(counts, 1)[:, None]
    _, album = np.unique(np.char.add(np.char.add(lab.astype(str), "|"), alb.astype(str)), return_inverse=True)
    album_mean = np.zeros((album.max() + 1, d))
    np.add.at(album_mean, album, z)
    album_mean /= np.bincount(album)[:, None]
    resid = z - page_mean[page]
    spread = np.bincount(page, weights=(resid ** 2).sum(1), minlength=len(counts)) / np.maximum(counts, 1)
    k = spread[page] <= np.quantile(spread[np.unique(page)], WHITENING_PAGE_QUANTILE)
    within_album, between_albums = (z - album_mean[album])[k], (album_mean[album] - page_mean[page])[k]
    plain = resid[k].T @ resid[k]
    s = within_album.T @ within_album + album_weight * between_albums.T @ between_albums
    s *= np.trace(plain) / np.trace(s) / k.sum()
    shrink, t = model.cfg.whitening, model.cfg.whitening_target
    target = (1 - t) * np.eye(d) * np.trace(s) / d + t * patch * (np.trace(s) / np.trace(patch))
    w, v = np.linalg.eigh((1 - shrink) * s + shrink * target)
    with torch.no_grad():
        model.pooled_whiten.copy_(torch.as_tensor((v * np.maximum(w, 1e-12) ** -0.5) @ v.T,
                                                  dtype=torch.float32))


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
    "patch-scatter share 0.5 (default before)": ("product", {"head": {"whitening_target": 0.5}}),
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
    # eighth session: the whitening and the served catalog
    "between-album scatter weighted 10": ("product", {"album_weight": 10.0}),
    "between-album scatter weighted 100": ("product", {"album_weight": 100.0}),
    "patch scatter of every served track": ("product", {"patch_scatter_of": "served"}),
    "local centering k=30, 0.5": ("product", {"local_centering": (30, 0.5)}),
    "whitening shrinkage 0.65": ("product", {"head": {"whitening": 0.65}}),
    "whitening shrinkage 0.9": ("product", {"head": {"whitening": 0.9}}),
    # ninth session: the genre directions damped after the whitening
    "genre damping off (default before)": ("product", {"head": {"genre_damping": 0.0}}),
    "genre damping 0.25": ("product", {"head": {"genre_damping": 0.25}}),
    "genre damping 1.0": ("product", {"head": {"genre_damping": 1.0}}),
    "genre damping on shuffled genre tags": ("product", {"genre_tags": "shuffled"}),
    # eleventh session: the linkage check (--linkage), what the whitening adds under each linkage
    "standardised only (no whitening, no damping)": ("product", {"head": {"whitening": 0.0}}),
}


def run(v: Variants, second: np.ndarray, mode: str, seeds, draws: int, variants=None,
        linkage: str = "average") -> dict:
    variants = {name: VARIANTS[name] for name in (variants or VARIANTS)}
    if "peer" in v.d:
        variants["peer (--peer file)"] = ("peer", {})
    scores: dict = {name: {} for name in variants}
    n = len(v.art)
    for seed in seeds:
        if mode == "split":
            rows, train_pool = np.arange(n), True
        else:
            rows, train_pool = np.flatnonzero(~second if mode == "second->first" else second), False
        labels = types.SimpleNamespace(artists=v.art[rows], albums=v.d["albums"][rows],
                                       genres=v.d["genres"][rows], sources=v.d["sources"][rows])
        cfg = EvalConfig(units=("track",), experiments=("unbalanced",), seeds=(seed,), group_draws=draws,
                         train_pool=train_pool, linkage=linkage,
                         metric="euclidean" if linkage == "ward" else DEFAULT_METRIC)
        split = make_split(labels, cfg, seed)
        train_rows = (np.flatnonzero(np.isin(v.art, split.train_artists)) if mode == "split"
                      else np.setdiff1d(np.arange(n), rows))
        served = np.union1d(train_rows, rows)  # the scored catalog pooled with the training one
        for name, (kind, opts) in variants.items():
            if kind == "peer":  # L2-normalised: ward's euclidean then orders pairs as cosine does
                z = v.d["peer"] / np.linalg.norm(v.d["peer"], axis=1, keepdims=True).clip(1e-12)
            elif kind == "product":
                z = v.product(train_rows, seed=seed, served_rows=served, **opts)
            else:
                z = v.numpy(train_rows, **opts)
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
    ap.add_argument("--variants", default=None,
                    help="';'-separated names of VARIANTS to run (default: all; 'default' is always run)")
    ap.add_argument("--linkage", default="average", choices=("average", "complete", "ward"),
                    help="how groups are clustered (ward: euclidean on the unit vectors, else cosine)")
    ap.add_argument("--peer", default=None,
                    help="an embeddings file (e.g. bench/peers/musicnn_embed.py's) scored as one more row")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    v = Variants(load_features(args.catalog, args.workdir, args.peer))
    with open(args.second_manifest, newline="", encoding="utf-8") as f:
        second = np.isin(v.art, sorted({r["artist"] for r in csv.DictReader(f)}))
    result = {"what": __doc__.splitlines()[0], "date": time.strftime("%Y-%m-%d"),
              "catalog": args.catalog, "tracks": int(len(v.art)), "artists": int(len(np.unique(v.art))),
              "second_catalog_artists": int(len(np.unique(v.art[second]))), "seeds": args.seeds,
              "group_draws": args.group_draws, "linkage": args.linkage, "peer": args.peer,
              "machine": platform.processor() or platform.machine(),
              "modes": {}}
    for mode in args.modes.split(","):
        names = args.variants and ["default"] + [n for n in args.variants.split(";") if n != "default"]
        result["modes"][mode] = summarise(run(v, second, mode, range(args.seeds), args.group_draws, names,
                                              args.linkage))
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
