"""``artdb export``: a model's vectors with their track paths and ids, for other tools."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--level", type=click.Choice(["track", "album", "artist"]), default="track", show_default=True,
              help="Track vectors, or album / artist-page vectors (mean-normalised track vectors).")
@click.option("--model", "model_name", default=None, help="Registered model (default: the active one).")
@click.option("--parquet/--no-parquet", default=None,
              help="Also write OUT.parquet (default: when pyarrow is installed).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def export(app: AppContext, out, level, model_name, parquet, as_json) -> None:
    """Write OUT.npy (float32 vectors) + OUT.json (ids, paths, names per row) [+ OUT.parquet].

    The files are what `artdb evaluate --embeddings` reads.
    """
    from artdb.core.vectors.export import export_vectors

    summary = export_vectors(app.catalog(), app.paths, out, level=level, model_name=model_name,
                             parquet=parquet)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['count']} {level} vectors ({summary['dim']}-d, model {summary['model']}) -> "
               + ", ".join(summary["files"]))
