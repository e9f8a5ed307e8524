"""The curator's commands: ``review``, ``split``, ``merge``, ``reject``, ``undo``."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app, plural


def _emit(decision, as_json: bool, text: str) -> None:
    if as_json:
        emit_json(decision.to_dict())
    elif decision.dry_run:
        click.echo(text + "\ndry run: nothing was changed (run it again without --dry-run to apply)")
    else:
        click.echo(text + f"\n(decision #{decision.id}; `artdb undo {decision.id}` reverts it)")


def _titles(albums: list[dict], most: int = 8) -> str:
    names = [a["title"] for a in albums[:most]]
    return ", ".join(names) + (f", … ({len(albums) - most} more)" if len(albums) > most else "")


def parse_names(values: tuple[str, ...]) -> dict[int, str]:
    """``--name`` values -> {cluster: name}: "2=Eclipse (Swedish band)" names cluster 2; plain
    names go to clusters 2, 3, … (the new pages) in order."""
    out: dict[int, str] = {}
    plain = []
    for v in values:
        number, sep, name = v.partition("=")
        if sep and number.strip().isdigit():
            out[int(number)] = name.strip()
        else:
            plain.append(v.strip())
    free = (c for c in range(2, 1000) if c not in out)
    for name in plain:
        out[next(free)] = name
    return out


@click.command()
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the N best of each list (default: every homonym finding, and no "
                   "more synonym candidates than the catalog has pages).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None,
              help="Show only synonym candidates scoring at least this.")
@click.option("--kind", type=click.Choice(["variant", "alias"]), default=None,
              help="Show only variant spellings (names alike) or aliases (unrelated names).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--decisions", is_flag=True, help="List recent curator decisions instead.")
@pass_app
@handle_errors
def review(app: AppContext, top: int | None, min_score: float | None, kind: str | None,
           as_json: bool, decisions: bool) -> None:
    """List open findings: homonym pages to split, synonym pages to merge."""
    from artdb.cli.synonyms import echo_pairs
    from artdb.core.curation.review import open_findings
    from artdb.core.curation.undo import list_decisions

    if decisions:
        rows = list_decisions(app.catalog())
        if as_json:
            emit_json(rows)
            return
        for d in rows:
            state = f"undone {d['undone_at']:%Y-%m-%d %H:%M}" if d["undone_at"] else "in force"
            ref = f"{(d['finding_kind'] or '?')[0]}{d['finding_id']}" if d["finding_id"] else "-"
            click.echo(f"#{d['decision_id']:<5} {d['action']:<7} {ref:<7} "
                       f"{d['created_at']:%Y-%m-%d %H:%M}  {state}")
        return
    found = open_findings(app.catalog(), top=top, min_score=min_score, kind=kind)
    if as_json:
        emit_json(found)
        return
    shown = len(found["homonyms"])
    more = f", showing {shown}" if shown < found["homonyms_open"] else ""
    click.echo(f"{plural(found['homonyms_open'], 'homonym finding')}{more} "
               "(artdb show PAGE | artdb split PAGE [--dry-run] | artdb reject h<id>)")
    for f in found["homonyms"]:
        replaces = f", replaces {f['replaces']}" if f["replaces"] else ""
        click.echo(f"  h{f['id']:<5} {f['score']:7.3f}  {f['page']} (#{f['page_id']}): "
                   f"{f['n_clusters']} clusters{replaces}")
        for c in f["clusters"]:
            albums = c["albums"]
            titles = ", ".join(a["title"] for a in albums[:6]) + (" …" if len(albums) > 6 else "")
            click.echo(f"{'':>18}cluster {c['cluster']}: {titles}")
        for line in f["why"]:
            click.echo(f"{'':>18}why: {line}")
    if found["synonyms_open"]:
        shown = len(found["synonyms"])
        more = (f", showing the best {shown} (--top, --min-score, --kind)"
                if shown < found["synonyms_open"] else "")
        click.echo(f"{plural(found['synonyms_open'], 'synonym candidate')}{more} "
                   "(artdb merge SOURCE --into TARGET [--dry-run] | artdb reject s<id>)")
        echo_pairs(found["synonyms"])


@click.command()
@click.argument("page")
@click.option("--finding", default=None, help="The finding to apply (default: the page's latest open one).")
@click.option("--name", "names", multiple=True, metavar="[N=]NAME",
              help="Name a page of the split with a comment that tells it apart: "
                   "'Eclipse (Swedish band)'. N=NAME names cluster N (1 is the kept page); a plain "
                   "NAME goes to the new pages (clusters 2, 3, …) in order. Repeatable; unnamed new "
                   "pages are numbered 'Name [2]', ….")
@click.option("--dry-run", is_flag=True, help="Show exactly what would move; change nothing.")
@click.option("--note", default=None, help="Why (kept with the decision).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def split(app: AppContext, page: str, finding: str | None, names: tuple[str, ...], dry_run: bool,
          note: str | None, as_json: bool) -> None:
    """Split PAGE (name, id or label) as its homonym finding proposes.

    The largest cluster (cluster 1) keeps the page, its id and its name; each other cluster gets a
    new page with the same name and a disambiguation (--name, or a number: 'Name [2]'). Albums and
    their tracks' credits move.
    """
    from artdb.core.curation.split import split_page

    d = split_page(app.catalog(), page, finding=finding, note=note, names=parse_names(names),
                   dry_run=dry_run)
    sm = d.summary
    would = "would move" if dry_run else "moved"
    lines = [f"split {sm['page']!r} (finding h{d.finding_id}): {plural(sm['albums_moved'], 'album')} "
             f"and {plural(sm['credits_moved'], 'track credit')} {would}"]
    for p in sm["pages"]:
        ident = f"#{p['page_id']}, " if p["page_id"] else ""
        role = "kept" if p["kept"] else "new"
        lines.append(f"  cluster {p['cluster']} -> {p['page']} ({ident}{role}): "
                     f"{plural(len(p['albums']), 'album')}: {_titles(p['albums'])}")
    if sm["unassigned_albums"]:
        lines.append(f"  albums added since the audit stay on {sm['page']!r}: {sm['unassigned_albums']}")
    _emit(d, as_json, "\n".join(lines))


@click.command()
@click.argument("pages", nargs=-1, metavar="SOURCE")
@click.option("--into", "target", metavar="TARGET", default=None,
              help="The page that stays and receives SOURCE's albums.")
@click.option("--candidate", default=None, help="The synonym candidate applied (s<id>), if any.")
@click.option("--dry-run", is_flag=True, help="Show exactly what would move; change nothing.")
@click.option("--note", default=None, help="Why (kept with the decision).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def merge(app: AppContext, pages: tuple[str, ...], target: str | None, candidate: str | None,
          dry_run: bool, note: str | None, as_json: bool) -> None:
    """Merge page SOURCE into page TARGET (one artist under two names): artdb merge SOURCE --into
    TARGET, like `mv SOURCE TARGET`.

    SOURCE's albums and credits move to TARGET, and future ingests under SOURCE's name credit TARGET.
    """
    from artdb.core.curation.commands import CommandLine
    from artdb.core.curation.merge import merge_pages

    if len(pages) == 2 and target is None:  # the old `merge TARGET SOURCE`: never guess the order
        raise click.UsageError(
            f"merge names the page that goes away first and the one that stays with --into: "
            f"{CommandLine()('merge', pages[1], '--into', pages[0])} (the older `merge TARGET "
            "SOURCE` form is no longer read, so that no script merges the wrong way)")
    if len(pages) != 1 or target is None:
        raise click.UsageError("usage: artdb merge SOURCE --into TARGET")
    source = pages[0]

    d = merge_pages(app.catalog(), target, source, candidate=candidate, note=note, dry_run=dry_run)
    sm = d.summary
    would = "would be " if dry_run else ""
    lines = [f"merge {sm['source']['page']} (#{sm['source']['page_id']}) into {sm['target']['page']} "
             f"(#{sm['target']['page_id']}): {plural(sm['albums_moved'], 'album')} {would}moved, "
             f"{sm['albums_folded']} {would}folded, {plural(sm['credits_moved'], 'credit')} "
             f"{would}moved"]
    if sm["moved"]:
        lines.append(f"  albums moving: {_titles(sm['moved'])}")
    if sm["folded"]:
        lines.append(f"  albums folded into {sm['target']['page']}'s album of the same title: "
                     f"{_titles(sm['folded'])}")
    _emit(d, as_json, "\n".join(lines))


@click.command()
@click.argument("finding")
@click.option("--note", default=None, help="Why (kept with the decision).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def reject(app: AppContext, finding: str, note: str | None, as_json: bool) -> None:
    """Reject FINDING (h<id> homonym, s<id> synonym): not raised again unless the evidence changes."""
    from artdb.core.curation.reject import reject_finding

    d = reject_finding(app.catalog(), finding, note=note)
    _emit(d, as_json, f"rejected {d.finding_kind} finding {d.finding_kind[0]}{d.finding_id}")


@click.command()
@click.argument("decision_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@handle_errors
def undo(app: AppContext, decision_id: int, as_json: bool) -> None:
    """Undo curator decision DECISION_ID (split, merge, place or reject), restoring the catalog exactly."""
    from artdb.core.curation.undo import undo_decision

    d = undo_decision(app.catalog(), decision_id)
    if as_json:
        emit_json(d.to_dict())
    else:
        click.echo(f"undid decision #{d.id} ({d.action})")
