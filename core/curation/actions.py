"""The curator's workflow: review findings, split a homonym page, merge synonym pages, reject, undo.

Every action runs in ONE catalog transaction and records a :class:`CuratorDecision` whose ``undo``
JSON holds exactly what it changed (each album's and each credit row's previous page, the pages it
created, statuses it overwrote), so :func:`undo_decision` restores the catalog row for row. Each
split, merge and undo also bumps the catalog's page-change counter
(:func:`artdb.core.vectors.bump_page_changes`) so the derived album and artist-page indexes are
rebuilt on their next open.

Split policy: the largest proposed cluster keeps the original page (its id, so links to it stay
valid) and the other clusters get new pages with the same display name. All pages of the name are
then disambiguated "1", "2", … (the kept page takes the next free number if it had none), so the
undisambiguated name is free again: later deliveries under that name land on a fresh page, and
``artdb place`` proposes which of the numbered artists they belong to.

``artdb place --apply`` moves one album to the page its placement chose (:func:`move_album`),
also undoable.

Finding references: ``h12`` (or ``12``) is homonym finding 12, ``s3`` synonym candidate 3.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update

from artdb.core.analysis.audit import page_label, resolve_pages
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.vectors.index import bump_page_changes
from artdb.db.models import (
    Album, ArtistPage, AuditFinding, AuditRun, CuratorDecision, SynonymCandidate, Track,
    TrackCredit,
)
from artdb.db.session import Catalog

KINDS = {"h": "homonym", "s": "synonym"}


@dataclass
class Decision:
    id: int
    action: str
    finding_kind: str | None
    finding_id: int | None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"decision_id": self.id, "action": self.action, "finding_kind": self.finding_kind,
                "finding_id": self.finding_id, **self.summary}


def parse_finding_ref(ref: str | int) -> tuple[str, int]:
    """``"h12"``/``"12"`` -> ("homonym", 12); ``"s3"`` -> ("synonym", 3)."""
    text = str(ref).strip().lower()
    kind = "homonym"
    if text[:1] in KINDS:
        kind, text = KINDS[text[0]], text[1:]
    if not text.isdigit():
        raise ConfigError(f"a finding is named h<id> (homonym) or s<id> (synonym), got {ref!r}")
    return kind, int(text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _page(session, ref: str | int, lock: bool = True) -> ArtistPage:
    ids = resolve_pages(session, [ref])
    if len(ids) > 1:
        rows = session.scalars(select(ArtistPage).where(ArtistPage.id.in_(ids))).all()
        names = ", ".join(f"#{p.id} {page_label(p.display_name, p.disambiguation)!r}" for p in rows)
        raise CatalogError(f"{ref!r} names several pages ({names}); use an id or 'Name [n]'")
    return session.get(ArtistPage, ids[0], with_for_update=lock)


def _label(page: ArtistPage) -> str:
    return page_label(page.display_name, page.disambiguation)


# -- review ----------------------------------------------------------------------------------------
def open_findings(catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """Open homonym findings (best score first) and open synonym candidates (if any)."""
    with catalog.session() as s:
        rows = s.execute(
            select(AuditFinding, ArtistPage, AuditRun.created_at)
            .join(ArtistPage, ArtistPage.id == AuditFinding.page_id)
            .join(AuditRun, AuditRun.id == AuditFinding.run_id)
            .where(AuditFinding.status == "open")
            .order_by(AuditFinding.score.desc(), AuditFinding.id)).all()
        album_ids = {int(a) for f, _, _ in rows for a in (f.proposal or {}).get("partition", {})}
        titles = dict(s.execute(select(Album.id, Album.title).where(Album.id.in_(album_ids))).all()) \
            if album_ids else {}
        homonyms = []
        for f, page, when in rows:
            part = {int(a): int(c) for a, c in (f.proposal or {}).get("partition", {}).items()}
            clusters: list[list[dict]] = [[] for _ in range(f.n_clusters)]
            for a, c in sorted(part.items()):
                clusters[c].append({"album_id": a, "title": titles.get(a, "(gone)")})
            homonyms.append({
                "ref": f"h{f.id}", "id": f.id, "run_id": f.run_id, "audited_at": when,
                "page_id": page.id, "page": _label(page), "n_clusters": f.n_clusters,
                "score": f.score, "clusters": clusters})
        synonyms = []
        cands = s.scalars(select(SynonymCandidate).where(SynonymCandidate.status == "open")
                          .order_by(SynonymCandidate.score.desc(), SynonymCandidate.id)).all()
        if cands:
            ids = {c.page_a_id for c in cands} | {c.page_b_id for c in cands}
            pages = {p.id: _label(p) for p in s.scalars(select(ArtistPage).where(ArtistPage.id.in_(ids)))}
            for c in cands:
                synonyms.append({
                    "ref": f"s{c.id}", "id": c.id, "run_id": c.run_id,
                    "page_a_id": c.page_a_id, "page_a": pages.get(c.page_a_id),
                    "page_b_id": c.page_b_id, "page_b": pages.get(c.page_b_id),
                    "score": c.score, "audio_score": c.audio_score, "name_score": c.name_score,
                    "metadata_score": c.metadata_score})
    return {"homonyms": homonyms, "synonyms": synonyms}


# -- split -----------------------------------------------------------------------------------------
def _next_numbers(session, normalized_name: str, count: int) -> list[str]:
    used = session.scalars(select(ArtistPage.disambiguation)
                           .where(ArtistPage.normalized_name == normalized_name)).all()
    top = max([int(d) for d in used if d.isdigit()] or [0])
    return [str(top + 1 + i) for i in range(count)]


def split_page(catalog: Catalog, page: str | int, finding: str | int | None = None,
               note: str | None = None) -> Decision:
    """Apply a homonym finding's proposed split of ``page`` (its latest open finding by default)."""
    with catalog.session() as s:
        pg = _page(s, page)
        if finding is not None:
            kind, fid = parse_finding_ref(finding)
            if kind != "homonym":
                raise ConfigError(f"{finding!r} is a synonym candidate: use `artdb merge`")
            f = s.get(AuditFinding, fid, with_for_update=True)
            if f is None:
                raise CatalogError(f"no homonym finding h{fid}")
            if f.page_id != pg.id:
                raise CatalogError(f"finding h{fid} is about page #{f.page_id}, not {_label(pg)!r}")
        else:
            f = s.scalars(select(AuditFinding).where(AuditFinding.page_id == pg.id,
                                                     AuditFinding.status == "open")
                          .order_by(AuditFinding.id.desc()).with_for_update()).first()
            if f is None:
                raise CatalogError(f"no open homonym finding for {_label(pg)!r}: run `artdb audit`")
        if f.status != "open":
            raise CatalogError(f"finding h{f.id} is {f.status}, not open")
        part = {int(a): int(c) for a, c in (f.proposal or {}).get("partition", {}).items()}
        on_page = set(s.scalars(select(Album.id).where(Album.page_id == pg.id)))
        gone = sorted(set(part) - on_page)
        if gone:
            raise CatalogError(f"finding h{f.id} is stale (albums {gone} are no longer on "
                               f"{_label(pg)!r}): run `artdb audit` again")
        n = max(part.values()) + 1
        if n < 2:
            raise CatalogError(f"finding h{f.id} proposes a single cluster: nothing to split")
        old_dis = pg.disambiguation
        numbers = _next_numbers(s, pg.normalized_name, n - (0 if old_dis == "" else 1))
        if old_dis == "":
            pg.disambiguation = numbers.pop(0)
        created = []
        for _ in range(1, n):
            new = ArtistPage(display_name=pg.display_name, normalized_name=pg.normalized_name,
                             disambiguation=numbers.pop(0))
            s.add(new)
            created.append(new)
        s.flush()
        target = {c: created[c - 1].id for c in range(1, n)}
        albums, credits = [], []
        for aid, c in sorted(part.items()):
            if c == 0:
                continue
            albums.append([aid, pg.id, target[c]])
            s.execute(update(Album).where(Album.id == aid).values(page_id=target[c]))
            tracks = s.scalars(select(Track.id).where(Track.album_id == aid)).all()
            moved = s.scalars(select(TrackCredit.track_id).where(
                TrackCredit.track_id.in_(tracks), TrackCredit.page_id == pg.id)).all() if tracks else []
            for tid in sorted(moved):
                credits.append([tid, pg.id, target[c]])
            if moved:
                s.execute(update(TrackCredit)
                          .where(TrackCredit.track_id.in_(moved), TrackCredit.page_id == pg.id)
                          .values(page_id=target[c]))
        f.status = "applied"
        bump_page_changes(s)
        undo = {"page_id": pg.id, "disambiguation": old_dis, "new_disambiguation": pg.disambiguation,
                "created_pages": [p.id for p in created], "albums": albums, "credits": credits,
                "finding": {"id": f.id, "status": "open"}, "pages": [pg.id, *target.values()]}
        d = CuratorDecision(action="split", finding_kind="homonym", finding_id=f.id,
                            evidence_hash=f.evidence_hash, undo=undo, note=note)
        s.add(d)
        s.flush()
        pages = [{"page_id": pg.id, "page": _label(pg), "kept": True,
                  "albums": sorted(a for a, c in part.items() if c == 0)}]
        pages += [{"page_id": p.id, "page": _label(p), "kept": False,
                   "albums": sorted(a for a, c in part.items() if c == i + 1)}
                  for i, p in enumerate(created)]
        return Decision(d.id, "split", "homonym", f.id, {
            "pages": pages, "albums_moved": len(albums), "credits_moved": len(credits),
            "unassigned_albums": sorted(on_page - set(part))})


