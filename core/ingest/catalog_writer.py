"""Writing analysed files into the catalog: pages, albums, genres, labels, tracks, credits.

Get-or-create goes through small per-run caches (a catalog ingest touches the same page and album
many times) and tolerates a concurrent writer on PostgreSQL: an insert that loses a race on a
unique key is retried as a lookup inside a savepoint. Tracks are inserted with ON CONFLICT DO
NOTHING: a recording (content hash) or path another writer inserted first is skipped, not raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from artdb.core.ingest.analyze import FileAnalysis
from artdb.core.ingest.tags import TEXT_LIMITS, clean_text
from artdb.core.names import page_key, split_credits
from artdb.db.models import Album, ArtistPage, Genre, Label, Track, TrackCredit
from artdb.db.session import insert_ignoring_conflicts

T = TypeVar("T")
NO_ALBUM_TITLE = "[non-album tracks]"
_YEAR = re.compile(r"(\d{4})")
# Keys are cut to their columns too: NFKC and case folding can lengthen a name that fits ("ß" ->
# "ss", one ligature -> 18 letters).
_PAGE_KEY_LEN = ArtistPage.normalized_name.type.length
_ALBUM_KEY_LEN = Album.normalized_title.type.length


def _get_or_create(session: Session, model: type[T], lookup: dict[str, Any],
                   create: Callable[[], T]) -> T:
    obj = session.scalars(select(model).filter_by(**lookup)).first()
    if obj is not None:
        return obj
    try:
        with session.begin_nested():
            obj = create()
            session.add(obj)
            session.flush()
        return obj
    except IntegrityError:  # another writer created it between our lookup and insert
        obj = session.scalars(select(model).filter_by(**lookup)).first()
        if obj is None:
            raise
        return obj


class CatalogWriter:
    """Turns ``FileAnalysis`` results into rows. One instance per ingest run (holds id caches)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the cached ids (after a rollback, some may name rows that no longer exist)."""
        self._pages: dict[str, int] = {}
        self._albums: dict[tuple[int, str], int] = {}
        self._genres: dict[str, int] = {}
        self._labels: dict[str, int] = {}

    # -- lookups ---------------------------------------------------------------------------
    def page_id(self, session: Session, name: str) -> int:
        key = page_key(name)[:_PAGE_KEY_LEN]
        if key not in self._pages:
            page = _get_or_create(
                session, ArtistPage, {"normalized_name": key, "disambiguation": ""},
                lambda: ArtistPage(display_name=name.strip(), normalized_name=key, disambiguation=""),
            )
            # A page a curator merged away credits its merge target from now on.
            seen = set()
            while page.merged_into_id is not None and page.id not in seen:
                seen.add(page.id)
                page = session.get(ArtistPage, page.merged_into_id)
            self._pages[key] = page.id
        return self._pages[key]

    def _named(self, session: Session, model, cache: dict[str, int], name: str | None) -> int | None:
        if not name:
            return None
        name = name.strip()
        if name not in cache:
            cache[name] = _get_or_create(session, model, {"name": name}, lambda: model(name=name)).id
        return cache[name]

    def album_id(self, session: Session, page_id: int, fa: FileAnalysis) -> int:
        title = (fa.tags.album or NO_ALBUM_TITLE).strip()
        key = (page_id, page_key(title)[:_ALBUM_KEY_LEN])
        if key in self._albums:
            return self._albums[key]
        tags = fa.tags
        genre_id = self._named(session, Genre, self._genres, tags.genre)
        label_id = self._named(session, Label, self._labels, tags.label)
        year_match = _YEAR.search(tags.date or "")
        album = _get_or_create(
            session, Album, {"page_id": page_id, "normalized_title": key[1]},
            lambda: Album(
                title=title, normalized_title=key[1], page_id=page_id, upc=tags.upc,
                release_date=(tags.date or None) and tags.date[:10],
                year=int(year_match.group(1)) if year_match else None,
                label_id=label_id, genre_id=genre_id,
            ),
        )
        # Later tracks fill what the first one's tags left blank.
        if album.genre_id is None and genre_id is not None:
            album.genre_id = genre_id
        if album.label_id is None and label_id is not None:
            album.label_id = label_id
        if album.upc is None and tags.upc:
            album.upc = tags.upc
        self._albums[key] = album.id
        return album.id

    # -- track writes ----------------------------------------------------------------------
    def _describe(self, session: Session, fa: FileAnalysis) -> tuple[dict[str, Any], list[TrackCredit]]:
        """The track's column values and its credits (pages created as needed)."""
        tags = fa.tags
        main, featured = split_credits(tags.artist or tags.albumartist or "")
        album_artist = tags.albumartist or (main[0] if main else None)
        album_page = self.page_id(session, album_artist)
        values = dict(
            album_id=self.album_id(session, album_page, fa),
            # tags are cleaned already (ingest.tags); a file name standing in for a title is not
            title=tags.title or clean_text(fa.relpath.rsplit("/", 1)[-1], TEXT_LIMITS["title"])[0],
            isrc=tags.isrc, raw_tags=tags.raw or None,
            track_number=tags.track_number, disc_number=tags.disc_number, duration=fa.duration,
            sample_rate=fa.sample_rate, channels=fa.channels, audio_format=fa.audio_format,
            audio_path=fa.path, content_hash=fa.content_hash, file_size=fa.size, file_mtime=fa.mtime,
        )
        credits: list[TrackCredit] = []
        seen: set[int] = set()
        for role, names in (("main", main or [album_artist]), ("featured", featured)):
            for name in names:
                pid = self.page_id(session, name)
                if pid in seen:
                    continue
                seen.add(pid)
                credits.append(TrackCredit(page_id=pid, role=role, position=len(credits)))
        return values, credits

    def insert_tracks(self, session: Session, analyses: list[FileAnalysis]) -> dict[str, int]:
        """Insert one new track per analysis (one statement, distinct content hashes) and return
        content hash -> id of those inserted. An analysis missing from the result is a recording
        (or a path) another writer's track already holds: the database's unique keys decide
        (ON CONFLICT DO NOTHING), so two writers racing on one recording never both insert it."""
        if not analyses:
            return {}
        described = [self._describe(session, fa) for fa in analyses]
        rows = session.execute(insert_ignoring_conflicts(session, Track)
                               .values([values for values, _ in described])
                               .returning(Track.id, Track.content_hash)).all()
        inserted = {content: track_id for track_id, content in rows}
        for fa, (_, credits) in zip(analyses, described):
            track_id = inserted.get(fa.content_hash)
            if track_id is not None:
                for credit in credits:
                    credit.track_id = track_id
                session.add_all(credits)
        return inserted

    def update_track(self, session: Session, track: Track, fa: FileAnalysis) -> None:
        # Drop the old credits first: the unit of work would otherwise insert the new rows
        # before deleting old ones with the same (track, page) key.
        track.credits.clear()
        session.flush()
        values, credits = self._describe(session, fa)
        for name, value in values.items():
            setattr(track, name, value)
        track.credits = credits
