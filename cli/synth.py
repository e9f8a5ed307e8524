"""``artdb synth``: write a synthetic catalog with planted homonyms and synonyms."""

from __future__ import annotations

import click

from artdb.cli.context import emit_json, handle_errors
from artdb.core.synth.config import SynthConfig

_D = SynthConfig()


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--artists", default=_D.artists, show_default=True, help="True artists.")
@click.option("--albums-per-artist", default=_D.albums_per_artist, show_default=True,
              help="Mean albums per artist (unbalanced; at least 2 each when the mean is >= 2).")
@click.option("--tracks-per-album", default=_D.tracks_per_album, show_default=True)
@click.option("--seconds", default=_D.seconds, show_default=True, help="Track length.")
@click.option("--genres", default=_D.genres, show_default=True)
@click.option("--homonym-groups", default=_D.homonym_groups, show_default=True,
              help="Pages that mix 2-4 true artists.")
@click.option("--synonym-pairs", default=_D.synonym_pairs, show_default=True,
              help="Artists delivered under two names.")
@click.option("--difficulty", default=_D.difficulty, show_default=True,
              help="0 (easy) .. 1 (hard); see docs/synth.md.")
@click.option("--seed", default=_D.seed, show_default=True)
@click.option("--homonym-shared-label", default=_D.homonym_shared_label, show_default=True,
              help="Chance a homonym shares a label with an earlier namesake.")
@click.option("--label-change", default=_D.label_change, show_default=True,
              help="Chance an artist changes label before each later album.")
@click.option("--reissue-fraction", default=_D.reissue_fraction, show_default=True,
              help="Albums tagged with a later (reissue) year.")
@click.option("--missing-metadata", default=_D.missing_metadata, show_default=True,
              help="Chance each of label, date, ISRC is left out of an album's tags.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Processes (default: 2 for big catalogs).")
@click.option("--force", is_flag=True, help="Write into a non-empty OUT.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@handle_errors
def synth(out, artists, albums_per_artist, tracks_per_album, seconds, genres, homonym_groups,
          synonym_pairs, difficulty, seed, homonym_shared_label, label_change, reissue_fraction,
          missing_metadata, workers, force, as_json):
    """Write a synthetic music catalog to OUT, with its answer key OUT/truth.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from artdb.core.synth import generate_catalog

    config = SynthConfig(
        artists=artists, albums_per_artist=albums_per_artist, tracks_per_album=tracks_per_album,
        seconds=seconds, genres=genres, homonym_groups=homonym_groups,
        synonym_pairs=synonym_pairs, difficulty=difficulty, seed=seed, workers=workers,
        homonym_shared_label=homonym_shared_label, label_change=label_change,
        reissue_fraction=reissue_fraction, missing_metadata=missing_metadata,
    )
    from artdb.cli.progress import stderr_console

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, disable=as_json,
                  console=stderr_console) as bar:
        task = bar.add_task("synthesizing", total=None)

        def progress(stage: str, done: int, total: int | None = None, **info) -> None:
            bar.update(task, completed=done, total=total)

        truth = generate_catalog(out, config, progress=progress, overwrite=force)
    summary = {
        "out": str(out),
        "artists": len(truth.artists),
        "pages": len({a.page_name for a in truth.albums}),
        "albums": len(truth.albums),
        "tracks": len(truth.tracks),
        "audio_seconds": round(sum(t.duration for t in truth.tracks), 1),
        "homonym_groups": len(truth.homonym_groups),
        "synonym_pairs": len(truth.synonym_pairs),
        "genres": truth.genres,
        "seed": truth.seed,
    }
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"{summary['tracks']} tracks ({summary['audio_seconds'] / 60:.1f} min) in "
            f"{summary['albums']} albums on {summary['pages']} pages by {summary['artists']} "
            f"artists; {summary['homonym_groups']} homonym pages, "
            f"{summary['synonym_pairs']} synonym pairs -> {out}/truth.json"
        )