# -- merge -----------------------------------------------------------------------------------------
def merge_pages(catalog: Catalog, target: str | int, source: str | int,
                candidate: str | int | None = None, note: str | None = None) -> Decision:
    """Merge page ``source`` (B) into ``target`` (A): B's albums and credits move to A, and
    ``B.merged_into_id = A`` so future ingests under B's name credit A.

    An album of B whose title A already has is folded into A's album (its tracks move; the empty
    album row is deleted and kept in the undo record). A track credited to both keeps A's credit.
    """
    with catalog.session() as s:
        a, b = _page(s, target), _page(s, source)
        if a.id == b.id:
            raise CatalogError("cannot merge a page into itself")
        for p in (a, b):
            if p.merged_into_id is not None:
                raise CatalogError(f"{_label(p)!r} was already merged into page #{p.merged_into_id}")
        cand = None
        if candidate is not None:
            kind, cid = parse_finding_ref(candidate)
            if kind != "synonym":
                raise ConfigError(f"{candidate!r} is a homonym finding: use `artdb split`")
            cand = s.get(SynonymCandidate, cid, with_for_update=True)
            if cand is None:
                raise CatalogError(f"no synonym candidate s{cid}")
            if {cand.page_a_id, cand.page_b_id} != {a.id, b.id}:
                raise CatalogError(f"candidate s{cid} is about pages #{cand.page_a_id} and "
                                   f"#{cand.page_b_id}, not #{a.id} and #{b.id}")
        else:
            cand = s.scalars(select(SynonymCandidate).where(
                SynonymCandidate.status == "open",
                ((SynonymCandidate.page_a_id == a.id) & (SynonymCandidate.page_b_id == b.id))
                | ((SynonymCandidate.page_a_id == b.id) & (SynonymCandidate.page_b_id == a.id)))
                .order_by(SynonymCandidate.id.desc())).first()
        a_titles = dict(s.execute(select(Album.normalized_title, Album.id)
                                  .where(Album.page_id == a.id)).all())
        albums, folded, tracks_moved = [], [], []
        for alb in s.scalars(select(Album).where(Album.page_id == b.id).order_by(Album.id)).all():
            into = a_titles.get(alb.normalized_title)
            if into is None:
                albums.append([alb.id, b.id, a.id])
                s.execute(update(Album).where(Album.id == alb.id).values(page_id=a.id))
                continue
            tids = s.scalars(select(Track.id).where(Track.album_id == alb.id).order_by(Track.id)).all()
            tracks_moved += [[t, alb.id, into] for t in tids]
            if tids:
                s.execute(update(Track).where(Track.id.in_(tids)).values(album_id=into))
            folded.append(_album_row(alb))
            s.execute(delete(Album).where(Album.id == alb.id))
        credits, dropped = [], []
        rows = s.execute(select(TrackCredit.track_id, TrackCredit.role, TrackCredit.position)
                         .where(TrackCredit.page_id == b.id).order_by(TrackCredit.track_id)).all()
        both = set(s.scalars(select(TrackCredit.track_id).where(
            TrackCredit.page_id == a.id, TrackCredit.track_id.in_([r[0] for r in rows])))) if rows else set()
        for tid, role, pos in rows:
            if tid in both:
                dropped.append([tid, b.id, role, pos])
            else:
                credits.append([tid, b.id, a.id])
        if dropped:
            s.execute(delete(TrackCredit).where(TrackCredit.page_id == b.id,
                                                TrackCredit.track_id.in_([d[0] for d in dropped])))
        if credits:
            s.execute(update(TrackCredit).where(TrackCredit.page_id == b.id,
                                                TrackCredit.track_id.in_([c[0] for c in credits]))
                      .values(page_id=a.id))
        b.merged_into_id = a.id
        cand_undo = None
        if cand is not None:
            cand_undo = {"id": cand.id, "status": cand.status}
            cand.status = "applied"
        bump_page_changes(s)
        undo = {"target": a.id, "source": b.id, "merged_into_id": None, "albums": albums,
                "folded_albums": folded, "tracks": tracks_moved, "credits": credits,
                "dropped_credits": dropped, "candidate": cand_undo, "pages": [a.id, b.id]}
        d = CuratorDecision(action="merge", finding_kind="synonym",
                            finding_id=cand.id if cand is not None else None,
                            evidence_hash=cand.evidence_hash if cand is not None else None,
                            undo=undo, note=note)
        s.add(d)
        s.flush()
        return Decision(d.id, "merge", "synonym", d.finding_id, {
            "target": {"page_id": a.id, "page": _label(a)},
            "source": {"page_id": b.id, "page": _label(b)},
            "albums_moved": len(albums), "albums_folded": len(folded),
            "credits_moved": len(credits), "credits_dropped": len(dropped)})


