"""``artdb audit --evidence audio|metadata|both`` on synthetic catalogs with planted homonym pages.

    python bench/audit_evidence.py --seeds 0,1,2 --out bench/results/audit_evidence.json
    python bench/audit_evidence.py --model default --artists 72 --homonym-groups 4 \
        --out bench/results/audit_evidence-default-72artists.json

For each seed: ``artdb synth`` (metadata confounds at their defaults: 30 % of homonyms share a
label, label changes, reissues, missing tags), ingest with the MFCC baseline; the audio model is
that baseline, the stats baseline (``--model stats``) or what ``artdb train`` makes with no options
(``--model default``; ``--leave-out`` as artdb train's). The audio threshold is calibrated on the
catalog (``artdb audit --calibrate``), then the same pages are audited several ways without storing
anything: audio, metadata, both (the fusion's groups drawn within genres first, the default), both
with the groups drawn at random (as the audio calibration draws them), both with the threshold also
fitted on single pages, and metadata / both fitted twice (the pages a first fit would split set
aside). Each planted page is scored by the ARI of its proposed partition against the true artists;
false alarms are flagged pages that are not planted; AP is the average precision of the planted
pages with every audited page ranked by its split margin. The fused runs fit their fusion on the
same artificial groups of trusted pages that calibrate the audio threshold.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from sklearn.metrics import average_precision_score

from artdb.core.analysis.audit import (
    FUSION_ROUNDS,
    album_vectors,
    calibrate_threshold,
    fit_catalog_fusion,
    run_audit,
)
from artdb.core.analysis.findings import parse_page_label
from artdb.core.config import Paths
from artdb.core.errors import CatalogError
from artdb.core.features.backbone import BackboneConfig
from artdb.core.ingest.pipeline import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.backbone import HeadConfig
from artdb.core.learn.catalog import train_backbone_from_catalog
from artdb.core.learn.registry import get_model, register_mfcc_baseline, register_stats_baseline
from artdb.core.names import page_key
from artdb.core.reporting.demo import _album_truth, false_alarms, score_homonyms
from artdb.core.synth.catalog import generate_catalog
from artdb.core.synth.config import SynthConfig
from artdb.core.vectors.index import sync_model_index
from artdb.db.session import Catalog

# (name, evidence, how the fusion's artificial groups are drawn, threshold also fitted on singles,
# fits of the fusion: FUSION_ROUNDS, or 1 = fitted once on every trusted page)
VARIANTS = (("audio", "audio", "genre", False, FUSION_ROUNDS),
            ("metadata", "metadata", "genre", False, FUSION_ROUNDS),
            ("both", "both", "genre", False, FUSION_ROUNDS),
            ("metadata-two-fits", "metadata", "genre", False, 2),
            ("both-two-fits", "both", "genre", False, 2),
            ("both-random-groups", "both", "random", False, FUSION_ROUNDS),
            ("both-singles", "both", "genre", True, FUSION_ROUNDS))
EVIDENCE = tuple(v[0] for v in VARIANTS)


def baseline(catalog: Catalog, paths: Paths, kind: str, leave_out: str = "flagged",
             genre_damping: float | None = None):
    """The audio model: the MFCC baseline registered before ingest, or the stats baseline
    (MFCC + deltas, standardised on the catalog) registered and embedded now."""
    if kind == "mfcc":
        return get_model(catalog, "mfcc")
    if kind == "default":  # what `artdb train` makes with no options (musicnn features + head)
        name = "default" if leave_out == "flagged" else f"default-leave-out-{leave_out}"
        head = HeadConfig()
        if genre_damping is not None:  # a model per damping: a kept --workdir must not mix them
            name, head = f"{name}-genre-damping-{genre_damping}", HeadConfig(genre_damping=genre_damping)
        try:
            model = get_model(catalog, name)
        except CatalogError:
            model, _ = train_backbone_from_catalog(catalog, paths, BackboneConfig(), head, name=name,
                                                   activate=True, leave_out=leave_out)
        return get_model(catalog, model.id)
    try:
        return get_model(catalog, "stats")
    except CatalogError:
        model = register_stats_baseline(catalog, paths, name="stats", activate=True)
        sync_model_index(catalog, paths, model)
        return get_model(catalog, "stats")


def planted_average_precision(report, truth: dict) -> float:
    """Average precision of the planted pages when every audited page is ranked by its split
    margin (what a curator reading the findings best first sees; no threshold involved)."""
    planted = {page_key(g["page_name"]) for g in truth["homonym_groups"]}
    y = [page_key(parse_page_label(p.page)[0]) in planted for p in report.pages]
    return float(average_precision_score(y, [p.score for p in report.pages])) if any(y) else float("nan")


def one_seed(seed: int, work: Path, config: dict, kind: str = "mfcc", leave_out: str = "flagged",
             genre_damping: float | None = None) -> dict:
    cat_dir, home = work / f"cat{seed}", work / f"home{seed}"
    t0 = time.perf_counter()
    done = home / "indexed"
    if not done.exists():  # a kept --workdir is reused: synthesis and ingest are the slow part
        if home.exists():
            shutil.rmtree(home)
        if cat_dir.exists():
            shutil.rmtree(cat_dir)
        home.mkdir(parents=True)
        generate_catalog(cat_dir, SynthConfig(seed=seed, workers=2, **config))
        catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}")
        register_mfcc_baseline(catalog, name="mfcc", activate=True)
        index_catalog(catalog, Paths.from_home(home), cat_dir, IngestOptions(workers=2))
        done.write_text(json.dumps(config))
    truth_d = json.loads((cat_dir / "truth.json").read_text(encoding="utf-8"))
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}")
    paths = Paths.from_home(home)
    model = baseline(catalog, paths, kind, leave_out, genre_damping)
    calibration = calibrate_threshold(catalog, paths, model, folds=3, seed=seed)
    model = get_model(catalog, model.id)
    album_truth = _album_truth(catalog, cat_dir, truth_d)
    out = {"seed": seed, "audio_threshold": calibration["threshold"],
           "audio_cv_ari": calibration["cv_ari"], "evidence": {}}
    vectors = album_vectors(catalog, paths, model)
    out["suspect_pages"] = (model.config or {}).get("suspect_pages", {})
    for name, evidence, grouping, singles, rounds in VARIANTS:
        fusion = None if evidence == "audio" else fit_catalog_fusion(
            catalog, vectors, evidence, seed=seed, grouping=grouping, singles=singles, rounds=rounds)
        report = run_audit(catalog, paths, model, store=False, evidence=evidence, fusion=fusion)
        pages = score_homonyms(catalog, report, truth_d, album_truth)
        aris = [p["ari"] if p["ari"] is not None else 0.0 for p in pages]
        out["evidence"][name] = {
            "mean_ari_planted": float(np.mean(aris)), "planted_flagged": sum(p["flagged"] for p in pages),
            "planted": len(pages), "findings": len(report.findings),
            "false_alarms": len(false_alarms(report, truth_d)), "pages_audited": len(report.pages),
            "threshold": report.threshold, "fits": rounds if evidence != "audio" else None,
            "average_precision": planted_average_precision(report, truth_d), "pages": pages,
            "fusion": report.fusion.to_dict() if report.fusion else None,
            "example_reasons": [p.reasons for p in report.findings[:2]],
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


@click.command()
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--artists", default=36)
@click.option("--homonym-groups", default=8)
@click.option("--albums-per-artist", default=3.0)
@click.option("--tracks-per-album", default=3)
@click.option("--seconds", default=8.0)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
@click.option("--model", "kind", type=click.Choice(["mfcc", "stats", "default"]), default="mfcc",
              show_default=True, help="The audio model: a baseline (mfcc, stats), or default: what "
              "`artdb train` makes with no options (musicnn features; slow on 2 cores).")
@click.option("--leave-out", type=click.Choice(["flagged", "flagged+tags", "none"]), default="flagged",
              show_default=True, help="--model default: artdb train --leave-out (no audit is stored "
              "before training here, so flagged = none).")
@click.option("--genre-damping", type=click.FloatRange(0.0, 1.0), default=None,
              help="--model default: HeadConfig.genre_damping (default: the product's).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Keep the catalogs here (reused when present); default: a temporary folder.")
def main(seeds, artists, homonym_groups, albums_per_artist, tracks_per_album, seconds, out, workdir,
         kind, leave_out, genre_damping):
    seeds = [int(x) for x in seeds.split(",")]
    config = {"artists": artists, "homonym_groups": homonym_groups, "synonym_pairs": 0,
              "albums_per_artist": albums_per_artist, "tracks_per_album": tracks_per_album,
              "seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_seed(s, Path(workdir or tmp), config, kind, leave_out, genre_damping) for s in seeds]
    summary = {e: {k: float(np.mean([r["evidence"][e][k] for r in runs]))
                   for k in ("mean_ari_planted", "planted_flagged", "false_alarms", "findings",
                             "average_precision")}
               for e in EVIDENCE}
    model_name = "artdb train default" if kind == "default" else f"{kind} baseline"
    if kind == "default" and leave_out != "flagged":
        model_name += f" --leave-out {leave_out}"
    if kind == "default" and genre_damping is not None:
        model_name += f" --genre-damping {genre_damping}"
    doc = {"bench": "audit_evidence", "model": model_name, "synth": config, "seeds": list(seeds),
           "summary": summary, "runs": runs}
    text = json.dumps(doc, indent=1, default=str)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    for r in runs:
        for e in EVIDENCE:
            x = r["evidence"][e]
            print(f"seed {r['seed']} {e:<18} ARI {x['mean_ari_planted']:.3f} flagged "
                  f"{x['planted_flagged']}/{x['planted']} false alarms {x['false_alarms']} "
                  f"AP {x['average_precision']:.3f} (pages {x['pages_audited']})", file=sys.stderr)


if __name__ == "__main__":
    main()
