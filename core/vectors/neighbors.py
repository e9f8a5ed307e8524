"""Nearest tracks, albums or artist pages to a query (``artdb neighbors``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from sqlalchemy import select

from artdb.core.analysis.findings import (
    SUGGEST_CUTOFF,
    SUGGESTIONS,
    find_pages,
    no_page_error,
    page_label,
)
from artdb.core.config import Paths
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.names import page_key
from artdb.core.vectors.index import open_level_index, track_groups
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.db.models import Album, ArtistPage, Model, Track, TrackCredit
from artdb.db.session import Catalog


@dataclass
class Neighbor:
    level: str
    id: int
    score: float
    name: str  # track title, album title or page name
    album: str | None
    page: str | None
    page_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def resolve_query(catalog: Catalog, query: str, level: str) -> int:
    """The id of the entity ``query`` names at ``level``.

    track: a track id or an audio file path; album: an album id or title ("Artist - Title" to
    disambiguate); artist: a page id or name.
    """
    with catalog.session() as s:
        if level == "track":
            if query.isdigit() and s.get(Track, int(query)):
                return int(query)
            path = os.path.abspath(query)
            tid = s.scalar(select(Track.id).where(Track.audio_path == path))
            if tid is None:
                raise CatalogError(f"no track with id or path {query!r} in the catalog")
            return tid
        if level == "album":
            if query.isdigit() and s.get(Album, int(query)):
                return int(query)
            stmt = (select(Album.id, ArtistPage.display_name, ArtistPage.disambiguation)
                    .join(ArtistPage, Album.page_id == ArtistPage.id).order_by(Album.id))
            artist, sep, title = query.partition(" - ")
            if sep:  # the artist: a page label ("Eclipse [2]"), or a name (any page of it)
                pages = set(find_pages(s, artist)) | set(s.scalars(
                    select(ArtistPage.id).where(ArtistPage.normalized_name == page_key(artist))))
                rows = s.execute(stmt.where(Album.normalized_title == page_key(title),
                                            Album.page_id.in_(pages))).all() if pages else []
            else:
                rows = s.execute(stmt.where(Album.normalized_title == page_key(query))).all()
            if not rows:
                raise _no_album_error(s, query, artist if sep else None, title)
            if len(rows) > 1:
                names = ", ".join(f"{aid} ({page_label(n, d)})" for aid, n, d in rows[:10])
                raise CatalogError(
                    f"album title {query!r} is ambiguous: {names}; use an id or 'Artist - Title'")
            return rows[0][0]
        if level == "artist":
            ids = find_pages(s, query)
            if not ids:
                raise no_page_error(s, query)
            if len(ids) > 1:
                rows = s.execute(select(ArtistPage.id, ArtistPage.display_name,
                                        ArtistPage.disambiguation).where(ArtistPage.id.in_(ids))
                                 .order_by(ArtistPage.disambiguation, ArtistPage.id)).all()
                labels = ", ".join(repr(page_label(n, d)) for _, n, d in rows)
                raise CatalogError(f"{query!r} names several pages (after a split): use one of "
                                   f"{labels} or a page id")
            return ids[0]
    raise CatalogError(f"unknown level {level!r} (track, album or artist)")


def _no_album_error(session, query: str, artist: str | None, title: str) -> CatalogError:
    """"no album X", with the closest "Artist - Title" of that artist's pages when one is named."""
    hint = " (artdb ls --albums lists albums; name one by id or 'Artist - Title')"
    pages = find_pages(session, artist) if artist else []
    if pages:
        rows = session.execute(select(Album.title, ArtistPage.display_name, ArtistPage.disambiguation)
                               .join(ArtistPage, Album.page_id == ArtistPage.id)
                               .where(Album.page_id.in_(pages))).all()
        choices = {f"{page_label(n, d)} - {t}": page_key(t) for t, n, d in rows}
        close = process.extract(page_key(title), choices, scorer=fuzz.WRatio, limit=SUGGESTIONS,
                                score_cutoff=SUGGEST_CUTOFF)
        if close:
            hint = f"; did you mean {', '.join(repr(c[2]) for c in close)}?"
    elif artist:
        hint = f"; {no_page_error(session, artist)}"
    return CatalogError(f"no album {query!r} in the catalog{hint}")