_ALBUM_FIELDS = ("id", "title", "normalized_title", "page_id", "upc", "release_date", "year",
                 "label_id", "genre_id")


def _album_row(album: Album) -> dict[str, Any]:
    row = {k: getattr(album, k) for k in _ALBUM_FIELDS}
    row["created_at"] = album.created_at.isoformat() if album.created_at else None
    return row


# -- place -----------------------------------------------------------------------------------------
def move_album(catalog: Catalog, album_id: int, page: str | int, note: str | None = None) -> Decision:
    """Move one album to ``page`` (what ``artdb place --apply`` does with the placement's answer).

    The credits naming the album's old page on its tracks move with it (other credits are kept).
    Refused if ``page`` already has an album of that title.
    """
    with catalog.session() as s:
        alb = s.get(Album, int(album_id), with_for_update=True)
        if alb is None:
            raise CatalogError(f"no album {album_id}")
        dst = _page(s, page)
        src = s.get(ArtistPage, alb.page_id, with_for_update=True)
        if dst.id == src.id:
            raise CatalogError(f"album {alb.id} is already on {_label(dst)!r}")
        if dst.merged_into_id is not None:
            raise CatalogError(f"{_label(dst)!r} was merged into page #{dst.merged_into_id}")
        if s.scalar(select(Album.id).where(Album.page_id == dst.id,
                                           Album.normalized_title == alb.normalized_title)):
            raise CatalogError(f"{_label(dst)!r} already has an album titled {alb.title!r}")
        tracks = s.scalars(select(Track.id).where(Track.album_id == alb.id)).all()
        moved = sorted(s.scalars(select(TrackCredit.track_id).where(
            TrackCredit.track_id.in_(tracks), TrackCredit.page_id == src.id)).all()) if tracks else []
        clash = set(s.scalars(select(TrackCredit.track_id).where(
            TrackCredit.track_id.in_(moved), TrackCredit.page_id == dst.id))) if moved else set()
        if clash:
            raise CatalogError(f"tracks {sorted(clash)} already credit {_label(dst)!r}")
        s.execute(update(Album).where(Album.id == alb.id).values(page_id=dst.id))
        if moved:
            s.execute(update(TrackCredit).where(TrackCredit.track_id.in_(moved),
                                                TrackCredit.page_id == src.id).values(page_id=dst.id))
        bump_page_changes(s)
        undo = {"albums": [[alb.id, src.id, dst.id]], "credits": [[t, src.id, dst.id] for t in moved],
                "pages": [src.id, dst.id]}
        d = CuratorDecision(action="place", undo=undo, note=note)
        s.add(d)
        s.flush()
        return Decision(d.id, "place", None, None, {
            "album_id": alb.id, "album": alb.title, "from": {"page_id": src.id, "page": _label(src)},
            "to": {"page_id": dst.id, "page": _label(dst)}, "credits_moved": len(moved)})


