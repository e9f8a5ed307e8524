"""``artdb place ALBUM``: which of the artists sharing a name made this album?"""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural


@click.command()
@click.argument("album")
@click.option("--threshold", type=float, default=None, help="Distance threshold (default: the model's).")
@click.option("--evidence", type=click.Choice(["audio", "metadata", "both"]), default=None,
              help="What the distance weighs (default: both when the catalog has metadata and no "
                   "--threshold is given, else audio); metadata/both use the fusion stored with the "
                   "latest audit that weighed the same (fitted now if none).")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--apply", "apply_", is_flag=True,
              help="Move the album to the matched page (a curator decision, undoable with artdb undo).")
@click.option("--dry-run", is_flag=True,
              help="Show exactly what --apply would move; change nothing (implies --apply).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@handle_errors
def place(app: AppContext, album: str, threshold: float | None, evidence: str | None,
          model_name: str | None,
          apply_: bool, dry_run: bool, as_json: bool) -> None:
    """Place ALBUM among the artists that share its artist name.

    ALBUM is an album id, "Artist - Title", or a folder of audio files already ingested. The
    candidates are the pages with the same name (including split pages "Name [1]", "Name [2]") and
    the proposed clusters of a flagged page; the answer is the closest one within the audit
    threshold, or "new artist".
    """
    from artdb.core.analysis.audit import default_evidence
    from artdb.core.analysis.placement import apply_placement, place_album
    from artdb.core.learn.registry import resolve_model

    catalog = app.catalog()
    if evidence is None:
        evidence = "audio" if threshold is not None else default_evidence(catalog)
    result = place_album(catalog, app.paths, resolve_model(catalog, model_name), album,
                         threshold=threshold, evidence=evidence)
    apply_ = apply_ or dry_run
    moved = apply_placement(catalog, result, dry_run=dry_run) if apply_ else None
    if as_json:
        emit_json({**result.to_dict(), "applied": moved.to_dict() if moved else None})
        return
    click.echo(f"album #{result.album_id} {result.album!r} on {result.page!r}: "
               f"threshold {result.threshold:.4f} ({result.linkage}/{result.metric}), "
               f"evidence {result.evidence}")
    if result.best is None:
        click.echo("→ new artist (no candidate within the threshold)")
    else:
        b = result.best
        what = f" cluster {b.cluster}" if b.cluster is not None else ""
        click.echo(f"→ {b.page}{what} (#{b.page_id}): distance {b.distance:.4f}, margin {b.margin:.3f}")
        if b.reasons:
            click.echo("   why: " + "; ".join(b.reasons))
    for c in result.candidates:
        what = f" cluster {c.cluster}" if c.cluster is not None else ""
        click.echo(f"   {c.distance:7.4f}  {c.page}{what} "
                   f"(#{c.page_id}, {plural(len(c.album_ids), 'album')})")
    if moved is not None and dry_run:
        click.echo(f"would move album #{moved.summary['album_id']} {moved.summary['album']!r} and "
                   f"{moved.summary['credits_moved']} track credits from {moved.summary['from']['page']} "
                   f"to {moved.summary['to']['page']}\ndry run: nothing was changed")
    elif moved is not None:
        click.echo(f"moved to {moved.summary['to']['page']} (decision #{moved.id}; "
                   f"`artdb undo {moved.id}` reverts it)")
    elif apply_:
        click.echo("nothing applied (no match on another page)")
