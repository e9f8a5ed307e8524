"""``artdb train``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app
from artdb.core.learn.config import DEFAULT_SIDE_INFO, MININGS, SIDE_INFO, TrainConfig

_D = TrainConfig()
# The backbone defaults, read without importing torch (cli stays fast for --help).
BACKBONES = ("musicnn", "none")
LEAVE_OUT = ("flagged", "flagged+tags", "none")  # core.learn.catalog.LEAVE_OUT, without its imports
DEFAULT_BACKBONE = "musicnn"


@click.command()
@click.option("--backbone", type=click.Choice(BACKBONES), default=DEFAULT_BACKBONE, show_default=True,
              help="musicnn: vectors from the pretrained musicnn (its features computed once per track "
                   "and stored), standardised on the catalog and whitened within its artists, with a small "
                   "metric head whose share is "
                   "chosen on held-out artists (docs/training.md). none: the CNN on log-mels, trained "
                   "from scratch (the options below).")
@click.option("--backbone-patches", type=int, default=None,
              help="musicnn: 3-s patches per track (default 20: 60 s spread over the track).")
@click.option("--head-steps", type=int, default=None,
              help="musicnn: training steps of the head (default 300).")
@click.option("--genre-damping", type=click.FloatRange(0.0, 1.0), default=None,
              help="musicnn: share by which the directions between the catalog's genres (album tags) "
                   "are shrunk after the whitening (default 0.5; 0: off, e.g. when the tags are "
                   "unreliable; docs/training.md).")
@click.option("--method", type=click.Choice(["cl", "ml", "joint"]), default=_D.method, show_default=True,
              help="cl: softmax classifier baseline; ml: triplet loss; joint: both, weighted.")
@click.option("--mining", type=click.Choice(MININGS), default=_D.mining,
              show_default=True, help="Triplet mining; 'index' draws negatives from nearest neighbours.")
@click.option("--hard-after", type=float, default=_D.hard_after,
              help="Switch from semi-hard to hard mining after this share of the steps.")
@click.option("--side-info", type=click.Choice(SIDE_INFO), default=DEFAULT_SIDE_INFO,
              show_default=True, help="Positives from other albums and/or negatives from the same genre.")
@click.option("--p-same-genre", type=float, default=_D.p_same_genre, show_default=True)
@click.option("--p-other-album", type=float, default=_D.p_other_album, show_default=True)
@click.option("--steps", type=int, default=_D.steps, show_default=True)
@click.option("--epochs", type=float, default=_D.epochs, help="Overrides --steps.")
@click.option("--dim", "embedding_dim", type=int, default=_D.embedding_dim, show_default=True)
@click.option("--artists-per-batch", type=int, default=_D.artists_per_batch, show_default=True)
@click.option("--per-artist", type=int, default=_D.per_artist, show_default=True)
@click.option("--lr", type=float, default=_D.lr, show_default=True)
@click.option("--margin", type=float, default=_D.margin, show_default=True)
@click.option("--cl-weight", type=float, default=_D.cl_weight, show_default=True, help="joint: weight of CE.")
@click.option("--stats-weight", type=float, default=_D.stats_weight, show_default=True,
              help="Share of the hybrid vector given to the standardised MFCC statistics "
                   "(0: the CNN embedding alone).")
@click.option("--val-fraction", type=float, default=_D.val_fraction, show_default=True,
              help="Share of artists held out for validation (split by artist, never by track).")
@click.option("--val-every", type=int, default=_D.val_every, show_default=True)
@click.option("--patience", type=int, default=_D.patience, show_default=True)
@click.option("--exclude-pages", multiple=True,
              help="Artist page names to keep out of training (repeatable).")
@click.option("--leave-out", type=click.Choice(LEAVE_OUT), default="flagged", show_default=True,
              help="Pages not learnt from as one artist. flagged: those with an open homonym "
                   "finding (until a curator splits or rejects it); flagged+tags: also those whose "
                   "albums' tags look like several artists (the metadata fusion of artdb audit, "
                   "fitted on the catalog; measured in docs/audit.md); none: every page.")
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--name", default=None, help="Registry name (default: method-mining-timestamp).")
@click.option("--no-activate", is_flag=True, help="Register without activating or embedding.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@click.option("--no-progress", is_flag=True)
@pass_app
@handle_errors
def train(app: AppContext, backbone, backbone_patches, head_steps, genre_damping, method, mining, hard_after,
          side_info, p_same_genre, p_other_album, steps, epochs, embedding_dim, artists_per_batch, per_artist,
          lr, margin, cl_weight, stats_weight, val_fraction,
          val_every, patience, exclude_pages, leave_out, seed, device, name, no_activate, as_json,
          no_progress) -> None:
    """Train an artist embedding on the catalog (artist pages as labels) and register it.

    Validation holds out whole artists; the model kept is the one whose held-out artists' albums
    cluster best (mean adjusted Rand index of artificial homonym groups).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from artdb.cli.progress import progress_bar, stderr_console
    from artdb.core.learn.catalog import train_from_catalog
    from artdb.core.learn.config import pick_device

    if backbone != "none":
        _train_backbone(app, backbone, backbone_patches, head_steps, genre_damping, seed, pick_device(device),
                        name, exclude_pages, leave_out, no_activate, as_json, no_progress)
        return
    config = TrainConfig.from_side_info(
        side_info, method=method, mining=mining, hard_after=hard_after, p_same_genre=p_same_genre,
        p_other_album=p_other_album, steps=steps, epochs=epochs, embedding_dim=embedding_dim,
        artists_per_batch=artists_per_batch, per_artist=per_artist, lr=lr, margin=margin,
        cl_weight=cl_weight, stats_weight=stats_weight, val_fraction=val_fraction, val_every=val_every,
        patience=patience, seed=seed, device=pick_device(device),
    )
    state = {"loss": float("nan"), "active": None, "val": None}
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=stderr_console,
                  disable=no_progress) as bar, progress_bar(not no_progress) as embed_bar:
        task = bar.add_task("train", total=steps, info="")

        def on_progress(stage: str, done: int, total: int | None = None, **ev) -> None:
            if stage != "train":  # embedding the catalog with the new model
                embed_bar(stage, done, total)
                return
            if "loss" in ev:
                state["loss"] = ev["loss"]
            if ev.get("active_fraction") is not None:
                state["active"] = ev["active_fraction"]
            if ev.get("event") == "val":
                state["val"] = ev.get("val_ari")
            info = f"loss {state['loss']:.4f}"
            if state["active"] is not None:
                info += f"  active {state['active']:.2f}"
            if state["val"] is not None:
                info += f"  val ARI {state['val']:.3f}"
            bar.update(task, completed=done, total=total, info=info)

        model, result = train_from_catalog(app.catalog(), app.paths, config, name=name,
                                           exclude_pages=exclude_pages, activate=not no_activate,
                                           progress=on_progress, leave_out=leave_out)
    out = {"model": model.name, "active": not no_activate, "checkpoint": model.checkpoint_path,
           **result.summary(), "suspect_pages": model.config.get("suspect_pages", {})}
    if as_json:
        emit_json(out)
        return
    click.echo(f"model {model.name}: {result.status} after {result.steps} steps ({result.message})")
    click.echo(f"validation ARI {result.initial_val_ari:.3f} (untrained) -> {result.best_val_ari:.3f} "
               f"(best, step {result.best_step}); audit threshold {result.threshold:.3f}")
    if result.notes:  # what a small catalog changed (artdb.core.learn.loop.fit_to_catalog)
        click.echo("fitted to a small catalog: " + "; ".join(result.notes))
    _echo_suspects(model)


