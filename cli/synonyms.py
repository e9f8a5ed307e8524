"""``artdb synonyms``: search the catalog for one artist under several names."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app

KIND_CHOICE = click.Choice(["variant", "alias"])


def echo_pairs(pairs: list[dict]) -> None:
    """Candidates (as ``SynonymPair.to_dict()`` or ``artdb review --json`` gives them) as a table:
    ref, score and its parts, kind, the two pages, and whether a search just made it."""
    click.echo(f"{'ref':<8} {'score':>6} {'audio':>6} {'name':>6} {'meta':>6}  {'kind':<7}  "
               "page A  <->  page B")
    for p in pairs:
        note = ""
        if p.get("change") == "new":
            note = f"  (new, replaces {p['replaces']})" if p.get("replaces") else "  (new)"
        click.echo(f"{p['ref'] or '-':<8} {p['score']:6.3f} {p['audio_score']:6.3f} "
                   f"{p['name_score']:6.3f} {p['metadata_score']:6.3f}  {p['kind']:<7}  "
                   f"{p['page_a']} (#{p['page_a_id']})  <->  {p['page_b']} (#{p['page_b_id']}){note}")


@click.command()
@click.argument("page", required=False)
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Keep pairs scoring at least this (default: a cut calibrated on the catalog's "
                   "own pages; 0 keeps every scored pair).")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the N best pairs (all above the cut are stored).")
@click.option("--kind", type=KIND_CHOICE, default=None,
              help="Show only variant spellings (names alike) or aliases (unrelated names).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Nearest pages looked at per page.")
@click.option("--evidence", type=click.Choice(["audio", "metadata", "both"]), default="both",
              show_default=True,
              help="What the score weighs beside the names: audio drops the metadata part, "
                   "metadata the audio part (candidates still come from audio neighbours).")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--dry-run", is_flag=True, help="Search and show, store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@handle_errors
def synonyms(app: AppContext, page: str | None, min_score: float | None, top: int | None,
             kind: str | None, k: int, evidence: str, model_name: str | None, dry_run: bool,
             as_json: bool) -> None:
    """Find pages with different names that sound like one artist, and store them as candidates.

    With PAGE (name, id or 'Name [n]'), only pairs involving that page. A rerun on an unchanged
    catalog keeps every candidate's ref (s<id>) and a curator's rejections; a pair whose evidence
    changed gets a new candidate that says which it replaces. `artdb review` lists the open ones.
    """
    from artdb.core.analysis.synonyms import filter_pairs, find_synonyms
    from artdb.core.learn.registry import resolve_model

    catalog = app.catalog()
    model = resolve_model(catalog, model_name)
    search = find_synonyms(catalog, app.paths, model, page=page, k=k, min_score=min_score,
                           store=not dry_run, evidence=evidence)
    if as_json:
        emit_json({"model": model.name, "dry_run": dry_run, **search.to_dict(top=top, kind=kind)})
        return
    shown = filter_pairs(search.pairs, top=top, kind=kind)
    ch = search.changes()
    would = "would be " if dry_run else ""
    run = "dry run (nothing stored)" if dry_run else f"run #{search.run_id}"
    click.echo(f"synonym search {run}: {search.scored} pairs scored, {len(search.pairs)} at or "
               f"above the cut {search.min_score:.3f} ({search.min_score_source}) — "
               f"{ch['unchanged']} {would}unchanged, {ch['new']} {would}new "
               f"({ch['replacing']} replacing earlier ones), {ch['superseded']} {would}superseded")
    if not shown:
        return
    if len(shown) < len(search.pairs):
        click.echo(f"showing {len(shown)} of {len(search.pairs)}")
    echo_pairs([p.to_dict() for p in shown])
    click.echo("act: artdb merge SOURCE --into TARGET [--dry-run] | artdb reject s<id> | artdb show PAGE")
