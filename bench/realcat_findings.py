"""``artdb audit`` and ``artdb synonyms`` on real recordings, with planted homonym pages and synonyms.

    python bench/realcat_findings.py --catalog /work/cache/realcat-both --seeds 0,1,2,3,4,5,6,7 \
        --workdir /work/cache/findings --out bench/results/realcat_findings.json
    (WORKDIR/base: `artdb --home WORKDIR/base index AUDIO --manifest M` + `artdb train` first,
    to lend its backbone features; --train-args '--genre-damping 0' for a variant)

Every other audit and synonym figure of artdb is on synthetic audio (bench/audit_evidence.py,
docs/synonyms.md). This bench asks the curator's question on the real catalog that
``../shared/realcat`` builds (credited composers of free game soundtracks; dev + dev-extra = 26
artists): does the audit flag pages that mix real artists, and leave the others alone? Does
``artdb synonyms`` find one real artist filed under two names?

For each seed the manifest's artist column is rewritten, nothing else:

* **homonym pages**: groups of 2 (sometimes 3) real artists filed under one invented name (an album
  title two of them share, as composers of one game do, gets " II" so the page keeps their
  albums apart);
* **synonym pairs**: a real artist's releases split over his own name and an unrelated alias —
  "releases" (an artist with several albums: the albums shared out) or "sessions" (an artist with
  one album of ≥ 6 tracks: half its tracks become a second release, "<album> Sessions").

Then the user's path: ``artdb index DIR --manifest M`` (the log-mels; the backbone's features are
copied from a base home that ingested the same files, when its track ids match, to save the
2 minutes the backbone takes per seed), ``artdb train`` with no options, and, without storing,
the audit (the model's own threshold, as ``artdb audit`` uses; ``--calibrate``, on albums or,
where too few pages have two, on tracks; and ``--evidence both`` with the genre tags) and
``artdb synonyms`` (its calibrated cut and every scored pair ranked). The MFCC baseline runs the
same audit and synonym search as the reference (its threshold calibrated on the catalog's tracks:
it has no fitted one).

Scored: a planted page is *flagged* and its proposed partition's ARI against the true artists; a
false alarm is a flagged page that is one real artist (the catalog has 6-8 such pages with ≥ 2
albums left per seed); AP ranks every audited page by its split margin. A synonym pair is *found*
when it is kept above the calibrated cut; its rank is among every scored pair; false candidates
are kept pairs that are not planted (every other pair of pages is two real artists).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from sklearn.metrics import adjusted_rand_score, average_precision_score
from sqlalchemy import select

from artdb.core.analysis.audit import calibrate_threshold, run_audit
from artdb.core.analysis.findings import parse_page_label
from artdb.core.analysis.synonyms import find_synonyms
from artdb.core.config import Paths
from artdb.core.errors import CatalogError
from artdb.core.learn.registry import active_model, get_model
from artdb.core.names import page_key
from artdb.db.models import ArtistPage, Track
from artdb.db.session import Catalog

# Invented names: none is a dev or dev-extra artist (checked in plant()).
HOMONYM_NAMES = ("Eclipse", "Nova", "Meridian", "Aurora", "Drift", "Halcyon", "Vesper", "Solstice")
ALIASES = ("Quiet Harbour", "Blue Static", "Ferro Lune", "Night Cartographer", "Okra Vale",
           "Tamsin Reed", "Glass Orchard", "Umber Fields")


def plant(rows: list[dict], seed: int, homonym_pages: int, synonym_pairs: int) -> tuple[list[dict], dict]:
    """The manifest rows with planted homonym pages and synonym pairs, and what was planted."""
    rng = np.random.default_rng(seed)
    albums: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        albums[r["artist"]][r["album"]].append(i)
    real = {page_key(a) for a in albums}
    assert not real & {page_key(n) for n in HOMONYM_NAMES + ALIASES}, "an invented name is real"
    true_artist = {r["path"]: r["artist"] for r in rows}
    rows = [dict(r) for r in rows]
    artists = sorted(albums)
    rng.shuffle(artists)
    used: set[str] = set()
    synonyms = []
    # synonyms first, from artists who can give two releases; releases-split ones preferred
    multi = [a for a in artists if len(albums[a]) >= 2]
    sessions = [a for a in artists if len(albums[a]) == 1 and len(next(iter(albums[a].values()))) >= 6]
    n_multi = min(len(multi), (synonym_pairs + 1) // 2)
    picks = [(a, "releases") for a in multi[:n_multi]]
    picks += [(a, "sessions") for a in sessions[:synonym_pairs - n_multi]]
    aliases = list(ALIASES)
    rng.shuffle(aliases)
    for (artist, kind), alias in zip(picks, aliases):
        used.add(artist)
        if kind == "releases":
            titles = sorted(albums[artist])
            rng.shuffle(titles)
            moved = [i for t in titles[:len(titles) // 2] for i in albums[artist][t]]
        else:
            (title, idx), = albums[artist].items()
            idx = sorted(idx)
            moved = list(rng.permutation(idx)[:len(idx) // 2])
            for i in moved:
                rows[i]["album"] = f"{title} Sessions"
        for i in moved:
            rows[i]["artist"] = alias
        synonyms.append({"names": [artist, alias], "artist": artist, "kind": kind,
                         "tracks": [len(idx) for idx in albums[artist].values()]})
    # homonym pages from the artists left
    left = [a for a in artists if a not in used]
    names = list(HOMONYM_NAMES)
    rng.shuffle(names)
    homonyms = []
    for name in names[:homonym_pages]:
        size = 3 if rng.random() < 0.25 and len(left) >= 5 else 2
        if len(left) < size:
            break
        group, left = left[:size], left[size:]
        used.update(group)
        seen: set[str] = set()
        for artist in group:
            for title, idx in albums[artist].items():
                new = title if title not in seen else f"{title} II"
                seen.add(new)
                for i in idx:
                    rows[i]["artist"], rows[i]["album"] = name, new
        homonyms.append({"page": name, "artists": group})
    clean = sorted(a for a in albums if a not in used and len(albums[a]) >= 2)
    truth = {"homonym_pages": homonyms, "synonym_pairs": synonyms, "clean_multi_album_pages": clean,
             "true_artist_of_path": true_artist}
    return rows, truth


def artdb(home: Path, *args: str) -> None:
    cmd = [str(Path(sys.executable).with_name("artdb")), "--home", str(home), *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def track_map(db: Path) -> dict[int, tuple[str, str]]:
    catalog = Catalog.open(f"sqlite:///{db}")
    with catalog.session() as s:
        return {i: (p, h) for i, p, h in s.execute(select(Track.id, Track.audio_path, Track.content_hash))}


def reuse_features(base: Path, home: Path) -> bool:
    """Copy the base home's feature stores the seed's home lacks, when both catalogs gave every
    file the same track id (the stores are keyed by track id and record each track's audio)."""
    if not (base / "catalog.sqlite").exists() or track_map(base / "catalog.sqlite") != track_map(
            home / "catalog.sqlite"):
        return False
    for store in (base / "features").iterdir():
        target = home / "features" / store.name
        if not target.exists():
            shutil.copytree(store, target, ignore=shutil.ignore_patterns("writer.lock"))
    return True


def _manifest_text(fields, rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def album_truth(catalog: Catalog, truth: dict, root: Path) -> dict[int, str]:
    by_path = {str((root / p).resolve()): a for p, a in truth["true_artist_of_path"].items()}
    with catalog.session() as s:
        pairs = s.execute(select(Track.album_id, Track.audio_path)).all()
    votes: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for album, path in pairs:
        votes[album][by_path[path]] += 1
    return {a: max(v, key=v.get) for a, v in votes.items()}


def score_audit(report, truth: dict, albums: dict[int, str]) -> dict:
    planted = {page_key(g["page"]) for g in truth["homonym_pages"]}
    pages, false_alarms, y, margin = [], [], [], []
    for p in report.pages:
        name = parse_page_label(p.page)[0]
        is_planted = page_key(name) in planted
        y.append(is_planted)
        margin.append(p.score)
        if is_planted:
            labels = [albums[a] for a in p.album_ids]
            pages.append({"page": name, "albums": len(p.album_ids), "true_artists": len(set(labels)),
                          "flagged": p.flagged, "clusters": p.n_clusters,
                          "ari": float(adjusted_rand_score(labels, p.labels)) if p.flagged else 0.0,
                          # every proposed cluster one real artist (an extra split a curator undoes)
                          "pure": p.flagged and all(len({t for t, c in zip(labels, p.labels) if c == k}) == 1
                                                    for k in set(p.labels)),
                          "margin": round(float(p.score), 4)})
        elif p.flagged:
            false_alarms.append({"page": name, "albums": len(p.album_ids),
                                 "margin": round(float(p.score), 4)})
    return {"threshold": report.threshold, "planted": len(pages),
            "flagged": sum(p["flagged"] for p in pages), "pure": sum(p["pure"] for p in pages),
            "mean_ari": float(np.mean([p["ari"] for p in pages])) if pages else float("nan"),
            "false_alarms": len(false_alarms), "clean_pages_audited": len(report.pages) - len(pages),
            "average_precision": float(average_precision_score(y, margin)) if any(y) else float("nan"),
            "pages": pages, "false_alarm_pages": false_alarms}


def score_synonyms(catalog: Catalog, kept, scored, truth: dict, cut: float) -> dict:
    with catalog.session() as s:
        key = dict(s.execute(select(ArtistPage.id, ArtistPage.normalized_name)).all())

    def pair_key(p):
        return frozenset((key[p.page_a_id], key[p.page_b_id]))

    ranked = [pair_key(p) for p in sorted(scored, key=lambda p: -p.score)]
    kept_keys = {pair_key(p) for p in kept}
    pairs = []
    for pair in truth["synonym_pairs"]:
        want = frozenset(page_key(n) for n in pair["names"])
        rank = ranked.index(want) + 1 if want in ranked else None
        pairs.append({"names": pair["names"], "kind": pair["kind"], "rank": rank, "found": want in kept_keys})
    planted = {frozenset(page_key(n) for n in p["names"]) for p in truth["synonym_pairs"]}
    return {"cut": cut, "kept": len(kept), "scored": len(scored),
            "found": sum(p["found"] for p in pairs), "planted": len(pairs),
            "false_candidates": len(kept_keys - planted),
            "mean_reciprocal_rank": float(np.mean([1 / p["rank"] if p["rank"] else 0 for p in pairs])),
            "pairs": pairs}


def audits(catalog: Catalog, paths: Paths, model, truth: dict, albums: dict, seed: int,
           own_threshold: bool) -> dict:
    out = {}
    if own_threshold:  # artdb audit with no options: the model's threshold
        out["audio"] = score_audit(run_audit(catalog, paths, model, store=False), truth, albums)
        out["both"] = score_audit(run_audit(catalog, paths, model, store=False, evidence="both", seed=seed),
                                  truth, albums)
    else:  # the MFCC baseline has none: fitted on the pages' tracks, as artdb train fits its own
        t = calibrate_threshold(catalog, paths, model, folds=3, seed=seed, unit="track", store=False)
        out["audio"] = score_audit(run_audit(catalog, paths, model, store=False, threshold=t["threshold"]),
                                   truth, albums)
    try:  # artdb audit --calibrate: albums, or tracks where too few pages have two albums
        cal = calibrate_threshold(catalog, paths, model, folds=3, seed=seed, store=False)
    except CatalogError as exc:
        out["audio-calibrated"] = {"error": str(exc)}
    else:
        out["audio-calibrated"] = score_audit(
            run_audit(catalog, paths, model, store=False, threshold=cal["threshold"]), truth, albums)
        out["audio-calibrated"]["calibration"] = {k: cal[k] for k in
                                                  ("threshold", "cv_ari", "groups", "pages", "unit")}
    return out


def synonyms(catalog: Catalog, paths: Paths, model, truth: dict) -> dict:
    out = {}
    for evidence in ("audio", "both"):
        kept = find_synonyms(catalog, paths, model, store=False, evidence=evidence)
        scored = find_synonyms(catalog, paths, model, store=False, evidence=evidence, min_score=0.0)
        out[evidence] = score_synonyms(catalog, kept.pairs, scored.pairs, truth, kept.min_score)
    return out


def one_seed(seed: int, source: Path, work: Path, homonym_pages: int, synonym_pairs: int,
             train_args: tuple[str, ...] = ()) -> dict:
    t0 = time.perf_counter()
    with open(source / "manifest.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    planted, truth = plant(rows, seed, homonym_pages, synonym_pairs)
    home = work / f"seed{seed}"
    text = _manifest_text(fields, planted)
    if train_args:  # what the home was trained with is part of what it was built from
        text += "# artdb train " + " ".join(train_args) + "\n"
    built = home / "built.csv"  # written last: a home holding it was ingested and trained from it
    reused = None
    if not (built.exists() and built.read_text(encoding="utf-8") == text):
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        manifest = home / "manifest.csv"
        manifest.write_text(_manifest_text(fields, planted), encoding="utf-8")
        artdb(home, "models", "add-baseline", "mfcc", "--activate")
        artdb(home, "index", str(source / "audio"), "--manifest", str(manifest), "--no-progress")
        reused = reuse_features(work / "base", home)
        artdb(home, "train", "--no-progress", *train_args)
        built.write_text(text, encoding="utf-8")
    catalog, paths = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}"), Paths.from_home(home)
    albums = album_truth(catalog, truth, source / "audio")
    out = {"seed": seed, "planted": {k: truth[k] for k in ("homonym_pages", "synonym_pairs",
                                                             "clean_multi_album_pages")},
           "features_reused": reused,  # None: the home of an earlier run was reused
           "models": {}}
    for name, model in (("default", active_model(catalog)), ("mfcc", get_model(catalog, "mfcc"))):
        out["models"][name] = {"audit": audits(catalog, paths, model, truth, albums, seed,
                                               own_threshold=name == "default"),
                               "synonyms": synonyms(catalog, paths, model, truth)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def summary(runs: list[dict]) -> dict:
    out: dict = {}
    for model in runs[0]["models"]:
        m = out.setdefault(model, {"audit": {}, "synonyms": {}})
        for variant in runs[0]["models"][model]["audit"]:
            xs = [r["models"][model]["audit"][variant] for r in runs]
            xs = [x for x in xs if "error" not in x]
            if not xs:
                continue
            m["audit"][variant] = {
                "seeds": len(xs), "planted": int(sum(x["planted"] for x in xs)),
                "flagged": int(sum(x["flagged"] for x in xs)), "pure": int(sum(x["pure"] for x in xs)),
                "mean_ari": _mean_sd([x["mean_ari"] for x in xs]),
                "false_alarms": int(sum(x["false_alarms"] for x in xs)),
                "clean_pages_audited": int(sum(x["clean_pages_audited"] for x in xs)),
                "average_precision": _mean_sd([x["average_precision"] for x in xs])}
        for evidence in runs[0]["models"][model]["synonyms"]:
            xs = [r["models"][model]["synonyms"][evidence] for r in runs]
            pairs = [p for x in xs for p in x["pairs"]]
            m["synonyms"][evidence] = {
                "found": int(sum(x["found"] for x in xs)), "planted": len(pairs),
                "found_by_kind": {k: f"{sum(p['found'] for p in pairs if p['kind'] == k)}/"
                                     f"{sum(p['kind'] == k for p in pairs)}"
                                  for k in ("releases", "sessions")},
                "false_candidates": int(sum(x["false_candidates"] for x in xs)),
                "median_rank": float(np.median([p["rank"] or 10**6 for p in pairs])),
                "mean_reciprocal_rank": _mean_sd([x["mean_reciprocal_rank"] for x in xs])}
    return out


def _mean_sd(xs):
    xs = np.asarray(xs, dtype=float)
    return [round(float(np.nanmean(xs)), 3), round(float(np.nanstd(xs)), 3)]


@click.command()
@click.option("--catalog", "source", type=click.Path(exists=True, file_okay=False), required=True,
              help="A realcat folder (audio/ + manifest.csv), e.g. dev and dev-extra joined.")
@click.option("--seeds", default="0,1,2,3,4,5,6,7", show_default=True)
@click.option("--homonym-pages", default=4, show_default=True)
@click.option("--synonym-pairs", default=3, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), required=True,
              help="Homes per seed; WORKDIR/base, when it holds the same files ingested and a model "
                   "trained (artdb index + artdb train), lends its backbone features.")
@click.option("--train-args", default="", help="More options for `artdb train`, e.g. "
              "'--genre-damping 0' (use another --workdir: homes are rebuilt when they differ).")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(source, seeds, homonym_pages, synonym_pairs, workdir, train_args, out):
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    runs = []
    for seed in [int(s) for s in seeds.split(",")]:
        runs.append(one_seed(seed, Path(source), Path(workdir), homonym_pages, synonym_pairs,
                             tuple(shlex.split(train_args))))
        r = runs[-1]
        for model, x in r["models"].items():
            for variant, a in x["audit"].items():
                if "error" in a:
                    print(f"seed {seed} {model:<7} audit {variant:<16} {a['error']}", file=sys.stderr)
                    continue
                print(f"seed {seed} {model:<7} audit {variant:<16} flagged {a['flagged']}/{a['planted']} "
                      f"ARI {a['mean_ari']:.2f} false alarms {a['false_alarms']}/{a['clean_pages_audited']} "
                      f"AP {a['average_precision']:.2f}", file=sys.stderr)
            for evidence, sx in x["synonyms"].items():
                print(f"seed {seed} {model:<7} synonyms {evidence:<5} found {sx['found']}/{sx['planted']} "
                      f"ranks {[p['rank'] for p in sx['pairs']]} false candidates {sx['false_candidates']} "
                      f"(cut {sx['cut']:.3f}, {sx['scored']} scored)", file=sys.stderr)
        if out:  # after every seed: a long run keeps what it measured
            doc = {"bench": "realcat_findings", "catalog": str(source), "train_args": train_args,
                   "homonym_pages": homonym_pages,
                   "synonym_pairs": synonym_pairs, "summary": summary(runs), "runs": runs}
            Path(out).write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    print(json.dumps(summary(runs), indent=1))


if __name__ == "__main__":
    main()