def _echo_suspects(model) -> None:
    suspects = (model.config or {}).get("suspect_pages") or {}
    if suspects:
        click.echo(f"{len(suspects)} page(s) left out of training as likely homonyms "
                   "(--leave-out none learns from them):")
        for page, why in sorted(suspects.items()):
            click.echo(f"  {page}: {why}")


def _train_backbone(app: AppContext, backbone, patches, head_steps, genre_damping, seed, device, name,
                    exclude_pages, leave_out, no_activate, as_json, no_progress) -> None:
    from artdb.cli.progress import progress_bar
    from artdb.core.features.backbone import BackboneConfig
    from artdb.core.learn.backbone import HeadConfig
    from artdb.core.learn.catalog import train_backbone_from_catalog

    bcfg = BackboneConfig(name=backbone, **({"patches_per_track": patches} if patches else {}))
    hcfg = HeadConfig(seed=seed, **({"steps": head_steps} if head_steps is not None else {}),
                      **({"genre_damping": genre_damping} if genre_damping is not None else {}))
    with progress_bar(not no_progress) as bar:
        model, result = train_backbone_from_catalog(
            app.catalog(), app.paths, bcfg, hcfg, name=name, exclude_pages=exclude_pages,
            activate=not no_activate, workers=2, device=device, progress=bar, leave_out=leave_out)
    out = {"model": model.name, "active": not no_activate, "checkpoint": model.checkpoint_path,
           "backbone": bcfg.to_dict(), **result.summary(),
           "suspect_pages": model.config.get("suspect_pages", {})}
    if as_json:
        emit_json(out)
        return
    shares = ", ".join(f"w={w}: {a:.3f}" for w, a in result.val_ari.items()) or "no validation groups"
    click.echo(f"model {model.name}: {backbone} backbone, {result.train_artists} training artists, "
               f"{len(result.val_artists)} held out")
    click.echo(f"held-out ARI by head share ({shares}); chosen share {result.model.head_weight}; "
               f"audit threshold {_threshold_words(result)}")
    if result.genre_directions:
        click.echo(f"genre tags: {result.genre_directions} direction(s) between genres damped by "
                   f"{hcfg.genre_damping} after the whitening")
    for note in result.notes:
        click.echo(note)
    _echo_suspects(model)


def _threshold_words(result) -> str:
    if result.threshold is None:
        return "recalibrated"
    splits = "s" if result.threshold_splits != 1 else ""
    return (f"{result.threshold:.3f} (fitted on {result.threshold_groups} validation groups from "
            f"{result.threshold_splits} held-out split{splits})")
