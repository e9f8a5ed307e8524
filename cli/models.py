"""``artdb models``: the model registry."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural


def _row(m) -> dict:
    return {"id": m.id, "name": m.name, "kind": m.kind, "dim": m.dim, "active": m.active,
            "version": m.version, "created_at": m.created_at, "checkpoint": m.checkpoint_path,
            "checksum": m.checksum, "metrics": m.metrics, "config": m.config}


@click.group()
def models() -> None:
    """List, inspect and activate embedding models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """Registered models (* = active)."""
    from artdb.core.learn.registry import list_models

    rows = list_models(app.catalog())
    if as_json:
        emit_json([{k: v for k, v in _row(m).items() if k != "config"} for m in rows])
        return
    for m in rows:
        ari = (m.metrics or {}).get("val_ari")
        extra = f"  val ARI {ari:.3f}" if isinstance(ari, (int, float)) else ""
        click.echo(f"{'*' if m.active else ' '} {m.id:>3} {m.name:<32} {m.kind:<9} d={m.dim}{extra}")


@models.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def show(app: AppContext, name: str, as_json: bool) -> None:
    """Everything recorded about model NAME (or id)."""
    from artdb.core.learn.registry import get_model

    row = _row(get_model(app.catalog(), name))
    if as_json:
        emit_json(row)
        return
    import json

    for key, value in row.items():
        if isinstance(value, dict):
            value = json.dumps(value, indent=2, default=str)
        click.echo(f"{key}: {value}")


@models.command()
@click.argument("name")
@click.option("--no-embed", is_flag=True, help="Do not embed the catalog with it now.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable result: the model and what embedding did.")
@pass_app
@handle_errors
def activate(app: AppContext, name: str, no_embed: bool, as_json: bool) -> None:
    """Make NAME the active model and embed the catalog with it."""
    from artdb.core.learn.registry import activate_model

    model = activate_model(app.catalog(), name)
    if not as_json:
        click.echo(f"active model: {model.name}")
    report = None if no_embed else _embed_catalog(app, model, quiet=as_json)
    if as_json:
        emit_json({"model": _brief(model), "active": True,
                   "embedding": report.to_dict() if report else None})


@models.command("add-baseline")
@click.argument("kind", type=click.Choice(["mfcc", "stats"]))
@click.option("--name", default=None, help="Registry name (default: the kind).")
@click.option("--activate", "make_active", is_flag=True,
              help="Also make it the active model and embed the catalog with it.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable result: the model and what embedding did.")
@pass_app
@handle_errors
def add_baseline(app: AppContext, kind: str, name: str | None, make_active: bool,
                 as_json: bool) -> None:
    """Register a no-learning baseline model.

    mfcc: MFCC mean+std from the stored log-mels (the paper's baseline). stats: MFCC and delta-MFCC
    mean+std, each dimension standardised with statistics fitted now on the catalog's features.
    """
    from artdb.core.learn.registry import register_mfcc_baseline, register_stats_baseline

    if kind == "stats":
        model = register_stats_baseline(app.catalog(), app.paths, name=name or kind, activate=make_active)
    else:
        model = register_mfcc_baseline(app.catalog(), name=name or kind, activate=make_active)
    if not as_json:
        click.echo(f"registered {model.name} (d={model.dim})"
                   f"{' and activated it' if make_active else ''}")
    report = _embed_catalog(app, model, quiet=as_json) if make_active else None
    if as_json:
        emit_json({"model": _brief(model), "active": make_active,
                   "embedding": report.to_dict() if report else None})


def _brief(m) -> dict:
    return {k: v for k, v in _row(m).items() if k in ("id", "name", "kind", "dim", "version")}


def _embed_catalog(app: AppContext, model, quiet: bool = False):
    """Embed every catalogued track with features into the (now active) model's index; the
    index's sync report. ``quiet``: the progress bar and the line go to stderr (stdout is JSON)."""
    from artdb.cli.progress import progress_bar
    from artdb.core.vectors.index import sync_model_index

    with progress_bar() as bar:
        report = sync_model_index(app.catalog(), app.paths, model, progress=bar)
    click.echo(f"embedded {plural(report.embedded, 'track')}; the index holds "
               f"{plural(report.total, 'vector')}", err=quiet)
    return report
