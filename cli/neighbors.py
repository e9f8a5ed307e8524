"""``artdb neighbors QUERY``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app


@click.command()
@click.argument("query", required=False)
@click.option("--level", type=click.Choice(["track", "album", "artist"]), default="track",
              show_default=True, help="What QUERY names and what to return.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many neighbours.")
@click.option("--exclude-same-page", is_flag=True, help="Skip results credited to the query's page.")
@click.option("--model", "model_name", default=None, help="Model (default: the active one).")
@click.option("--synonyms", is_flag=True, hidden=True,
              help="Moved: `artdb synonyms` searches for synonym candidates.")
@click.option("--top", type=int, default=None, hidden=True,
              help="Went with --synonyms (kept so that the old spelling gets the pointer).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@handle_errors
def neighbors(app: AppContext, query: str | None, level: str, k: int, exclude_same_page: bool,
              model_name: str | None, synonyms: bool, top: int | None, as_json: bool) -> None:
    """Nearest tracks, albums or artist pages to QUERY.

    QUERY is a track id or audio path (--level track), an album id or title ("Artist - Title")
    (--level album), or an artist page id or name (--level artist).
    """
    if synonyms:  # read-only now: the search that stores candidates has its own command
        raise click.UsageError("the synonym search is `artdb synonyms` (and `artdb review` lists "
                               "its candidates); `neighbors` only reads the index")
    from artdb.core.learn.registry import active_model, get_model

    catalog = app.catalog()
    model = get_model(catalog, model_name) if model_name else active_model(catalog)
    if model is None:
        raise click.ClickException(
            "no active model: train one (artdb train) or activate one (artdb models activate)")
    if not query:
        raise click.UsageError("QUERY is required (a track, album or artist page)")
    from artdb.core.vectors.neighbors import nearest

    q, results = nearest(catalog, app.paths, model, query, level=level, k=k,
                         exclude_same_page=exclude_same_page)
    if as_json:
        emit_json({"query": q, "neighbors": [r.to_dict() for r in results]})
        return
    click.echo(f"nearest {level}s to {q['name']!r} ({q['page']}) — model {q['model']}")
    click.echo(f"{'#':>3} {'score':>6}  {'id':>7}  {'name':<32} {'album':<28} page")
    for i, r in enumerate(results, 1):
        click.echo(f"{i:>3} {r.score:6.3f}  {r.id:>7}  {r.name[:32]:<32} {(r.album or '')[:28]:<28} "
                   f"{r.page or ''}")
