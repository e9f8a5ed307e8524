"""``artdb evaluate``: the paper's protocol, every system side by side on identical splits."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


def _ints(text: str | None):
    return None if not text else tuple(int(x) for x in text.replace(" ", "").split(",") if x)


@click.command()
@click.option("--catalog", "catalog_dir", type=click.Path(exists=True, file_okay=False),
              help="Labelled catalog folder (tags and/or manifest.csv; synth's truth.json is used when "
                   "present). Ingested into a private data dir, never into yours.")
@click.option("--from-db", is_flag=True, help="Evaluate on the current catalog (--home/--db); its artist "
              "pages are trusted as truth.")
@click.option("--synth", "synth_artists", type=int, default=None,
              help="Generate a synthetic catalog with this many artists (in --workdir) and evaluate on it.")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Keep the private data dir here and reuse it on the next run (default: temporary).")
@click.option("--model", "models", multiple=True,
              help="Score this registered model (repeatable) on a catalog whose artists it never saw; "
                   "trains nothing.")
@click.option("--embeddings", "embeddings", multiple=True, metavar="[NAME=]FILE",
              help="Score an outside system's vectors (.npy+.json, .npz, .csv, .jsonl; keyed by track "
                   "path or id). Repeatable.")
@click.option("--peer", type=click.Choice(["musicnn"]), default=None, help="Add a pretrained peer.")
@click.option("--peer-python", type=click.Path(dir_okay=False),
              help="Python of the peer's venv (bench/peers/musicnn_setup.sh).")
@click.option("--peer-file", type=click.Path(dir_okay=False),
              help="Reuse (or write) the peer's embeddings file here.")
@click.option("--systems", default=None,
              help="Comma-separated systems (default: every built-in one: mfcc, stats, untrained, cl, ml, "
                   "ml-genre, ml-index, joint, ml-hybrid, cnn-hybrid, musicnn-torch, backbone-head, "
                   "artdb-default, random, production; with --model: mfcc, random, production).")
@click.option("--backbone-patches", type=int, default=None,
              help="3-s backbone patches per track for the musicnn systems (default: BackboneConfig's, "
                   "20); varies the seconds of audio per track. Computed only when a system reads them.")
@click.option("--device", default=None, help="Where backbone features are computed: cpu or cuda "
              "(default: cuda when available).")
@click.option("--unit", type=click.Choice(["album", "track", "both"]), default="both", show_default=True,
              help="Cluster albums (the paper), tracks (single-album artists), or report both.")
@click.option("--experiments", default="balanced,unbalanced", show_default=True)
@click.option("--sizes", default=None,
              help="Balanced training sizes, e.g. 25,50,100 (default: the paper's that fit).")
@click.option("--steps", type=int, default=None, help="Training steps per trained system (budget).")
@click.option("--seeds", "n_seeds", type=int, default=None, help="Number of seeds (budget).")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--tracks-per-artist", type=int, default=None, help="Balanced: tracks per training artist.")
@click.option("--test-fraction", type=float, default=0.4, show_default=True)
@click.option("--group-draws", type=int, default=None,
              help="Independent partitions of the test artists into groups.")
@click.option("--quick", is_flag=True,
              help="A few-minute run: 1 seed, 60 steps, 2 group draws, 2 excerpts per test track.")
@click.option("--out", "out_prefix", default="artdb-evaluation", show_default=True,
              help="Output prefix: PREFIX.json, PREFIX.md, PREFIX.png.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Decoding processes for ingest (0: all in this process).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary rows as JSON.")
@click.option("--evidence", type=click.Choice(["audio", "metadata", "both"]), default="both",
              show_default=True,
              help="Beside each system's audio-only row, a row with the albums' metadata fused "
                   "(random and same-genre groups; same groups and folds). audio: none.")
@click.option("--no-progress", is_flag=True)
@pass_app
@handle_errors
def evaluate(app: AppContext, catalog_dir, from_db, synth_artists, workdir, models, embeddings, peer,
             peer_python, peer_file, systems, backbone_patches, device, unit, experiments, sizes, steps,
             n_seeds, seed, tracks_per_artist, test_fraction, group_draws, quick, out_prefix, workers,
             as_json, evidence, no_progress) -> None:
    """Evaluate artist embeddings as Royo-Letelier et al. (ISMIR 2018) did.

    Test artists (never trained on) are put in homonym groups of 2-4; each group's albums (or
    tracks) are clustered agglomeratively with a threshold chosen by 5-fold cross-validation over
    groups; the score is the mean adjusted Rand index. Writes PREFIX.json, a Markdown table shaped
    like the paper's Tables 1 and 2, and a plot of ARI against the number of training artists.
    """
    from pathlib import Path

    from artdb.cli.progress import stderr_console
    from artdb.core.evaluation.runner import EvalConfig
    from artdb.core.evaluation.service import evaluate as run, synth_catalog
    from artdb.core.learn.config import pick_device

    if sum(x is not None and x is not False for x in (catalog_dir, synth_artists, from_db or None)) != 1:
        raise click.UsageError("give one of --catalog DIR, --synth N or --from-db")
    if synth_artists is not None:
        if workdir is None:
            raise click.UsageError("--synth needs --workdir (the catalog is generated there)")
        catalog_dir = synth_catalog(Path(workdir) / "synth-catalog", synth_artists, seed=seed, quick=quick)
    ext = []
    for item in embeddings:
        name, _, path = item.rpartition("=")
        ext.append((name or Path(path).stem, path))
    cfg = EvalConfig.preset(
        quick=quick, seed=seed, n_seeds=n_seeds, steps=steps, group_draws=group_draws,
        systems=tuple(s for s in systems.split(",") if s) if systems else None, models=tuple(models),
        unit=unit, embeddings=tuple(ext), experiments=tuple(e for e in experiments.split(",") if e),
        sizes=_ints(sizes), test_fraction=test_fraction, tracks_per_artist=tracks_per_artist,
        backbone_patches=backbone_patches, evidence=evidence)

    def on_progress(stage: str, done: int, total: int | None = None, event: str | None = None, **ev) -> None:
        if no_progress or stage != "evaluate":  # the private ingest's stages are not shown
            return
        if event == "train":
            stderr_console.print(f"seed {ev['seed']}: training {ev['system']} "
                                 f"({ev['experiment']}, {ev['n_train_artists']} artists)")
        elif event == "scored":
            parts = ", ".join(f"{k} {v:.3f}" for k, v in ev["ari"].items() if v is not None)
            stderr_console.print(f"  {ev['system']}: {parts}")
        elif event == "dataset":
            stderr_console.print(f"dataset: {ev['artists']} artists, {ev['albums']} albums, "
                                 f"{ev['tracks']} tracks (truth: {ev['truth']})")
        elif event == "split":
            stderr_console.print(f"seed {ev['seed']}: {ev['n_test_artists']} test artists, "
                                 f"{ev['n_train_pool_artists']} in the training pool")
        elif event == "peer":
            stderr_console.print(f"running peer {ev['peer']} on {ev['tracks']} tracks")

    # a scored model's checkpoint lies in this home (--home), not necessarily the default one
    mine = from_db or models
    report = run(cfg, catalog_dir=catalog_dir, user_catalog=app.catalog() if mine else None,
                 user_paths=app.paths if mine else None, from_db=from_db, workdir=workdir, peer=peer,
                 peer_python=peer_python, peer_file=peer_file, out_prefix=out_prefix, workers=workers,
                 device=pick_device(device), progress=on_progress)
    if as_json:
        emit_json({"files": report.get("files"), "summary": report["summary"]})
        return
    from artdb.core.evaluation.report import markdown

    click.echo(markdown(report))
    click.echo("wrote " + ", ".join(report.get("files", {}).values()))