def _undo_place(s, u: dict[str, Any]) -> dict[str, Any]:
    for aid, old, _ in u["albums"]:
        s.execute(update(Album).where(Album.id == aid).values(page_id=old))
    for tid, old, new in u["credits"]:
        s.execute(update(TrackCredit).where(TrackCredit.track_id == tid, TrackCredit.page_id == new)
                  .values(page_id=old))
    bump_page_changes(s)
    return {"albums_restored": len(u["albums"]), "credits_restored": len(u["credits"])}


# -- reject ----------------------------------------------------------------------------------------
def reject_finding(catalog: Catalog, finding: str | int, note: str | None = None) -> Decision:
    """Mark a finding rejected; the audit will not raise the same evidence again."""
    kind, fid = parse_finding_ref(finding)
    with catalog.session() as s:
        row = s.get(AuditFinding if kind == "homonym" else SynonymCandidate, fid, with_for_update=True)
        if row is None:
            raise CatalogError(f"no {kind} finding {kind[0]}{fid}")
        if row.status != "open":
            raise CatalogError(f"{kind} finding {kind[0]}{fid} is {row.status}, not open")
        undo = {"finding": {"kind": kind, "id": fid, "status": row.status}, "pages": []}
        row.status = "rejected"
        d = CuratorDecision(action="reject", finding_kind=kind, finding_id=fid,
                            evidence_hash=row.evidence_hash, undo=undo, note=note)
        s.add(d)
        s.flush()
        return Decision(d.id, "reject", kind, fid, {"evidence_hash": row.evidence_hash})


