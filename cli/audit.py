"""``artdb audit``: find artist pages whose albums sound like several artists."""

from __future__ import annotations

import csv
import sys

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.option("--page", "pages", multiple=True,
              help="Audit only this page (name, id or 'Name [n]'; repeatable).")
@click.option("--min-albums", default=2, show_default=True,
              help="Pages with fewer embedded albums are skipped.")
@click.option("--top", default=None, type=int, help="Show only the N highest-scoring pages.")
@click.option("--all", "all_pages", is_flag=True, help="Show every audited page, not only the flagged ones.")
@click.option("--threshold", type=float, default=None, help="Distance threshold (default: the model's).")
@click.option("--calibrate", is_flag=True,
              help="First re-learn the threshold from the catalog (k-fold CV over artificial homonym "
                   "groups of trusted pages) and store it with the model.")
@click.option("--folds", default=5, show_default=True, help="With --calibrate: CV folds.")
@click.option("--seed", default=0, show_default=True,
              help="With --calibrate or a fusion: group-forming seed.")
@click.option("--evidence", type=click.Choice(["audio", "metadata", "both"]), default=None,
              help="What the distance weighs (default: both when the catalog has metadata and no "
                   "--threshold is given, else audio). metadata/both fit a fusion on the catalog's "
                   "artificial homonym groups and store it with the run.")
@click.option("--fusion-groups", "grouping", type=click.Choice(["genre", "random"]), default="genre",
              show_default=True,
              help="How the fusion's artificial groups are drawn: within genres first (like real "
                   "homonyms), or from all trusted pages (as the audio calibration does).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Processes for large catalogs.")
@click.option("--executor", type=click.Choice(["process", "dask"]), default="process", show_default=True,
              help="Where pages are clustered (dask needs the 'dist' extra).")
@click.option("--scheduler", default=None, help="Dask scheduler address (default: a local cluster).")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--dry-run", is_flag=True, help="Do not store the run and its findings.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per album of each shown page.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@pass_app
@handle_errors
def audit(app: AppContext, pages, min_albums, top, all_pages, threshold, calibrate, folds, seed,
          evidence, grouping, workers, executor, scheduler, model_name, dry_run, as_json, as_csv,
          no_progress) -> None:
    """Cluster each artist page's albums by sound and flag pages that mix several artists.

    The threshold is the model's (fitted on held-out artists' artificial homonym groups) unless
    --calibrate or --threshold. Flagged pages are stored as findings for `artdb review`, ranked by
    their split margin (how far the closest pair of proposed clusters lies beyond the threshold).
    """
    from artdb.cli.progress import progress_bar
    from artdb.core.analysis.audit import calibrate_threshold, run_audit
    from artdb.core.analysis.metadata import reason_lines
    from artdb.core.learn.registry import resolve_model

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    catalog = app.catalog()
    model = resolve_model(catalog, model_name)
    calibration = None
    if calibrate:
        calibration = calibrate_threshold(catalog, app.paths, model, folds=folds, seed=seed)
        if not (as_json or as_csv):
            click.echo(f"calibrated threshold {calibration['threshold']:.4f} ({calibration['linkage']}/"
                       f"{calibration['metric']}): CV ARI {calibration['cv_ari']:.3f} over "
                       f"{calibration['groups']} artificial groups of {calibration['pages']} pages' "
                       f"{calibration['unit']}s")
    with progress_bar(not no_progress and not (as_json or as_csv)) as bar:
        report = run_audit(catalog, app.paths, model, min_albums=min_albums, pages=list(pages) or None,
                           threshold=threshold, workers=workers, progress=bar, store=not dry_run,
                           evidence=evidence or "auto", seed=seed, grouping=grouping,
                           executor_backend=executor, scheduler_address=scheduler)
    out = report.to_dict(all_pages=all_pages, top=top)
    if calibration is not None:
        out["calibration"] = calibration
    if as_json:
        emit_json(out)
        return
    if as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(["rank", "page_id", "page", "n_albums", "n_clusters", "score", "finding_id",
                    "cluster", "album_id", "album"])
        for rank, p in enumerate(out["pages"], 1):
            for c in p["clusters"]:
                for a in c["albums"]:
                    w.writerow([rank, p["page_id"], p["page"], p["n_albums"], p["n_clusters"],
                                f"{p['score']:.4f}", p["finding_id"] or "", c["cluster"],
                                a["album_id"], a["title"]])
        return
    run = f"run #{report.run_id}" if report.run_id else "dry run (nothing stored)"
    ch = report.changes()
    would = "" if report.run_id else "would be "
    click.echo(f"audit {run}: {len(report.pages)} pages, {len(report.findings)} flagged "
               f"({ch['unchanged']} {would}unchanged, {ch['new']} {would}new), "
               f"{len(report.suppressed)} suppressed (rejected before) — model {report.model}, "
               f"threshold {report.threshold:.4f} ({report.linkage}/{report.metric}), "
               f"{report.seconds:.2f} s")
    note = f" — {report.evidence_note}" if report.evidence_note else ""
    click.echo(f"evidence: {report.evidence}{note}")
    if report.fusion is not None:
        for line in report.fusion.calibration_lines():
            click.echo(line)
    if not out["pages"]:
        return
    click.echo(f"{'#':>3} {'score':>7} {'clusters':>8} {'albums':>6}  {'finding':<20} page")
    for rank, p in enumerate(out["pages"], 1):
        click.echo(f"{rank:>3} {p['score']:7.3f} {p['n_clusters']:>8} {p['n_albums']:>6}  "
                   f"{_finding_cell(p):<20} {p['page']} (#{p['page_id']})")
        if p["n_clusters"] > 1:
            for c in p["clusters"]:
                albums = c["albums"]
                titles = ", ".join(a["title"] for a in albums[:6]) + (" …" if len(albums) > 6 else "")
                click.echo(f"{'':>22}  cluster {c['cluster']}: {titles}")
            for line in reason_lines(p["reasons"]):
                click.echo(f"{'':>22}  why: {line}")
    if report.findings:
        click.echo("act: artdb show PAGE | artdb split PAGE [--dry-run] | artdb reject h<id>")


def _finding_cell(p: dict) -> str:
    """The finding's ref and what this run did with it: "h12", "h15 new", "h15 replaces h12",
    "h9 rejected"."""
    if p["suppressed"]:
        return f"{p['ref'] or ''} rejected".strip()
    if not p["ref"] and p["change"] is None:
        return ""
    ref = p["ref"] or "(new)"
    if p["replaces"]:
        return f"{ref} replaces {p['replaces']}"
    return f"{ref} new" if p["change"] == "new" else ref
