"""Split a homonym page as its audit finding proposes (``artdb split``), and undo it.

Split policy: the largest proposed cluster (cluster 1) keeps the original page — its id and its
name, so links, references and later deliveries under the name stay with it — and each other
cluster gets a new page with the same display name, told apart by a disambiguation: the one the
curator gives (``names``: "Eclipse (Swedish band)", like a MusicBrainz disambiguation comment),
else the next free number ("Eclipse [2]", "Eclipse [3]", …). The kept page can be given a comment
too. ``artdb place`` proposes which of the pages a later delivery under the name belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update

from artdb.core.analysis.findings import Partition, cluster_number, page_label, parse_page_label
from artdb.core.curation.common import (
    Decision,
    action_session,
    label,
    move_pages,
    not_open,
    one_page,
    parse_finding_ref,
    record,
    restore_status,
)
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.faults import kill_point
from artdb.core.names import page_key
from artdb.core.vectors.index import bump_page_changes
from artdb.db.models import (
    Album,
    ArtistPage,
    AuditFinding,
    CuratorDecision,
    SynonymCandidate,
    Track,
    TrackCredit,
)
from artdb.db.session import Catalog

# ArtistPage.disambiguation's column width.
DISAMBIGUATION_MAX = ArtistPage.__table__.c.disambiguation.type.length


def _next_numbers(session, normalized_name: str, count: int) -> list[str]:
    """Free numbers for new pages of a name: after the highest in use, and from 2 (the kept page,
    unnumbered, is the name's first artist)."""
    used = session.scalars(select(ArtistPage.disambiguation)
                           .where(ArtistPage.normalized_name == normalized_name)).all()
    top = max([int(d) for d in used if d.isdigit()] or [1])
    return [str(top + 1 + i) for i in range(count)]


def _comment(pg: ArtistPage, name: str) -> str:
    """The disambiguation ``name`` gives a page split from ``pg``: "Eclipse (Swedish band)" ->
    "Swedish band" (also "Eclipse [Swedish band]"); a ConfigError suggesting the form that works
    for anything else."""
    base, dis = parse_page_label(name.strip())
    example = f"'{pg.display_name} ({name.strip() if dis is None else dis})'"
    if dis is None or page_key(base) != pg.normalized_name:
        raise ConfigError(f"--name {name!r}: a page split from {label(pg)!r} keeps the name "
                          f"{pg.display_name!r} with a comment that tells it apart, e.g. {example}")
    if len(dis) > DISAMBIGUATION_MAX:
        raise ConfigError(f"--name {name!r}: the comment is longer than {DISAMBIGUATION_MAX} "
                          "characters")
    return dis


def _disambiguations(s, pg: ArtistPage, n: int, names: Mapping[int, str]) -> tuple[str, list[str]]:
    """The kept page's disambiguation and the new pages' (clusters 2..n), checked to be free."""
    bad = sorted(c for c in names if not 1 <= c <= n)
    if bad:
        raise ConfigError(f"--name for cluster {bad[0]}: the split has clusters 1 to {n}")
    chosen = {c: _comment(pg, text) for c, text in names.items()}
    numbers = iter(_next_numbers(s, pg.normalized_name, n - 1))
    kept = chosen.get(1, pg.disambiguation)
    new = [chosen[c] if c in chosen else next(numbers) for c in range(2, n + 1)]
    seen: set[str] = set()
    for dis in [kept, *new]:
        if dis.lower() in seen:
            raise ConfigError(f"two pages would both be {page_label(pg.display_name, dis)!r}: "
                              "give each --name its own comment")
        seen.add(dis.lower())
    taken = {d.lower(): pid for pid, d in s.execute(
        select(ArtistPage.id, ArtistPage.disambiguation)
        .where(ArtistPage.normalized_name == pg.normalized_name, ArtistPage.id != pg.id))}
    for dis in [kept, *new]:
        if dis.lower() in taken:
            raise CatalogError(f"page #{taken[dis.lower()]} is already "
                               f"{page_label(pg.display_name, dis)!r}: choose another --name")
    return kept, new


def _finding(s, pg: ArtistPage, finding: str | int | None) -> AuditFinding:
    """The homonym finding to apply: ``finding`` (checked to be about ``pg``), else the page's
    latest open one."""
    if finding is not None:
        kind, fid = parse_finding_ref(finding)
        if kind != "homonym":
            raise ConfigError(f"{finding!r} is a synonym candidate: use `artdb merge`")
        f = s.get(AuditFinding, fid, with_for_update=True)
        if f is None:
            raise CatalogError(f"no homonym finding h{fid}")
        if f.page_id != pg.id:
            raise CatalogError(f"finding h{fid} is about page #{f.page_id}, not {label(pg)!r}")
    else:
        f = s.scalars(select(AuditFinding).where(AuditFinding.page_id == pg.id,
                                                 AuditFinding.status == "open")
                      .order_by(AuditFinding.id.desc()).with_for_update()).first()
        if f is None:
            raise CatalogError(f"no open homonym finding for {label(pg)!r}: run `artdb audit`")
    if f.status != "open":
        raise not_open(s, "homonym", f)
    return f


def split_page(catalog: Catalog, page: str | int, finding: str | int | None = None,
               note: str | None = None, names: Mapping[int, str] | None = None,
               dry_run: bool = False) -> Decision:
    """Apply a homonym finding's proposed split of ``page`` (its latest open finding by default).

    ``names``: cluster number (1 = the kept page) -> the page's name with a comment, e.g.
    ``{2: "Eclipse (Swedish band)"}``; clusters without one are numbered. ``dry_run`` reports the
    same summary and changes nothing.
    """
    with action_session(catalog, dry_run) as s:
        pg = one_page(s, page)
        f = _finding(s, pg, finding)
        part = Partition.from_proposal(f.proposal).cluster_of
        on_page = set(s.scalars(select(Album.id).where(Album.page_id == pg.id)))
        gone = sorted(set(part) - on_page)
        if gone:
            raise CatalogError(f"finding h{f.id} is stale (albums {gone} are no longer on "
                               f"{label(pg)!r}): run `artdb audit` again")
        n = max(part.values(), default=0) + 1
        if n < 2:
            raise CatalogError(f"finding h{f.id} proposes a single cluster: nothing to split")
        old_dis = pg.disambiguation
        kept_dis, new_dis = _disambiguations(s, pg, n, names or {})
        pg.disambiguation = kept_dis
        created = []
        for dis in new_dis:
            new = ArtistPage(display_name=pg.display_name, normalized_name=pg.normalized_name,
                             disambiguation=dis)
            s.add(new)
            created.append(new)
        s.flush()
        target = {c: created[c - 1].id for c in range(1, n)}
        albums, credits = [], []
        for aid, c in sorted(part.items()):
            if c == 0:
                continue
            albums.append([aid, pg.id, target[c]])
            tracks = s.scalars(select(Track.id).where(Track.album_id == aid)).all()
            moved = s.scalars(select(TrackCredit.track_id).where(
                TrackCredit.track_id.in_(tracks), TrackCredit.page_id == pg.id)).all() if tracks else []
            credits += [[tid, pg.id, target[c]] for tid in sorted(moved)]
        move_pages(s, albums, credits)
        f.status = "applied"
        bump_page_changes(s)
        undo = {"page_id": pg.id, "disambiguation": old_dis, "new_disambiguation": pg.disambiguation,
                "created_pages": [p.id for p in created], "albums": albums, "credits": credits,
                "finding": {"id": f.id, "status": "open"}, "pages": [pg.id, *target.values()]}
        titles = dict(s.execute(select(Album.id, Album.title).where(Album.id.in_(part))).all())

        def members(c: int) -> list[dict[str, Any]]:
            return [{"album_id": a, "title": titles.get(a)} for a in sorted(a for a, x in part.items()
                                                                          if x == c)]

        pages = [{"page_id": pg.id, "page": label(pg), "kept": True, "cluster": cluster_number(0),
                  "albums": members(0)}]
        pages += [{"page_id": None if dry_run else p.id, "page": label(p), "kept": False,
                   "cluster": cluster_number(i + 1), "albums": members(i + 1)}
                  for i, p in enumerate(created)]
        decision = record(s, CuratorDecision(action="split", finding_kind="homonym", finding_id=f.id,
                                             evidence_hash=f.evidence_hash, undo=undo, note=note),
                          dry_run, {"page": label(pg), "pages": pages, "albums_moved": len(albums),
                                    "credits_moved": len(credits),
                                    "unassigned_albums": sorted(on_page - set(part))})
    if not dry_run:
        # committed; the album and artist indexes are rebuilt lazily (the page-change counter moved)
        kill_point("after split committed")
    return decision


def undo_split(s, u: dict[str, Any]) -> dict[str, Any]:
    """Move the albums and credits back, delete the pages the split created, restore the kept
    page's disambiguation and reopen the finding; refused when the created pages received other
    albums or credits since, or when a page now holds the original label."""
    pg = s.get(ArtistPage, u["page_id"], with_for_update=True)
    created = list(u["created_pages"])
    moved_albums = {a for a, _, _ in u["albums"]}
    extra = s.scalars(select(Album.id).where(Album.page_id.in_(created))).all()
    if set(extra) - moved_albums:
        raise CatalogError(f"pages {created} received other albums since the split "
                           f"({sorted(set(extra) - moved_albums)}): move them away first")
    moved_credits = {(t, to) for t, _, to in u["credits"]}
    extra_credits = s.execute(select(TrackCredit.track_id, TrackCredit.page_id)
                              .where(TrackCredit.page_id.in_(created))).all()
    if {tuple(r) for r in extra_credits} - moved_credits:
        raise CatalogError(f"pages {created} received other track credits since the split")
    if u["disambiguation"] != pg.disambiguation:
        clash = s.scalars(select(ArtistPage).where(
            ArtistPage.normalized_name == pg.normalized_name,
            ArtistPage.disambiguation == u["disambiguation"], ArtistPage.id != pg.id)).first()
        if clash is not None:
            raise CatalogError(
                f"page #{clash.id} {label(clash)!r} was created since the split (a later delivery "
                f"under the name); merge it into a numbered page (artdb merge) before undoing")
    move_pages(s, u["albums"], u["credits"], back=True)
    s.flush()
    # Findings and synonym candidates about the split's pages describe pages that cease to exist.
    s.execute(delete(AuditFinding).where(AuditFinding.page_id.in_(created)))
    s.execute(delete(SynonymCandidate).where(SynonymCandidate.page_a_id.in_(created)
                                             | SynonymCandidate.page_b_id.in_(created)))
    s.execute(update(ArtistPage).where(ArtistPage.merged_into_id.in_(created))
              .values(merged_into_id=None))
    s.execute(delete(ArtistPage).where(ArtistPage.id.in_(created)))
    s.flush()
    pg.disambiguation = u["disambiguation"]
    f = u.get("finding")
    if f:
        restore_status(s, "homonym", f["id"], "applied", f["status"])
    bump_page_changes(s)
    return {"page_id": pg.id, "page": label(pg), "albums_restored": len(u["albums"]),
            "credits_restored": len(u["credits"]), "pages_deleted": created}


__all__ = ["split_page", "undo_split"]