# -- undo ------------------------------------------------------------------------------------------
def list_decisions(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    with catalog.session() as s:
        rows = s.scalars(select(CuratorDecision).order_by(CuratorDecision.id.desc()).limit(limit)).all()
        return [{"decision_id": d.id, "action": d.action, "finding_kind": d.finding_kind,
                 "finding_id": d.finding_id, "created_at": d.created_at, "undone_at": d.undone_at,
                 "note": d.note} for d in rows]


def undo_decision(catalog: Catalog, decision_id: int) -> Decision:
    """Restore the catalog exactly as it was before decision ``decision_id``.

    Refused when a later decision that is still in force touches the same pages (undo that one
    first), or when a page the split created has received other albums or credits since.
    """
    with catalog.session() as s:
        d = s.get(CuratorDecision, int(decision_id), with_for_update=True)
        if d is None:
            raise CatalogError(f"no curator decision #{decision_id}")
        if d.undone_at is not None:
            raise CatalogError(f"decision #{d.id} was already undone at {d.undone_at:%Y-%m-%d %H:%M}")
        u = d.undo or {}
        pages = set(u.get("pages", []))
        if pages:
            for later in s.scalars(select(CuratorDecision).where(
                    CuratorDecision.id > d.id, CuratorDecision.undone_at.is_(None))).all():
                if pages & set((later.undo or {}).get("pages", [])):
                    raise CatalogError(f"decision #{later.id} ({later.action}) changed the same "
                                       f"pages later: undo it first")
        if d.action == "split":
            summary = _undo_split(s, u)
        elif d.action == "merge":
            summary = _undo_merge(s, u)
        elif d.action == "place":
            summary = _undo_place(s, u)
        elif d.action == "reject":
            summary = _undo_status(s, u["finding"]["kind"], u["finding"]["id"], "rejected",
                                   u["finding"]["status"])
        else:
            raise CatalogError(f"decision #{d.id} ({d.action}) cannot be undone")
        d.undone_at = _now()
        return Decision(d.id, d.action, d.finding_kind, d.finding_id, {"undone": True, **summary})


def _undo_status(s, kind: str, fid: int, expect: str, restore: str) -> dict[str, Any]:
    row = s.get(AuditFinding if kind == "homonym" else SynonymCandidate, fid, with_for_update=True)
    if row is not None and row.status == expect:
        row.status = restore
    return {"finding_status": row.status if row is not None else None}


def _undo_split(s, u: dict[str, Any]) -> dict[str, Any]:
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
                f"page #{clash.id} {_label(clash)!r} was created since the split (a later delivery "
                f"under the name); merge it into a numbered page (artdb merge) before undoing")
    for aid, old, _ in u["albums"]:
        s.execute(update(Album).where(Album.id == aid).values(page_id=old))
    for tid, old, new in u["credits"]:
        s.execute(update(TrackCredit).where(TrackCredit.track_id == tid, TrackCredit.page_id == new)
                  .values(page_id=old))
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
        _undo_status(s, "homonym", f["id"], "applied", f["status"])
    bump_page_changes(s)
    return {"page_id": pg.id, "page": _label(pg), "albums_restored": len(u["albums"]),
            "credits_restored": len(u["credits"]), "pages_deleted": created}


