"""``artdb demo``: the whole job on the embedded default, checked against a planted truth.

synthesize a catalog with planted homonym pages and synonym pairs → ingest (features, MFCC
baseline vectors) → audit with the baseline → train what ``artdb train`` trains with no options
(the musicnn backbone + head) and, beside it, the log-mel CNN learnt from scratch
(``artdb train --backbone none``) → re-embed, audit, find synonyms, write the HTML report with the
default model → compare what was found with what was planted (ARI of each planted homonym page's
proposed split; planted synonym pairs among the top ranked candidates), for every system side by
side.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score
from sqlalchemy import select

from artdb.core.analysis.audit import calibrate_threshold, run_audit
from artdb.core.analysis.findings import parse_page_label
from artdb.core.analysis.synonyms import find_synonyms, planted_recall
from artdb.core.config import Paths
from artdb.core.features.backbone import BackboneConfig
from artdb.core.ingest.pipeline import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.backbone import HeadConfig
from artdb.core.learn.catalog import train_backbone_from_catalog, train_from_catalog
from artdb.core.learn.config import TrainConfig
from artdb.core.learn.registry import get_model, register_mfcc_baseline
from artdb.core.names import page_key
from artdb.core.progress import Progress
from artdb.core.reporting.demo_config import DemoConfig
from artdb.core.reporting.report import write_report
from artdb.core.reporting.stats import counts_in_words
from artdb.core.synth.catalog import generate_catalog
from artdb.core.synth.config import SynthConfig
from artdb.db.models import ArtistPage, Track
from artdb.db.session import Catalog

LogFn = Callable[[str], None]
DEFAULT_SYSTEM = "artdb-default"  # what `artdb train` trains with no options
CNN_SYSTEM = "cnn-scratch"  # `artdb train --backbone none`: the log-mel CNN learnt on the catalog


@dataclass
class DemoResult:
    home: str
    catalog_dir: str
    report: str
    seconds: dict[str, float] = field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    homonym_pages: list[dict[str, Any]] = field(default_factory=list)
    synonym_pairs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _album_truth(catalog: Catalog, catalog_dir: Path, truth: dict[str, Any]) -> dict[int, str]:
    """Catalog album id -> true artist (majority of its tracks' true artists)."""
    by_path = {str((catalog_dir / t["path"]).resolve()): t["artist_id"] for t in truth["tracks"]}
    votes: dict[int, Counter] = {}
    with catalog.session() as s:
        for album_id, path in s.execute(select(Track.album_id, Track.audio_path)):
            if path in by_path:
                votes.setdefault(album_id, Counter())[by_path[path]] += 1
    return {a: c.most_common(1)[0][0] for a, c in votes.items()}


def score_homonyms(catalog: Catalog, report, truth: dict[str, Any],
                   album_truth: dict[int, str]) -> list[dict]:
    """ARI of each planted homonym page's proposed partition against the true artists."""
    by_page = {p.page_id: p for p in report.pages}
    rows = []
    with catalog.session() as s:
        for group in truth["homonym_groups"]:
            pid = s.scalar(select(ArtistPage.id).where(
                ArtistPage.normalized_name == page_key(group["page_name"]), ArtistPage.disambiguation == ""))
            audit = by_page.get(pid)
            if audit is None:
                rows.append({"page": group["page_name"], "true_artists": len(group["artist_ids"]),
                             "found_clusters": None, "ari": None, "flagged": False,
                             "verdict": "not flagged"})
                continue
            truth_labels = [album_truth.get(a, "?") for a in audit.album_ids]
            rows.append({
                "page": group["page_name"], "true_artists": len(set(truth_labels)),
                "albums": len(audit.album_ids), "found_clusters": audit.n_clusters,
                "flagged": audit.flagged, "ari": float(adjusted_rand_score(truth_labels, audit.labels)),
            })
            rows[-1]["verdict"] = verdict(rows[-1]["flagged"], rows[-1]["ari"])
    return rows


def verdict(flagged: bool, ari: float | None) -> str:
    """A planted page's outcome in words: "not flagged" (the audit kept it whole), "exact split"
    (the proposed clusters are the true artists) or "wrong split" (flagged, but the clusters
    differ from the true artists: the ARI says how much)."""
    if not flagged:
        return "not flagged"
    return "exact split" if ari is not None and ari > 0.999 else "wrong split"


def false_alarms(report, truth: dict[str, Any]) -> list[str]:
    planted = {page_key(g["page_name"]) for g in truth["homonym_groups"]}
    return [p.page for p in report.findings if page_key(parse_page_label(p.page)[0]) not in planted]


def run_demo(home: str | Path, config: DemoConfig | None = None, progress: Progress | None = None,
             log: LogFn | None = None, fresh: bool = True) -> DemoResult:
    """Run the demo in its own data dir ``home`` (a SQLite catalog there); see the module doc.

    ``progress`` (:mod:`artdb.core.progress`) hears every stage: synthesize, ingest, train, embed.
    """
    config = config or DemoConfig()
    say = log or (lambda _msg: None)
    home = Path(home)
    if fresh and home.exists():
        shutil.rmtree(home)
    paths = Paths.from_home(home)
    catalog_dir = home / "synthetic-catalog"
    result = DemoResult(home=str(home), catalog_dir=str(catalog_dir), report=str(home / "report.html"))
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[name] = round(now - clock, 1)
        clock = now

    say(f"1/6 synthesizing {config.artists} artists into {catalog_dir}")
    truth = generate_catalog(catalog_dir, SynthConfig(
        artists=config.artists, albums_per_artist=config.albums_per_artist,
        tracks_per_album=config.tracks_per_album, seconds=config.seconds, genres=config.genres,
        homonym_groups=config.homonym_groups, synonym_pairs=config.synonym_pairs,
        difficulty=config.difficulty, seed=config.seed, workers=config.workers),
        progress=progress)
    truth_d = truth.to_dict()
    lap("synthesize")

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}")
    say("2/6 indexing the catalog (features + MFCC baseline vectors)")
    baseline = register_mfcc_baseline(catalog, name="mfcc-baseline", activate=True)
    summary = index_catalog(catalog, paths, catalog_dir, IngestOptions(workers=config.workers),
                            progress=progress)
    say(f"    {counts_in_words(summary.counts)}")
    lap("index")

    album_truth = _album_truth(catalog, catalog_dir, truth_d)
    # Pairs whose names fold to one catalog key became one page at ingest: nothing to find.
    planted_syn = [tuple(p["names"]) for p in truth_d["synonym_pairs"]
                   if page_key(p["names"][0]) != page_key(p["names"][1])]

    def evaluate_system(model) -> dict[str, Any]:
        report = run_audit(catalog, paths, model, workers=config.workers)
        pages = score_homonyms(catalog, report, truth_d, album_truth)
        # what a curator is shown: the pairs above the catalog-calibrated cut, best first
        pairs = find_synonyms(catalog, paths, model).pairs
        recall = planted_recall(catalog, pairs, planted_syn, cutoffs=(10, 20))
        aris = [p["ari"] for p in pages if p["ari"] is not None]
        return {"report": report, "pages": pages, "pairs": pairs, "summary": {
            "model": model.name, "threshold": report.threshold,
            "mean_ari_planted_pages": float(np.mean(aris)) if aris else None,
            "planted_pages_flagged": sum(p["flagged"] for p in pages),
            "planted_pages_exact": sum(p["verdict"] == "exact split" for p in pages),
            "planted_pages_wrong_split": sum(p["verdict"] == "wrong split" for p in pages),
            "planted_pages": len(pages), "findings": len(report.findings),
            "false_alarms": false_alarms(report, truth_d),
            "synonym_recall_top10": recall[10], "synonym_recall_top20": recall[20],
        }}

    say("3/6 auditing with the MFCC baseline (threshold cross-validated on the catalog's pages)")
    calibrate_threshold(catalog, paths, baseline, folds=3, seed=config.seed)
    base_eval = evaluate_system(get_model(catalog, baseline.id))
    result.systems["mfcc-baseline"] = base_eval["summary"]
    lap("baseline audit")

    cnn_eval = None
    if config.train_steps > 0:
        say(f"4/6 training the log-mel CNN from scratch (artdb train --backbone none; "
            f"{config.train_steps} steps, semi-hard triplets, side information)")
        train_cfg = TrainConfig(method="ml", mining="semihard", steps=config.train_steps,
                                artists_per_batch=8, per_artist=4,
                                val_every=max(25, config.train_steps // 6), patience=3,
                                crop_frames=100, seed=config.seed, val_fraction=0.2)
        # every system learns from every page, as on a fresh catalog: the MFCC audit's findings
        # (stored above) must not make the comparison a chain
        cnn_model, cnn_result = train_from_catalog(catalog, paths, train_cfg, name=CNN_SYSTEM,
                                                   progress=progress, leave_out="none")
        say(f"    validation ARI {cnn_result.initial_val_ari:.3f} (untrained) -> "
            f"{cnn_result.best_val_ari:.3f}; auditing with it")
        cnn_eval = evaluate_system(get_model(catalog, cnn_model.id))
        result.systems[CNN_SYSTEM] = {**cnn_eval["summary"], "val_ari": cnn_result.best_val_ari,
                                      "val_ari_untrained": cnn_result.initial_val_ari}
        lap("train+audit cnn")

    say("5/6 training artdb's default model (artdb train with no options: the musicnn backbone "
        "+ a metric head whose share validation decides), auditing, finding synonyms, writing "
        "the report")
    # as many 3-s patches as a synthetic track holds (the default's 10 assume full-length tracks)
    backbone = BackboneConfig(patches_per_track=max(1, min(BackboneConfig.patches_per_track,
                                                          int(config.seconds // 3))))
    # trained last, so that it is the active model: the catalog and the report keep its findings
    default_model, default_result = train_backbone_from_catalog(
        catalog, paths, backbone, HeadConfig(seed=config.seed), name=DEFAULT_SYSTEM,
        workers=config.workers, progress=progress, leave_out="none")
    model = get_model(catalog, default_model.id)
    ml_eval = evaluate_system(model)
    result.systems[DEFAULT_SYSTEM] = {**ml_eval["summary"], **default_result.summary()}
    write_report(catalog, paths, result.report, model=model)
    lap("train+audit default")

    say("6/6 comparing with what was planted")
    base_pages = {p["page"]: p for p in base_eval["pages"]}
    cnn_pages = {p["page"]: p for p in cnn_eval["pages"]} if cnn_eval else {}
    for p in ml_eval["pages"]:
        base, cnn = base_pages.get(p["page"], {}), cnn_pages.get(p["page"], {})
        result.homonym_pages.append({**p, "mfcc_ari": base.get("ari"),
                                     "mfcc_clusters": base.get("found_clusters"),
                                     "mfcc_verdict": base.get("verdict"),
                                     "cnn_ari": cnn.get("ari"), "cnn_clusters": cnn.get("found_clusters"),
                                     "cnn_verdict": cnn.get("verdict")})
    ranked = {frozenset((page_key(x.page_a), page_key(x.page_b))): i + 1
              for i, x in enumerate(ml_eval["pairs"])}
    ranked_base = {frozenset((page_key(x.page_a), page_key(x.page_b))): i + 1
                   for i, x in enumerate(base_eval["pairs"])}
    for pair in truth_d["synonym_pairs"]:
        key = frozenset(page_key(n) for n in pair["names"])
        # Names that fold to one catalog key ("Weiß"/"Weiss") were put on one page at ingest.
        result.synonym_pairs.append({"names": pair["names"], "kind": pair["kind"],
                                     "same_page": len(key) == 1,
                                     "rank": ranked.get(key), "mfcc_rank": ranked_base.get(key)})
    catalog.close()
    return result
