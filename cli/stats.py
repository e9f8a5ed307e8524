"""``artdb stats``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runs", default=5, show_default=True, help="How many recent ingest runs to show.")
@pass_app
@handle_errors
def stats(app: AppContext, as_json: bool, runs: int) -> None:
    """Catalog counts, embedded tracks per model, recent ingest runs and their errors."""
    from artdb.core.reporting.stats import catalog_stats

    data = catalog_stats(app.catalog(), last_runs=runs)
    if as_json:
        emit_json(data)
        return
    click.echo(f"{'catalog':<16}{data['database']}")
    for key in ("artist_pages", "albums", "tracks", "genres", "labels", "hours_of_audio"):
        click.echo(f"{key.replace('_', ' '):<16}{data[key]}")
    if data["models"]:
        click.echo("models:")
        for m in data["models"]:
            mark = "*" if m["active"] else " "
            click.echo(f" {mark} {m['name']:<30} {m['kind']:<10} "
                       f"{plural(m['embedded_tracks'], 'track')} embedded")
    if data["last_runs"]:
        click.echo("recent ingest runs:")
        for r in data["last_runs"]:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
            click.echo(f"  #{r['id']} {r['status']:<11} {r['root']}  ({counts})")
            for e in r["errors"][:10]:
                click.echo(f"      error: {e['path']}: {e['reason']}")
            if len(r["errors"]) > 10:
                click.echo(f"      … and {len(r['errors']) - 10} more errors (--json lists all)")
