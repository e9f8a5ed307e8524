"""Browsing the catalog (``artdb ls``, ``artdb show``), after beets' ``beet ls`` / ``beet info``.

:func:`list_catalog` lists pages, albums or tracks matching a small query: words match names and
titles, ``field:value`` matches one field (``name``, ``album``, ``title``, ``genre``, ``label``:
case-insensitive substrings; ``year``: ``2001``, ``2001..2005``, ``..2005``, ``2001..``); every
term must match. Each row is a dict of the level's :data:`FIELDS`, which ``--format`` templates
(``$name - $title``) read. :func:`page_details` and :func:`album_details` gather what a curator
wants to see about one page or album: albums with years, labels and track counts, open findings
(with the clusters the page's albums fall in), the decisions that touched it, and, when the active
model has vectors, its nearest pages or albums.
"""

from __future__ import annotations

import re
from string import Template
from typing import Any

from sqlalchemy import and_, exists, func, select

from artdb.core.analysis.findings import Partition, cluster_number, page_label
from artdb.core.config import Paths
from artdb.core.errors import ArtdbError, CatalogError, ConfigError
from artdb.core.learn.registry import active_model
from artdb.core.vectors.neighbors import nearest, resolve_query
from artdb.db.models import (
    Album,
    ArtistPage,
    AuditFinding,
    CuratorDecision,
    Genre,
    Label,
    SynonymCandidate,
    Track,
    TrackCredit,
)
from artdb.db.session import Catalog

LEVELS = ("pages", "albums", "tracks")
# What each level's rows hold (the names --format templates use).
FIELDS = {
    "pages": ("id", "name", "albums", "tracks", "first_year", "last_year"),
    "albums": ("id", "title", "name", "page_id", "year", "label", "genre", "tracks", "upc"),
    "tracks": ("id", "title", "album", "album_id", "name", "page_id", "year", "genre", "label",
               "disc", "track", "duration", "format", "path"),
}
QUERY_FIELDS = ("name", "album", "title", "genre", "label", "year")
_YEAR = re.compile(r"^(\d{1,4})?(\.\.)?(\d{1,4})?$")


# -- the query -------------------------------------------------------------------------------------
def parse_query(terms: list[str] | tuple[str, ...]) -> list[tuple[str | None, str]]:
    """``["eclipse", "year:2001..2005"]`` -> ``[(None, "eclipse"), ("year", "2001..2005")]``; an
    unknown field is a ConfigError naming the known ones."""
    out: list[tuple[str | None, str]] = []
    for term in terms:
        field, sep, value = term.partition(":")
        if sep and field.lower() in QUERY_FIELDS:
            if not value.strip():
                raise ConfigError(f"query term {term!r} has no value (e.g. {field}:something)")
            out.append((field.lower(), value.strip()))
        elif sep and field.isidentifier():
            raise ConfigError(f"unknown field {field!r} in query term {term!r}: use one of "
                              f"{', '.join(QUERY_FIELDS)} (or a plain word)")
        elif term.strip():
            out.append((None, term.strip()))
    return out


def _year_range(value: str) -> tuple[int | None, int | None]:
    m = _YEAR.match(value)
    if not m or not (m.group(1) or m.group(3)) or (m.group(2) is None and m.group(3)):
        raise ConfigError(f"year:{value} is not a year or a range (2001, 2001..2005, ..2005, 2001..)")
    lo, hi = m.group(1), m.group(3)
    if m.group(2) is None:
        return int(lo), int(lo)
    return (int(lo) if lo else None), (int(hi) if hi else None)


def _match(column, value: str):
    return column.icontains(value, autoescape=True)


def _album_condition(field: str, value: str, joined: bool = True):
    """A condition on Album for one query term; ``joined``: the query joins Label and Genre
    already (else they are looked up in a subquery)."""
    if field in ("album", "title"):
        return _match(Album.title, value)
    if field in ("genre", "label"):
        table = Genre if field == "genre" else Label
        key = Album.genre_id if field == "genre" else Album.label_id
        cond = _match(table.name, value)
        return cond if joined else exists().where(table.id == key, cond)
    lo, hi = _year_range(value)
    conds = [Album.year.is_not(None)]
    if lo is not None:
        conds.append(Album.year >= lo)
    if hi is not None:
        conds.append(Album.year <= hi)
    return and_(*conds)


