"""``artdb index PATH``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from artdb.cli.progress import progress_bar


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False),
              help="CSV or JSONL with a 'path' column (relative to PATH) supplying/overriding tags.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Worker processes for analysis and features (0: all in this process).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Files per DB transaction.")
@click.option("--prune", is_flag=True, help="Delete tracks under PATH whose files are gone.")
@click.option("--features/--no-features", default=True, show_default=True,
              help="Extract log-mel features into the feature store during ingest.")
@click.option("--backbone", type=click.Choice(["auto", "musicnn", "none"]), default="auto",
              show_default=True,
              help="Also compute a pretrained backbone's patch features (musicnn, ~34 KB per track) "
                   "into their own store. auto: when the active model reads them; musicnn: always "
                   "(the active model's settings if it uses musicnn, else the defaults); none: "
                   "never. Ignored with --no-features.")
@click.option("--device", default=None,
              help="Where the log-mels and backbone run: cpu or cuda (default: cuda when available; "
                   "with --executor dask, on each worker: cuda where that worker has it).")
@click.option("--executor", type=click.Choice(["process", "inline", "dask"]), default="process",
              show_default=True,
              help="Where analysis runs. dask: each worker analyses, decodes, extracts and embeds; "
                   "this process writes (needs the 'dist' extra; --rebuild-index embeds there too).")
@click.option("--scheduler", default=None,
              help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a local cluster of "
                   "--workers processes on 127.0.0.1).")
@click.option("--rebuild-index", is_flag=True,
              help="Re-embed the catalog with the active model and rewrite its index from scratch.")
@click.option("--place/--no-place", default=True, show_default=True,
              help="Place new releases under a name a split shared out among its pages by audio "
                   "(as artdb place --apply does), or flag them when none is close enough.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@pass_app
@handle_errors
def index(app: AppContext, path: str, manifest: str | None, workers: int, batch_size: int,
          prune: bool, features: bool, backbone: str, device: str | None, executor: str,
          scheduler: str | None, rebuild_index: bool, place: bool, as_json: bool,
          no_progress: bool) -> None:
    """Ingest the audio files under PATH into the catalog (idempotent; a rerun resumes).

    Tags (artist, albumartist, album, title, genre, date, ISRC, label, track/disc numbers) are read
    with mutagen; a manifest overrides them per file. Each bad file is recorded with its reason
    and listed at the end; it never stops the run.
    """
    from artdb.core.ingest import IngestOptions
    from artdb.core.ingest.service import index_catalog
    from artdb.core.learn.config import pick_device

    options = IngestOptions(manifest=manifest, workers=workers, batch_size=batch_size, prune=prune,
                            executor_backend=executor, scheduler_address=scheduler, worker_device=device)
    if rebuild_index:
        from artdb.core.ingest.service import rebuild_catalog_index

        with progress_bar(not no_progress) as bar:
            report = rebuild_catalog_index(app.catalog(), app.paths, options, device=pick_device(device),
                                           progress=bar)
        click.echo(f"rebuilt the index of {report.model}: {report.total} vectors", err=as_json)
    with progress_bar(not no_progress) as bar:
        summary = index_catalog(app.catalog(), app.paths, path, options, with_features=features,
                                device=pick_device(device), progress=bar, backbone=backbone,
                                place=place)
    if as_json:
        emit_json(summary.to_dict())
        return
    from artdb.core.reporting.stats import counts_in_words

    click.echo(f"ingest run #{summary.run_id}: {plural(summary.files, 'file')} in "
               f"{summary.seconds:.1f} s: {counts_in_words(summary.counts)}")
    decoded = summary.decoded_per_worker or {}
    for worker, n in sorted((summary.per_worker or {}).items()):
        click.echo(f"  worker {worker}: {plural(n, 'file')} analysed, {decoded.get(worker, 0)} decoded")
    for p, reason in summary.errors:
        click.echo(f"  error: {p}: {reason}")
    for p, other in summary.duplicates:
        click.echo(f"  duplicate: {p}: {other}")
    for p, warning in summary.warnings:
        click.echo(f"  warning: {p}: {warning}")
    from artdb.core.curation.commands import CommandLine

    cmd = CommandLine.for_catalog(str(app.paths.home), app.url)
    for p in summary.placements:
        where = f" -> {p.page}" if p.outcome == "placed" else ""
        act = (f" (decision #{p.decision_id}; {cmd('undo', str(p.decision_id))})" if p.decision_id
               else f" (finding {p.finding}: {cmd.show(p.landed_page)})" if p.finding else "")
        click.echo(f"  {p.outcome}: {p.landed_page} - {p.album}{where}: {p.reason}{act}")
