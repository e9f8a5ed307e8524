"""``artdb train``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.option("--method", type=click.Choice(["cl", "ml", "joint"]), default="ml", show_default=True,
              help="cl: softmax classifier baseline; ml: triplet loss; joint: both, weighted.")
@click.option("--mining", type=click.Choice(["semihard", "hard", "index"]), default="semihard",
              show_default=True, help="Triplet mining; 'index' draws negatives from nearest neighbours.")
@click.option("--hard-after", type=float, default=None,
              help="Switch from semi-hard to hard mining after this share of the steps.")
@click.option("--side-info", type=click.Choice(["none", "genre", "album", "both"]), default="both",
              show_default=True, help="Positives from other albums and/or negatives from the same genre.")
@click.option("--p-same-genre", type=float, default=0.5, show_default=True)
@click.option("--p-other-album", type=float, default=0.8, show_default=True)
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--epochs", type=float, default=None, help="Overrides --steps.")
@click.option("--dim", "embedding_dim", type=int, default=128, show_default=True)
@click.option("--artists-per-batch", type=int, default=16, show_default=True)
@click.option("--per-artist", type=int, default=4, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--margin", type=float, default=0.2, show_default=True)
@click.option("--cl-weight", type=float, default=1.0, show_default=True, help="joint: weight of CE.")
@click.option("--stats-weight", type=float, default=0.5, show_default=True,
              help="Share of the hybrid vector given to the standardised MFCC statistics "
                   "(0: the CNN embedding alone).")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="Share of artists held out for validation (split by artist, never by track).")
@click.option("--val-every", type=int, default=100, show_default=True)
@click.option("--patience", type=int, default=5, show_default=True)
@click.option("--exclude-pages", multiple=True, help="Artist page names to keep out of training (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--name", default=None, help="Registry name (default: method-mining-timestamp).")
@click.option("--no-activate", is_flag=True, help="Register without activating or embedding.")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@click.option("--no-progress", is_flag=True)
@pass_app
@handle_errors
def train(app: AppContext, method, mining, hard_after, side_info, p_same_genre, p_other_album, steps,
          epochs, embedding_dim, artists_per_batch, per_artist, lr, margin, cl_weight, stats_weight, val_fraction,
          val_every, patience, exclude_pages, seed, device, name, no_activate, as_json, no_progress) -> None:
    """Train an artist embedding on the catalog (artist pages as labels) and register it.

    Validation holds out whole artists; the model kept is the one whose held-out artists' albums
    cluster best (mean adjusted Rand index of artificial homonym groups).
    """
    import torch

    from artdb.cli.progress import progress_bar, stderr_console
    from artdb.core.learn.catalog import train_from_catalog
    from artdb.core.learn.training import TrainConfig

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig(
        method=method, mining=mining, hard_after=hard_after,
        p_same_genre=p_same_genre if side_info in ("genre", "both") else 0.0,
        p_other_album=p_other_album if side_info in ("album", "both") else 0.0,
        same_genre_share=0.5 if side_info in ("genre", "both") else 0.0,
        steps=steps, epochs=epochs, embedding_dim=embedding_dim, artists_per_batch=artists_per_batch,
        per_artist=per_artist, lr=lr, margin=margin, cl_weight=cl_weight, stats_weight=stats_weight,
        val_fraction=val_fraction,
        val_every=val_every, patience=patience, seed=seed, device=device,
    )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    state = {"loss": float("nan"), "active": None, "val": None}
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=stderr_console,
                  disable=no_progress) as bar, progress_bar(not no_progress) as embed_bar:
        task = bar.add_task("train", total=steps, info="")

        def on_event(ev: dict) -> None:
            if "loss" in ev:
                state["loss"] = ev["loss"]
            if ev.get("active_fraction") is not None:
                state["active"] = ev["active_fraction"]
            if ev.get("event") == "val":
                state["val"] = ev.get("val_ari")
            if "total_steps" in ev:
                bar.update(task, total=ev["total_steps"])
            info = f"loss {state['loss']:.4f}"
            if state["active"] is not None:
                info += f"  active {state['active']:.2f}"
            if state["val"] is not None:
                info += f"  val ARI {state['val']:.3f}"
            bar.update(task, completed=ev.get("step", 0), info=info)

        model, result = train_from_catalog(app.catalog(), app.paths, config, name=name,
                                           exclude_pages=exclude_pages, activate=not no_activate,
                                           progress=on_event, embed_progress=embed_bar)
    out = {"model": model.name, "active": not no_activate, "checkpoint": model.checkpoint_path,
           **result.summary()}
    if as_json:
        emit_json(out)
        return
    click.echo(f"model {model.name}: {result.status} after {result.steps} steps ({result.message})")
    click.echo(f"validation ARI {result.initial_val_ari:.3f} (untrained) -> {result.best_val_ari:.3f} "
               f"(best, step {result.best_step}); audit threshold {result.threshold:.3f}")
