"""``artdb demo``."""

from __future__ import annotations

import shlex

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app
from artdb.core.reporting.demo_config import DemoConfig

_D = DemoConfig()


@click.command()
@click.option("--artists", default=_D.artists, show_default=True)
@click.option("--albums-per-artist", default=_D.albums_per_artist, show_default=True)
@click.option("--tracks-per-album", default=_D.tracks_per_album, show_default=True)
@click.option("--seconds", default=_D.seconds, show_default=True,
              help="Track length of the synthetic catalog.")
@click.option("--homonym-groups", default=_D.homonym_groups, show_default=True)
@click.option("--synonym-pairs", default=_D.synonym_pairs, show_default=True)
@click.option("--train-steps", default=_D.train_steps, show_default=True,
              help="Also train the log-mel CNN from scratch (artdb train --backbone none) for this many "
                   "steps and compare it (0: skip it; 300 adds a few minutes).")
@click.option("--seed", default=_D.seed, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--no-progress", is_flag=True)
@pass_app
@handle_errors
def demo(app: AppContext, artists, albums_per_artist, tracks_per_album, seconds, homonym_groups,
         synonym_pairs, train_steps, seed, as_json, no_progress) -> None:
    """Run the whole job on a synthetic catalog and compare the findings with what was planted.

    Works in its own folder, <data dir>/demo (its own SQLite catalog), recreated on each run:
    synthesize, index, audit with the MFCC baseline, train, audit, find synonyms, write
    <data dir>/demo/report.html. Nothing is downloaded.
    """
    from artdb.cli.progress import progress_bar, stderr_console
    from artdb.core.reporting.demo import run_demo

    cfg = DemoConfig(artists=artists, albums_per_artist=albums_per_artist,
                     tracks_per_album=tracks_per_album, seconds=seconds,
                     homonym_groups=homonym_groups, synonym_pairs=synonym_pairs,
                     train_steps=train_steps, seed=seed)
    home = app.paths.home / "demo"
    with progress_bar(not no_progress) as bar:
        result = run_demo(home, cfg, progress=bar,
                          log=None if as_json else (lambda m: stderr_console.print(m)))
    if as_json:
        emit_json(result.to_dict())
        return
    echo = click.echo
    echo("")
    echo("Planted homonym pages (several true artists under one name): proposed split vs truth")
    echo("  (ARI: 1 = the proposed clusters are exactly the true artists, 0 = no better than chance;"
         " '-' = page not flagged)")
    with_cnn = "cnn-scratch" in result.systems
    cnn_head = f"{'CNN clusters':>12} {'ARI':>6} | " if with_cnn else ""
    echo(f"  {'page':<28} {'artists':>7} {'albums':>6} | {'default clusters':>16} {'ARI':>6} | "
         f"{cnn_head}{'MFCC clusters':>13} {'ARI':>6}")

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"
    for p in result.homonym_pages:
        cnn = (f"{fmt(p.get('cnn_clusters'), '>12')} {fmt(p.get('cnn_ari'), '>6.2f')} | "
               if with_cnn else "")
        echo(f"  {p['page'][:28]:<28} {p['true_artists']:>7} {p.get('albums', 0):>6} | "
             f"{fmt(p['found_clusters'], '>16')} {fmt(p['ari'], '>6.2f')} | {cnn}"
             f"{fmt(p['mfcc_clusters'], '>13')} {fmt(p['mfcc_ari'], '>6.2f')}")
    echo("")
    echo("Planted synonym pairs (one artist under two names): rank among the synonym candidates "
         "listed (above the cut calibrated on the catalog; '-' = not listed)")
    for s in result.synonym_pairs:
        if s["same_page"]:
            echo(f"  {s['names'][0]!r} / {s['names'][1]!r} ({s['kind']}): one page already "
                 "(the names fold to one catalog key at ingest)")
            continue
        echo(f"  {s['names'][0]!r} / {s['names'][1]!r} ({s['kind']}): default rank {s['rank'] or '-'}, "
             f"MFCC rank {s['mfcc_rank'] or '-'}")
    echo("")
    for name, sysres in result.systems.items():
        ari = sysres["mean_ari_planted_pages"]
        echo(f"{name:<14} mean ARI on planted pages {fmt(ari, '.3f')} | planted pages flagged "
             f"{sysres['planted_pages_flagged']}/{sysres['planted_pages']} | other pages flagged "
             f"{len(sysres['false_alarms'])} | synonym pairs in top 10: {sysres['synonym_recall_top10']:.0%}")
    echo(f"\nreport: {result.report}")
    # the demo's catalog is its own data dir: say how to point the curator's commands at it
    home_arg = shlex.quote(result.home)
    echo(f"explore the demo's catalog (its own data dir): artdb --home {home_arg} review | "
         f"ls | show PAGE | synonyms | split PAGE --dry-run")
    echo("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items()))
