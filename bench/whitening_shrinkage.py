"""The within-artist whitening's shrinkage (``HeadConfig.whitening``) on split evaluations.

    python bench/whitening_shrinkage.py --catalog /work/cache/realcat-both --workdir /work/cache/eval/both \
        --shrinkage 0.5,0.65,0.9,0.95 --seeds 8 --peer-file /work/cache/exp/musicnn-tf-both.npz \
        --out bench/results/whitening-shrinkage-realcat

``artdb evaluate``'s protocol (track unit, the whole training pool, ``--group-draws`` random
partitions per seed) with ``artdb-default`` (whitening 0.8), one ``whN`` system per shrinkage N
(``artdb-default`` with only ``whitening`` changed), the torch port's plain penultimate and, when
``--peer-file`` is given, the TensorFlow musicnn peer's vectors (made by ``artdb evaluate --peer``
once). Every system sees the same splits, groups and folds; the split design and the question
("is 0.8 a choice for artists in general, or for the 6 artists it was first measured on?") are in
docs/training.md. Writes PREFIX.json / .md / .png as ``artdb evaluate`` does, and prints the
paired differences to the default per group set.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections import defaultdict

from artdb.core.evaluation import systems as S
from artdb.core.evaluation.runner import EvalConfig
from artdb.core.evaluation.service import evaluate


def shrinkage_systems(values: list[float]) -> dict[str, S.SystemSpec]:
    return {f"wh{v:g}": dataclasses.replace(S.BACKBONE_HEAD, name=f"wh{v:g}", head={"whitening": v},
                                           label=f"artdb-default, whitening {v:g}") for v in values}


def paired(report: dict, base: str = "artdb-default") -> list[str]:
    by = defaultdict(dict)
    for r in report["results"]:
        if r.get("ari") is not None:
            by[(r["unit"], r["groups"], r["seed"])][r["system"]] = r["ari"]
    lines = []
    for (unit, groups) in sorted({k[:2] for k in by}):
        cells = [v for k, v in by.items() if k[:2] == (unit, groups) and base in v]
        for system in sorted({s for v in cells for s in v} - {base}):
            d = [v[system] - v[base] for v in cells if system in v]
            lines.append(f"{unit}/{groups}: {system} - {base} = {statistics.mean(d):+.3f} "
                         f"(above on {sum(x > 0 for x in d)} of {len(d)} seeds)")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--shrinkage", default="0.5,0.65,0.9,0.95")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--group-draws", type=int, default=10)
    ap.add_argument("--peer-file", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    variants = shrinkage_systems([float(x) for x in args.shrinkage.split(",")])
    S.BUILTIN.update(variants)
    cfg = EvalConfig(systems=("artdb-default", "musicnn-torch", *variants), units=("track",),
                     experiments=("unbalanced",), seeds=tuple(range(args.seeds)),
                     group_draws=args.group_draws, evidence="audio",
                     embeddings=(("musicnn", args.peer_file),) if args.peer_file else ())
    report = evaluate(cfg, catalog_dir=args.catalog, workdir=args.workdir, out_prefix=args.out)
    print("\n".join(paired(report)))
    return 0


if __name__ == "__main__":  # evaluate's worker processes import this module again (spawn)
    raise SystemExit(main())