def describe(catalog: Catalog, level: str, ids: list[int]
             ) -> dict[int, tuple[str, str | None, str | None, int | None]]:
    """id -> (name, album title, page name, page id) for display."""
    with catalog.session() as s:
        if level == "track":
            rows = s.execute(
                select(Track.id, Track.title, Album.title, ArtistPage.display_name,
                       ArtistPage.disambiguation, ArtistPage.id)
                .join(Album, Track.album_id == Album.id)
                .join(TrackCredit, (TrackCredit.track_id == Track.id) & (TrackCredit.position == 0))
                .join(ArtistPage, TrackCredit.page_id == ArtistPage.id)
                .where(Track.id.in_(ids))).all()
            return {r[0]: (r[1], r[2], page_label(r[3], r[4]), r[5]) for r in rows}
        if level == "album":
            rows = s.execute(
                select(Album.id, Album.title, ArtistPage.display_name, ArtistPage.disambiguation,
                       ArtistPage.id)
                .join(ArtistPage, Album.page_id == ArtistPage.id).where(Album.id.in_(ids))).all()
            return {r[0]: (r[1], r[1], page_label(r[2], r[3]), r[4]) for r in rows}
        rows = s.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
                         .where(ArtistPage.id.in_(ids))).all()
        return {r[0]: (page_label(r[1], r[2]), None, r[1], r[0]) for r in rows}


def page_of(catalog: Catalog, level: str, ids: np.ndarray) -> np.ndarray:
    """The page each entity belongs to (its main credit / album artist / itself)."""
    if level == "artist":
        return ids
    if level == "track":
        return track_groups(catalog, "artist", ids)
    with catalog.session() as s:
        mapping = dict(s.execute(select(Album.id, Album.page_id)
                                 .where(Album.id.in_([int(i) for i in ids]))).all())
    return np.array([mapping.get(int(i), -1) for i in ids], dtype=np.int64)


@indexer_errors()
def nearest(catalog: Catalog, paths: Paths, model: Model, query: str, level: str = "track",
            k: int = 10, exclude_same_page: bool = False, device: str = "cpu") -> tuple[dict, list[Neighbor]]:
    """The ``k`` nearest entities at ``level`` to the one ``query`` names (itself excluded)."""
    if k < 1:
        raise ConfigError(f"k must be at least 1 neighbour, got {k}")
    qid = resolve_query(catalog, query, level)
    index = open_level_index(catalog, paths, model, level, device=device)
    if not index.contains(np.array([qid]))[0]:
        raise CatalogError(f"{level} {qid} has no vector for model {model.name} (not embedded yet?)")
    qvec = index.reconstruct(np.array([qid]))
    qpage = int(page_of(catalog, level, np.array([qid]))[0])
    want = k + 1
    while True:
        scores, ids = index.search(qvec, min(want, index.ntotal))
        keep = (ids[0] >= 0) & (ids[0] != qid)
        cand_ids, cand_scores = ids[0][keep], scores[0][keep]
        if exclude_same_page and len(cand_ids):
            other = page_of(catalog, level, cand_ids) != qpage
            cand_ids, cand_scores = cand_ids[other], cand_scores[other]
        if len(cand_ids) >= k or want >= index.ntotal:
            break
        want = min(index.ntotal, want * 4)
    cand_ids, cand_scores = cand_ids[:k], cand_scores[:k]
    info = describe(catalog, level, [qid, *map(int, cand_ids)])
    qname, qalbum, qpage_name, _ = info.get(qid, ("?", None, None, None))
    query_info = {"level": level, "id": qid, "name": qname, "album": qalbum, "page": qpage_name,
                  "model": model.name}
    out = []
    for i, sc in zip(cand_ids, cand_scores):
        name, album, page, pid = info.get(int(i), ("?", None, None, None))
        out.append(Neighbor(level, int(i), float(sc), name, album, page, pid))
    return query_info, out