def _nulls_last(column) -> tuple:
    """Order by ``column`` with missing values last, on SQLite and PostgreSQL alike (their
    defaults differ)."""
    return column.is_(None), column


def _name(value: str):
    return _match(ArtistPage.display_name, value)


# -- listing ---------------------------------------------------------------------------------------
def list_catalog(catalog: Catalog, level: str = "pages", terms: list[str] | tuple[str, ...] = (),
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Pages, albums or tracks matching ``terms`` (see the module doc), in name order."""
    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")
    query = parse_query(terms)
    with catalog.session() as s:
        rows = {"pages": _pages, "albums": _albums, "tracks": _tracks}[level](s, query, limit)
    return rows


def _pages(s, query, limit) -> list[dict[str, Any]]:
    albums = (select(Album.page_id, func.count(Album.id).label("albums"),
                     func.min(Album.year).label("first"), func.max(Album.year).label("last"))
              .group_by(Album.page_id).subquery())
    tracks = (select(Album.page_id, func.count(Track.id).label("tracks"))
              .join(Track, Track.album_id == Album.id).group_by(Album.page_id).subquery())
    q = (select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation,
                func.coalesce(albums.c.albums, 0), func.coalesce(tracks.c.tracks, 0),
                albums.c.first, albums.c.last)
         .outerjoin(albums, albums.c.page_id == ArtistPage.id)
         .outerjoin(tracks, tracks.c.page_id == ArtistPage.id)
         .where(ArtistPage.merged_into_id.is_(None)))
    for field, value in query:
        if field in (None, "name"):
            q = q.where(_name(value))
        else:
            q = q.where(exists().where(Album.page_id == ArtistPage.id,
                                       _album_condition(field, value, joined=False)))
    q = q.order_by(ArtistPage.normalized_name, ArtistPage.disambiguation, ArtistPage.id).limit(limit)
    return [{"id": pid, "name": page_label(name, dis), "albums": n_albums, "tracks": n_tracks,
             "first_year": first, "last_year": last}
            for pid, name, dis, n_albums, n_tracks, first, last in s.execute(q)]


def _albums(s, query, limit) -> list[dict[str, Any]]:
    tracks = (select(Track.album_id, func.count(Track.id).label("tracks"))
              .group_by(Track.album_id).subquery())
    q = (select(Album.id, Album.title, ArtistPage.display_name, ArtistPage.disambiguation,
                Album.page_id, Album.year, Label.name, Genre.name,
                func.coalesce(tracks.c.tracks, 0), Album.upc)
         .join(ArtistPage, ArtistPage.id == Album.page_id)
         .outerjoin(Label, Label.id == Album.label_id).outerjoin(Genre, Genre.id == Album.genre_id)
         .outerjoin(tracks, tracks.c.album_id == Album.id))
    for field, value in query:
        if field is None:
            q = q.where(_name(value) | _match(Album.title, value))
        elif field == "name":
            q = q.where(_name(value))
        else:
            q = q.where(_album_condition(field, value))
    q = q.order_by(ArtistPage.normalized_name, ArtistPage.disambiguation, *_nulls_last(Album.year),
                   Album.normalized_title, Album.id).limit(limit)
    return [{"id": aid, "title": title, "name": page_label(name, dis), "page_id": pid, "year": year,
             "label": label, "genre": genre, "tracks": n, "upc": upc}
            for aid, title, name, dis, pid, year, label, genre, n, upc in s.execute(q)]


def _tracks(s, query, limit) -> list[dict[str, Any]]:
    q = (select(Track.id, Track.title, Album.title, Album.id, ArtistPage.display_name,
                ArtistPage.disambiguation, Album.page_id, Album.year, Genre.name, Label.name,
                Track.disc_number, Track.track_number, Track.duration, Track.audio_format,
                Track.audio_path)
         .join(Album, Album.id == Track.album_id).join(ArtistPage, ArtistPage.id == Album.page_id)
         .outerjoin(Label, Label.id == Album.label_id).outerjoin(Genre, Genre.id == Album.genre_id))
    for field, value in query:
        if field is None:
            q = q.where(_name(value) | _match(Album.title, value) | _match(Track.title, value))
        elif field == "name":
            q = q.where(_name(value))
        elif field == "title":
            q = q.where(_match(Track.title, value))
        else:
            q = q.where(_album_condition(field, value))
    q = q.order_by(ArtistPage.normalized_name, ArtistPage.disambiguation, Album.normalized_title,
                   *_nulls_last(Track.disc_number), *_nulls_last(Track.track_number), Track.title,
                   Track.id).limit(limit)
    return [{"id": tid, "title": title, "album": album, "album_id": aid, "name": page_label(name, dis),
             "page_id": pid, "year": year, "genre": genre, "label": label, "disc": disc,
             "track": number, "duration": round(duration, 1) if duration is not None else None,
             "format": fmt, "path": path}
            for (tid, title, album, aid, name, dis, pid, year, genre, label, disc, number, duration,
                 fmt, path) in s.execute(q)]


def format_row(template: str, row: dict[str, Any]) -> str:
    """``template`` (``$field`` / ``${field}``) filled from ``row``; a missing value prints as "-",
    an unknown field is a ConfigError naming the known ones."""
    try:
        return Template(template).substitute({k: "-" if v is None else v for k, v in row.items()})
    except KeyError as exc:
        raise ConfigError(f"unknown field ${exc.args[0]} in the format: use "
                          f"{', '.join('$' + k for k in row)}") from None
    except ValueError as exc:
        raise ConfigError(f"bad format {template!r}: {exc} (write $field or ${{field}}, "
                          "and $$ for a dollar sign)") from None


def default_line(level: str, row: dict[str, Any]) -> str:
    """How ``artdb ls`` prints a row without ``--format`` (missing facts left out)."""
    if level == "pages":
        years = ""
        if row["first_year"]:
            years = f", {row['first_year']}" + (f"–{row['last_year']}"
                                                if row["last_year"] != row["first_year"] else "")
        return (f"{row['name']}  (#{row['id']}: {_n(row['albums'], 'album')}, "
                f"{_n(row['tracks'], 'track')}{years})")
    if level == "albums":
        facts = [str(x) for x in (row["year"], row["label"]) if x] + [_n(row["tracks"], "track")]
        return f"{row['name']} - {row['title']}  (#{row['id']}: {', '.join(facts)})"
    return f"{row['name']} - {row['album']} - {row['title']}  (#{row['id']})"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- one page or album -------------------------------------------------------------------------------
def _decisions_about(s, pages: set[int], albums: set[int]) -> list[dict[str, Any]]:
    """Curator decisions whose undo record names one of ``pages`` or moved one of ``albums``."""
    out = []
    for d in s.scalars(select(CuratorDecision).order_by(CuratorDecision.id)):
        u = d.undo or {}
        moved = {row[0] for row in u.get("albums", []) if isinstance(row, (list, tuple)) and row}
        if pages & set(u.get("pages", [])) or albums & moved:
            out.append({"decision_id": d.id, "action": d.action,
                        "finding": f"{(d.finding_kind or '?')[0]}{d.finding_id}" if d.finding_id else None,
                        "created_at": d.created_at, "undone_at": d.undone_at, "note": d.note})
    return out


def _open_findings(s, page_id: int) -> tuple[list[dict[str, Any]], dict[int, int], list[dict[str, Any]]]:
    """The page's open homonym findings, album -> cluster of the newest, and its open synonym
    candidates."""
    findings, cluster_of = [], {}
    for f in s.scalars(select(AuditFinding).where(AuditFinding.page_id == page_id,
                                                  AuditFinding.status == "open")
                       .order_by(AuditFinding.id)):
        part = Partition.from_proposal(f.proposal)
        cluster_of = {a: cluster_number(c) for a, c in part.cluster_of.items()}
        findings.append({"ref": f"h{f.id}", "score": f.score, "n_clusters": f.n_clusters,
                         "replaces": f"h{f.replaces_id}" if f.replaces_id else None})
    synonyms = []
    cands = s.scalars(select(SynonymCandidate).where(
        SynonymCandidate.status == "open",
        (SynonymCandidate.page_a_id == page_id) | (SynonymCandidate.page_b_id == page_id))
        .order_by(SynonymCandidate.score.desc(), SynonymCandidate.id)).all()
    others = {c.page_b_id if c.page_a_id == page_id else c.page_a_id for c in cands}
    labels = {pid: page_label(n, d) for pid, n, d in s.execute(
        select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
        .where(ArtistPage.id.in_(others)))} if others else {}
    for c in cands:
        other = c.page_b_id if c.page_a_id == page_id else c.page_a_id
        synonyms.append({"ref": f"s{c.id}", "score": c.score, "other_page_id": other,
                         "other_page": labels.get(other), "kind": "variant" if c.name_score > 0 else "alias",
                         "audio_score": c.audio_score, "name_score": c.name_score})
    return findings, cluster_of, synonyms


def _nearest(catalog: Catalog, paths: Paths | None, level: str, ref: int, k: int
             ) -> tuple[list[dict[str, Any]], str | None]:
    """The ``k`` nearest pages or albums under the active model, or why there are none."""
    if k <= 0 or paths is None:
        return [], None
    model = active_model(catalog)
    if model is None:
        return [], "no active model (artdb train, or artdb models activate)"
    try:
        _, found = nearest(catalog, paths, model, str(ref), level=level, k=k)
    except ArtdbError as exc:
        return [], str(exc)
    return [{"id": n.id, "name": n.name, "page": n.page, "page_id": n.page_id,
             "score": round(n.score, 4), "model": model.name} for n in found], None


def page_details(catalog: Catalog, paths: Paths | None, page: str | int, neighbours: int = 5
                 ) -> dict[str, Any]:
    """Everything about one page (an id, a name or a label): see the module doc."""
    pid = resolve_query(catalog, str(page), "artist")
    with catalog.session() as s:
        pg = s.get(ArtistPage, pid)
        merged_into = s.get(ArtistPage, pg.merged_into_id) if pg.merged_into_id else None
        aliases = s.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
                            .where(ArtistPage.merged_into_id == pid).order_by(ArtistPage.id)).all()
        findings, cluster_of, synonyms = _open_findings(s, pid)
        album_rows = _page_albums(s, pid)
        for a in album_rows:
            a["cluster"] = cluster_of.get(a["id"])
        featured = s.scalar(select(func.count()).select_from(TrackCredit)
                            .join(Track, Track.id == TrackCredit.track_id)
                            .join(Album, Album.id == Track.album_id)
                            .where(TrackCredit.page_id == pid, Album.page_id != pid))
        decisions = _decisions_about(s, {pid}, set())
        out = {
            "id": pid, "name": page_label(pg.display_name, pg.disambiguation),
            "display_name": pg.display_name, "disambiguation": pg.disambiguation or None,
            "merged_into": ({"page_id": merged_into.id,
                             "page": page_label(merged_into.display_name, merged_into.disambiguation)}
                            if merged_into else None),
            "merged_from": [{"page_id": i, "page": page_label(n, d)} for i, n, d in aliases],
            "albums": album_rows, "tracks": sum(a["tracks"] for a in album_rows),
            "credited_on_other_albums": featured, "open_findings": findings,
            "synonym_candidates": synonyms, "decisions": decisions,
        }
    out["nearest_pages"], out["nearest_note"] = _nearest(catalog, paths, "artist", pid, neighbours)
    return out


def _page_albums(s, pid: int) -> list[dict[str, Any]]:
    tracks = (select(Track.album_id, func.count(Track.id).label("tracks"))
              .group_by(Track.album_id).subquery())
    q = (select(Album.id, Album.title, Album.year, Label.name, Genre.name,
                func.coalesce(tracks.c.tracks, 0))
         .outerjoin(Label, Label.id == Album.label_id).outerjoin(Genre, Genre.id == Album.genre_id)
         .outerjoin(tracks, tracks.c.album_id == Album.id)
         .where(Album.page_id == pid)
         .order_by(*_nulls_last(Album.year), Album.normalized_title, Album.id))
    return [{"id": aid, "title": title, "year": year, "label": label, "genre": genre, "tracks": n}
            for aid, title, year, label, genre, n in s.execute(q)]


def album_details(catalog: Catalog, paths: Paths | None, album: str | int, neighbours: int = 5
                  ) -> dict[str, Any]:
    """Everything about one album (an id or "Artist - Title"): its page, facts, tracks (with
    their credits), the cluster an open finding puts it in, decisions that moved it, and its
    nearest albums under the active model."""
    aid = resolve_query(catalog, str(album), "album")
    with catalog.session() as s:
        alb = s.get(Album, aid)
        pg = s.get(ArtistPage, alb.page_id)
        _, cluster_of, _ = _open_findings(s, pg.id)
        finding = s.scalars(select(AuditFinding.id).where(AuditFinding.page_id == pg.id,
                                                          AuditFinding.status == "open")
                            .order_by(AuditFinding.id.desc())).first()
        credits: dict[int, list[str]] = {}
        for tid, name, dis, role in s.execute(
                select(TrackCredit.track_id, ArtistPage.display_name, ArtistPage.disambiguation,
                       TrackCredit.role)
                .join(ArtistPage, ArtistPage.id == TrackCredit.page_id)
                .join(Track, Track.id == TrackCredit.track_id)
                .where(Track.album_id == aid).order_by(TrackCredit.track_id, TrackCredit.position)):
            role_note = "" if role == "main" else f" ({role})"
            credits.setdefault(tid, []).append(page_label(name, dis) + role_note)
        tracks = [{"id": t.id, "disc": t.disc_number, "track": t.track_number, "title": t.title,
                   "duration": round(t.duration, 1) if t.duration is not None else None,
                   "isrc": t.isrc, "format": t.audio_format, "path": t.audio_path,
                   "credits": credits.get(t.id, [])}
                  for t in s.scalars(select(Track).where(Track.album_id == aid).order_by(
                      *_nulls_last(Track.disc_number), *_nulls_last(Track.track_number),
                      Track.title, Track.id))]
        out = {
            "id": aid, "title": alb.title, "page_id": pg.id,
            "page": page_label(pg.display_name, pg.disambiguation), "year": alb.year,
            "release_date": alb.release_date, "label": alb.label.name if alb.label else None,
            "genre": alb.genre.name if alb.genre else None, "upc": alb.upc, "tracks": tracks,
            "cluster": cluster_of.get(aid), "finding": f"h{finding}" if finding else None,
            "decisions": _decisions_about(s, set(), {aid}),
        }
    out["nearest_albums"], out["nearest_note"] = _nearest(catalog, paths, "album", aid, neighbours)
    return out


def show(catalog: Catalog, paths: Paths | None, ref: str, album: bool = False, neighbours: int = 5
         ) -> dict[str, Any]:
    """:func:`page_details` or :func:`album_details` for ``ref``: an album with ``album``, else the
    page it names, else (an "Artist - Title" that names no page) the album."""
    if album:
        return {"kind": "album", **album_details(catalog, paths, ref, neighbours)}
    try:
        return {"kind": "page", **page_details(catalog, paths, ref, neighbours)}
    except CatalogError:
        if " - " not in str(ref):
            raise
    return {"kind": "album", **album_details(catalog, paths, ref, neighbours)}


__all__ = ["FIELDS", "LEVELS", "QUERY_FIELDS", "album_details", "default_line", "format_row",
           "list_catalog", "page_details", "parse_query", "show"]
