"""``artdb ls`` and ``artdb show``: browse the catalog (after beets' ``ls`` and ``info``)."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural


@click.command()
@click.argument("query", nargs=-1)
@click.option("-a", "--albums", "level", flag_value="albums", help="List albums.")
@click.option("-t", "--tracks", "level", flag_value="tracks", help="List tracks.")
@click.option("-p", "--pages", "level", flag_value="pages", default=True,
              help="List artist pages (the default).")
@click.option("-f", "--format", "fmt", default=None,
              help="A template for each line: $name, $title, $year, … (see --help's fields).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N lines.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@handle_errors
def ls(app: AppContext, query: tuple[str, ...], level: str, fmt: str | None, limit: int | None,
       as_json: bool) -> None:
    """List artist pages, albums (-a) or tracks (-t) matching QUERY.

    QUERY: words match names and titles; FIELD:VALUE matches one field (name, album, title, genre,
    label: case-insensitive substrings; year: 2001, 2001..2005, ..2005). Every term must match.

    \b
    Fields for -f: pages: $id $name $albums $tracks $first_year $last_year
                   albums: $id $title $name $page_id $year $label $genre $tracks $upc
                   tracks: $id $title $album $album_id $name $page_id $year $genre $label
                           $disc $track $duration $format $path
    Examples: artdb ls eclipse; artdb ls -a label:kite year:2000..2009;
              artdb ls -t -f '$name - $album - $title' genre:jazz
    """
    from artdb.core.reporting.browse import default_line, format_row, list_catalog

    rows = list_catalog(app.catalog(), level, list(query), limit=limit)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(format_row(fmt, row) if fmt else default_line(level, row))


@click.command()
@click.argument("ref")
@click.option("--album", "as_album", is_flag=True,
              help="REF is an album (an id or 'Artist - Title'); without it a page is tried first.")
@click.option("-k", "k", type=click.IntRange(min=0), default=5, show_default=True,
              help="Nearest pages (or albums) to show under the active model (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@handle_errors
def show(app: AppContext, ref: str, as_album: bool, k: int, as_json: bool) -> None:
    """Everything about one artist page or album.

    REF: a page id, name or label ('Eclipse', 'Eclipse [2]', 'Eclipse (Swedish band)'), or an album
    ('Artist - Title', or an id with --album). A page shows its albums (years, labels, track
    counts, the cluster an open finding puts each in), open findings and synonym candidates with
    the commands to act on them, the decisions that touched it and its nearest pages.
    """
    from artdb.core.curation.commands import CommandLine
    from artdb.core.reporting.browse import show as details

    d = details(app.catalog(), app.paths, ref, album=as_album, neighbours=k)
    if as_json:
        emit_json(d)
    elif d["kind"] == "page":
        _echo_page(d, CommandLine.for_catalog(str(app.paths.home), app.url))
    else:
        _echo_album(d)


def _echo_page(d: dict, cmd) -> None:
    echo = click.echo
    echo(f"{d['name']}  (page #{d['id']})")
    if d["merged_into"]:
        echo(f"  merged into {d['merged_into']['page']} (#{d['merged_into']['page_id']}): ingests "
             "under this name credit that page")
    if d["merged_from"]:
        echo("  also the page of: " + ", ".join(f"{m['page']} (#{m['page_id']})"
                                                for m in d["merged_from"]))
    extra = (f"; credited on {plural(d['credited_on_other_albums'], 'track')} of other pages' albums"
             if d["credited_on_other_albums"] else "")
    years = sorted(a["year"] for a in d["albums"] if a["year"])
    span = (f", {years[0]}" + (f"–{years[-1]}" if years[-1] != years[0] else "")) if years else ""
    echo(f"  {plural(len(d['albums']), 'album')}, {plural(d['tracks'], 'track')}{span}{extra}")
    for a in d["albums"]:
        cluster = f"  cluster {a['cluster']}" if a["cluster"] else ""
        echo(f"    #{a['id']:<6} {a['year'] or '----':<5} {a['title'][:40]:<40} "
             f"{(a['label'] or '')[:24]:<24} {plural(a['tracks'], 'track'):>10}{cluster}")
    if d["open_findings"]:
        echo("  open homonym findings:")
        for f in d["open_findings"]:
            replaces = f", replaces {f['replaces']}" if f["replaces"] else ""
            echo(f"    {f['ref']:<6} score {f['score']:.3f}, {f['n_clusters']} clusters{replaces}: "
                 f"{cmd.split(d['name'], f['ref'], dry_run=True)} | {cmd.reject(f['ref'])}")
    if d["synonym_candidates"]:
        echo("  synonym candidates:")
        for c in d["synonym_candidates"]:
            other = c["other_page"] or str(c["other_page_id"])
            echo(f"    {c['ref']:<6} {c['score']:.3f} {c['kind']:<7} {c['other_page']} "
                 f"(#{c['other_page_id']}): {cmd.merge(other, d['name'], dry_run=True)} | "
                 f"{cmd.reject(c['ref'])}")
    _echo_decisions(d["decisions"])
    _echo_nearest(d, "nearest_pages", "pages")


def _echo_album(d: dict) -> None:
    echo = click.echo
    echo(f"{d['page']} - {d['title']}  (album #{d['id']}, page #{d['page_id']})")
    facts = [f"{what} {d[k]}" for k, what in (("release_date", "released"), ("label", "label"),
                                             ("genre", "genre"), ("upc", "UPC")) if d.get(k)]
    if not d.get("release_date") and d.get("year"):
        facts.insert(0, f"year {d['year']}")
    if facts:
        echo("  " + ", ".join(facts))
    if d["cluster"]:
        echo(f"  cluster {d['cluster']} of open finding {d['finding']} on {d['page']}")
    echo(f"  {plural(len(d['tracks']), 'track')}:")
    for t in d["tracks"]:
        number = f"{t['disc']}-{t['track']}" if t["disc"] and t["track"] else (t["track"] or "-")
        length = f"{t['duration']:.0f} s" if t["duration"] is not None else ""
        credits = ", ".join(t["credits"])
        echo(f"    {number!s:>5}  {t['title'][:40]:<40} {length:>7}  {credits}  (#{t['id']})")
    _echo_decisions(d["decisions"])
    _echo_nearest(d, "nearest_albums", "albums")


def _echo_decisions(decisions: list[dict]) -> None:
    if not decisions:
        return
    click.echo("  decisions:")
    for x in decisions:
        state = f"undone {x['undone_at']:%Y-%m-%d %H:%M}" if x["undone_at"] else \
            f"in force (artdb undo {x['decision_id']})"
        note = f"  {x['note']}" if x["note"] else ""
        click.echo(f"    #{x['decision_id']:<5} {x['action']:<7} {x['finding'] or '-':<7} "
                   f"{x['created_at']:%Y-%m-%d %H:%M}  {state}{note}")


def _echo_nearest(d: dict, key: str, what: str) -> None:
    if d[key]:
        click.echo(f"  nearest {what} (model {d[key][0]['model']}):")
        for n in d[key]:
            where = f"{n['page']} - {n['name']}" if what == "albums" else n["name"]
            click.echo(f"    {n['score']:.3f}  {where} (#{n['id']})")
    elif d.get("nearest_note"):
        click.echo(f"  nearest {what}: none ({d['nearest_note']})")
