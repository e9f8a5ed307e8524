"""Move one album to another page (what ``artdb place --apply`` does with a placement), and undo it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from artdb.core.curation.common import Decision, action_session, label, move_pages, one_page, record
from artdb.core.errors import CatalogError
from artdb.core.vectors.index import bump_page_changes
from artdb.db.models import Album, ArtistPage, CuratorDecision, Track, TrackCredit
from artdb.db.session import Catalog


def move_album(catalog: Catalog, album_id: int, page: str | int, note: str | None = None,
               dry_run: bool = False) -> Decision:
    """Move one album to ``page`` (what ``artdb place --apply`` does with the placement's answer).

    The credits naming the album's old page on its tracks move with it (other credits are kept).
    Refused if ``page`` already has an album of that title. ``dry_run`` reports the same summary
    and changes nothing.
    """
    with action_session(catalog, dry_run) as s:
        alb = s.get(Album, int(album_id), with_for_update=True)
        if alb is None:
            raise CatalogError(f"no album {album_id}")
        dst = one_page(s, page)
        src = s.get(ArtistPage, alb.page_id, with_for_update=True)
        if dst.id == src.id:
            raise CatalogError(f"album {alb.id} is already on {label(dst)!r}")
        if dst.merged_into_id is not None:
            raise CatalogError(f"{label(dst)!r} was merged into page #{dst.merged_into_id}")
        if s.scalar(select(Album.id).where(Album.page_id == dst.id,
                                           Album.normalized_title == alb.normalized_title)):
            raise CatalogError(f"{label(dst)!r} already has an album titled {alb.title!r}")
        tracks = s.scalars(select(Track.id).where(Track.album_id == alb.id)).all()
        moved = sorted(s.scalars(select(TrackCredit.track_id).where(
            TrackCredit.track_id.in_(tracks), TrackCredit.page_id == src.id)).all()) if tracks else []
        clash = set(s.scalars(select(TrackCredit.track_id).where(
            TrackCredit.track_id.in_(moved), TrackCredit.page_id == dst.id))) if moved else set()
        if clash:
            raise CatalogError(f"tracks {sorted(clash)} already credit {label(dst)!r}")
        albums, credits = [[alb.id, src.id, dst.id]], [[t, src.id, dst.id] for t in moved]
        move_pages(s, albums, credits)
        bump_page_changes(s)
        undo = {"albums": albums, "credits": credits, "pages": [src.id, dst.id]}
        return record(s, CuratorDecision(action="place", undo=undo, note=note), dry_run, {
            "album_id": alb.id, "album": alb.title, "from": {"page_id": src.id, "page": label(src)},
            "to": {"page_id": dst.id, "page": label(dst)}, "credits_moved": len(moved)})


def undo_place(s, u: dict[str, Any]) -> dict[str, Any]:
    """Move the album and its credits back."""
    move_pages(s, u["albums"], u["credits"], back=True)
    bump_page_changes(s)
    return {"albums_restored": len(u["albums"]), "credits_restored": len(u["credits"])}


__all__ = ["move_album", "undo_place"]
