"""``artdb report OUT.html``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--top", default=10, show_default=True,
              help="How many flagged pages are shown in full (albums, excerpts, figures, commands); "
                   "the first TOP synonym candidates get excerpts too.")
@click.option("--synonyms", "n_synonyms", default=100, show_default=True,
              help="How many synonym candidates to list.")
@click.option("--excerpt-seconds", type=click.FloatRange(2, 30), default=4.0, show_default=True,
              help="Length of each audio excerpt.")
@click.option("--excerpts-per-cluster", type=click.IntRange(1, 10), default=3, show_default=True,
              help="Excerpts of each proposed cluster (its most typical tracks).")
@click.option("--audio-budget", type=click.IntRange(0), default=2048, show_default=True,
              metavar="KIB", help="Most KiB of embedded audio in the report: excerpts are "
                                  "shortened, then left out, past it (the report says so).")
@click.option("--no-audio", is_flag=True, help="Embed no audio excerpts.")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
@handle_errors
def report(app: AppContext, out: str, top: int, n_synonyms: int, excerpt_seconds: float,
           excerpts_per_cluster: int, audio_budget: int, no_audio: bool, model_name: str | None,
           as_json: bool) -> None:
    """Write a self-contained HTML report of the latest audit: each flagged page's proposed
    artists (albums, audio excerpts, figures in the same colours, the commands to act), and the
    synonym candidates. It opens offline and carries no script."""
    from artdb.core.learn.registry import get_model
    from artdb.core.reporting.excerpts import ExcerptOptions
    from artdb.core.reporting.report import write_report

    catalog = app.catalog()
    model = get_model(catalog, model_name) if model_name else None
    audio = ExcerptOptions(seconds=excerpt_seconds, per_cluster=excerpts_per_cluster,
                           budget_bytes=audio_budget * 1024, enabled=not no_audio)
    summary = write_report(catalog, app.paths, out, model=model, top=top, synonyms=n_synonyms,
                           audio=audio)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(f"wrote {summary.path} ({summary.bytes / 1024:.0f} KiB): {summary.findings} homonym "
               f"pages ({summary.figures} with figures), {summary.synonym_candidates} synonym "
               f"candidates, {summary.audio_excerpts} audio excerpts "
               f"({summary.audio_bytes / 1024:.0f} of {summary.audio_budget / 1024:.0f} KiB)")
    for note in summary.notes:
        click.echo(f"note: {note}")
