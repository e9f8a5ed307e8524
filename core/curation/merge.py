"""Merge a synonym page into another (``artdb merge``), and undo it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, insert, select, update

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
from artdb.core.vectors.index import bump_page_changes
from artdb.db.models import Album, ArtistPage, CuratorDecision, SynonymCandidate, Track, TrackCredit
from artdb.db.session import Catalog

_ALBUM_FIELDS = ("id", "title", "normalized_title", "page_id", "upc", "release_date", "year",
                 "label_id", "genre_id")


def _album_row(album: Album) -> dict[str, Any]:
    row = {k: getattr(album, k) for k in _ALBUM_FIELDS}
    row["created_at"] = album.created_at.isoformat() if album.created_at else None
    return row


def _candidate(s, a: ArtistPage, b: ArtistPage, candidate: str | int | None
               ) -> SynonymCandidate | None:
    """The synonym candidate applied: ``candidate`` (checked to be about pages a and b), else the
    pair's latest open candidate, if any."""
    if candidate is None:
        return s.scalars(select(SynonymCandidate).where(
            SynonymCandidate.status == "open",
            ((SynonymCandidate.page_a_id == a.id) & (SynonymCandidate.page_b_id == b.id))
            | ((SynonymCandidate.page_a_id == b.id) & (SynonymCandidate.page_b_id == a.id)))
            .order_by(SynonymCandidate.id.desc())).first()
    kind, cid = parse_finding_ref(candidate)
    if kind != "synonym":
        raise ConfigError(f"{candidate!r} is a homonym finding: use `artdb split`")
    cand = s.get(SynonymCandidate, cid, with_for_update=True)
    if cand is None:
        raise CatalogError(f"no synonym candidate s{cid}")
    if cand.status != "open":
        raise not_open(s, "synonym", cand)
    if {cand.page_a_id, cand.page_b_id} != {a.id, b.id}:
        raise CatalogError(f"candidate s{cid} is about pages #{cand.page_a_id} and "
                           f"#{cand.page_b_id}, not #{a.id} and #{b.id}")
    return cand


def merge_pages(catalog: Catalog, target: str | int, source: str | int,
                candidate: str | int | None = None, note: str | None = None,
                dry_run: bool = False) -> Decision:
    """Merge page ``source`` (B) into ``target`` (A): B's albums and credits move to A, and
    ``B.merged_into_id = A`` so future ingests under B's name credit A.

    An album of B whose title A already has is folded into A's album (its tracks move; the empty
    album row is deleted and kept in the undo record). A track credited to both keeps A's credit.
    ``dry_run`` reports the same summary and changes nothing.
    """
    with action_session(catalog, dry_run) as s:
        a, b = one_page(s, target), one_page(s, source)
        if a.id == b.id:
            raise CatalogError("cannot merge a page into itself")
        for p in (a, b):
            if p.merged_into_id is not None:
                raise CatalogError(f"{label(p)!r} was already merged into page #{p.merged_into_id}")
        cand = _candidate(s, a, b, candidate)
        a_titles = dict(s.execute(select(Album.normalized_title, Album.id)
                                  .where(Album.page_id == a.id)).all())
        albums, folded, tracks_moved, folded_into = [], [], [], []
        for alb in s.scalars(select(Album).where(Album.page_id == b.id).order_by(Album.id)).all():
            into = a_titles.get(alb.normalized_title)
            if into is None:
                albums.append([alb.id, b.id, a.id])
                continue
            tids = s.scalars(select(Track.id).where(Track.album_id == alb.id).order_by(Track.id)).all()
            tracks_moved += [[t, alb.id, into] for t in tids]
            if tids:
                s.execute(update(Track).where(Track.id.in_(tids)).values(album_id=into))
            folded.append(_album_row(alb))
            folded_into.append(into)
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
        move_pages(s, albums, credits)
        b.merged_into_id = a.id
        cand_undo = None
        if cand is not None:
            cand_undo = {"id": cand.id, "status": cand.status}
            cand.status = "applied"
        bump_page_changes(s)
        undo = {"target": a.id, "source": b.id, "merged_into_id": None, "albums": albums,
                "folded_albums": folded, "tracks": tracks_moved, "credits": credits,
                "dropped_credits": dropped, "candidate": cand_undo, "pages": [a.id, b.id]}
        titles = dict(s.execute(select(Album.id, Album.title)
                                .where(Album.id.in_([a for a, _, _ in albums]))).all()) if albums else {}
        d = CuratorDecision(action="merge", finding_kind="synonym",
                            finding_id=cand.id if cand is not None else None,
                            evidence_hash=cand.evidence_hash if cand is not None else None,
                            undo=undo, note=note)
        return record(s, d, dry_run, {
            "target": {"page_id": a.id, "page": label(a)},
            "source": {"page_id": b.id, "page": label(b)},
            "albums_moved": len(albums), "albums_folded": len(folded),
            "credits_moved": len(credits), "credits_dropped": len(dropped),
            "moved": [{"album_id": x, "title": titles.get(x)} for x, _, _ in albums],
            "folded": [{"album_id": row["id"], "title": row["title"], "into": into}
                       for row, into in zip(folded, folded_into)]})


def undo_merge(s, u: dict[str, Any]) -> dict[str, Any]:
    """Re-create the folded albums, move tracks, albums and credits back, restore the dropped
    credits, un-merge the source page and reopen the candidate."""
    a, b = u["target"], u["source"]
    src = s.get(ArtistPage, b, with_for_update=True)
    for row in u["folded_albums"]:
        values = {k: row[k] for k in _ALBUM_FIELDS}
        if row.get("created_at"):
            values["created_at"] = dt.datetime.fromisoformat(row["created_at"])
        s.execute(insert(Album).values(**values))
    for tid, old_album, _ in u["tracks"]:
        s.execute(update(Track).where(Track.id == tid).values(album_id=old_album))
    move_pages(s, u["albums"], u["credits"], back=True)
    for tid, page, role, pos in u["dropped_credits"]:
        s.execute(insert(TrackCredit).values(track_id=tid, page_id=page, role=role, position=pos))
    src.merged_into_id = u["merged_into_id"]
    if u.get("candidate"):
        restore_status(s, "synonym", u["candidate"]["id"], "applied", u["candidate"]["status"])
    bump_page_changes(s)
    return {"target_id": a, "source_id": b, "albums_restored": len(u["albums"]) + len(u["folded_albums"]),
            "credits_restored": len(u["credits"]) + len(u["dropped_credits"])}


__all__ = ["merge_pages", "undo_merge"]