def _undo_merge(s, u: dict[str, Any]) -> dict[str, Any]:
    a, b = u["target"], u["source"]
    src = s.get(ArtistPage, b, with_for_update=True)
    for row in u["folded_albums"]:
        values = {k: row[k] for k in _ALBUM_FIELDS}
        if row.get("created_at"):
            values["created_at"] = dt.datetime.fromisoformat(row["created_at"])
        s.execute(insert(Album).values(**values))
    for tid, old_album, _ in u["tracks"]:
        s.execute(update(Track).where(Track.id == tid).values(album_id=old_album))
    for aid, old, _ in u["albums"]:
        s.execute(update(Album).where(Album.id == aid).values(page_id=old))
    for tid, old, new in u["credits"]:
        s.execute(update(TrackCredit).where(TrackCredit.track_id == tid, TrackCredit.page_id == new)
                  .values(page_id=old))
    for tid, page, role, pos in u["dropped_credits"]:
        s.execute(insert(TrackCredit).values(track_id=tid, page_id=page, role=role, position=pos))
    src.merged_into_id = u["merged_into_id"]
    if u.get("candidate"):
        _undo_status(s, "synonym", u["candidate"]["id"], "applied", u["candidate"]["status"])
    bump_page_changes(s)
    return {"target_id": a, "source_id": b, "albums_restored": len(u["albums"]) + len(u["folded_albums"]),
            "credits_restored": len(u["credits"]) + len(u["dropped_credits"])}


__all__ = [
    "Decision", "list_decisions", "merge_pages", "move_album", "open_findings", "parse_finding_ref",
    "reject_finding", "split_page", "undo_decision",
]
