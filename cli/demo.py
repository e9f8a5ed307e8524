"""``artdb demo``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural
from artdb.core.curation.commands import CommandLine
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
    echo_demo(result.to_dict())


def echo_demo(result: dict) -> None:
    """The demo's outcome (``DemoResult.to_dict()``) in words: the planted pages and pairs, each
    system's summary, where the report is and the commands that explore the demo's catalog."""
    echo = click.echo
    echo("")
    echo("Planted homonym pages (several true artists under one name): proposed split vs truth")
    echo("  ARI (adjusted Rand index) compares the proposed clusters with the true artists: "
         "1 = exactly them, 0 = no better than chance.")
    echo("  'not flagged' = the audit kept the page whole; a flagged page whose clusters are not "
         "exactly the true artists is a 'wrong split', with its ARI.")
    with_cnn = "cnn-scratch" in result["systems"]
    systems = [("default", ""), *((("CNN", "cnn_"),) if with_cnn else ()), ("MFCC", "mfcc_")]
    echo(f"  {'page':<28} {'artists':>7} {'albums':>6} | "
         + " | ".join(f"{name:<35}" for name, _ in systems))

    def cell(p: dict, prefix: str) -> str:
        clusters = p.get("found_clusters" if not prefix else f"{prefix}clusters")
        ari = p.get("ari" if not prefix else f"{prefix}ari")
        what = p.get("verdict" if not prefix else f"{prefix}verdict") or "not flagged"
        if what == "not flagged":
            return f"{what:<35}"
        return f"{what}, {plural(clusters or 0, 'cluster')}, ARI {ari:.2f}"[:35].ljust(35)

    for p in result["homonym_pages"]:
        echo(f"  {p['page'][:28]:<28} {p['true_artists']:>7} {p.get('albums', 0):>6} | "
             + " | ".join(cell(p, prefix) for _, prefix in systems))
    echo("")
    echo("Planted synonym pairs (one artist under two names): rank among the synonym candidates "
         "listed (above the cut calibrated on the catalog; '-' = not listed)")
    for s in result["synonym_pairs"]:
        if s["same_page"]:
            echo(f"  {s['names'][0]!r} / {s['names'][1]!r} ({s['kind']}): one page already "
                 "(the names fold to one catalog key at ingest)")
            continue
        echo(f"  {s['names'][0]!r} / {s['names'][1]!r} ({s['kind']}): default rank {s['rank'] or '-'}, "
             f"MFCC rank {s['mfcc_rank'] or '-'}")
    echo("")
    for name, sysres in result["systems"].items():
        ari = sysres["mean_ari_planted_pages"]
        n = sysres["planted_pages"]
        flagged = sysres["planted_pages_flagged"]
        echo(f"{name:<14} planted pages: {sysres.get('planted_pages_exact', 0)} exact split, "
             f"{sysres.get('planted_pages_wrong_split', 0)} wrong split, {n - flagged} not flagged "
             f"(mean ARI {'-' if ari is None else format(ari, '.3f')}) | other pages flagged: "
             f"{len(sysres['false_alarms'])} | planted synonym pairs in the top 10: "
             f"{sysres['synonym_recall_top10']:.0%}")
    echo(f"\nreport (open it in a browser; it plays the excerpts offline): {result['report']}")
    # the demo's catalog is its own data dir: say how to point the curator's commands at it
    cmd = CommandLine(home=result["home"])
    echo("Explore the demo's catalog (its own data dir, so every command names it with --home):")
    for line in (cmd("review"), cmd("ls"), cmd("show", "PAGE"), cmd("split", "PAGE", "--dry-run"),
                 cmd("synonyms", "--top", "10"), cmd("report", "report.html")):
        echo(f"  {line}")
    echo("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in result["seconds"].items()))
