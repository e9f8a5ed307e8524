"""``artdb report OUT.html``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--top", default=10, show_default=True,
              help="How many flagged pages get figures (dendrogram and album map).")
@click.option("--synonyms", "n_synonyms", default=100, show_default=True,
              help="How many synonym candidates to list.")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@pass_app
@handle_errors
def report(app: AppContext, out: str, top: int, n_synonyms: int, model_name: str | None,
           as_json: bool) -> None:
    """Write a self-contained HTML report of the latest audit: homonym pages with figures and
    synonym candidates."""
    from artdb.core.learn.registry import get_model
    from artdb.core.reporting.report import write_report

    catalog = app.catalog()
    model = get_model(catalog, model_name) if model_name else None
    summary = write_report(catalog, app.paths, out, model=model, top=top, synonyms=n_synonyms)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(f"wrote {summary.path} ({summary.bytes / 1024:.0f} KiB): {summary.findings} homonym "
               f"pages ({summary.figures} with figures), {summary.synonym_candidates} synonym candidates")
    for note in summary.notes:
        click.echo(f"note: {note}")
