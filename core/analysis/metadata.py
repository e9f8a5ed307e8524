"""Metadata evidence beside audio: what the tags say about two albums (or two groups of albums).

Each album is read once from the catalog into an :class:`AlbumMeta` (label, year, genre, UPC
company prefix, ISRC registrants and countries, script of its titles, credited pages other than
its own). :func:`pair_features` turns two albums into signed evidence, one number per
:data:`FEATURES` entry: ``+1`` the facts agree (same label, a shared ISRC registrant...), ``-1``
they disagree, and **0 when either side is unknown** — a missing value is never evidence, in
either direction, whatever weight the fusion (:mod:`artdb.core.analysis.fusion`) gives the
feature. The year feature is graded: ``clip((B - gap) / B, -1, 1)`` with ``B`` the year gap the
fusion learnt as the boundary between "same artist" and "another artist", so an unknown year counts
exactly as a gap of ``B`` years, i.e. as no evidence.

:func:`compare_groups` describes two groups of albums (two proposed clusters, an album and a
candidate artist) in facts a curator can check — labels, years, registrants, genres, scripts,
shared credits — and :func:`reasons` turns those facts, ranked by how much the fusion weighed
each, into the sentences ``review``, ``--json`` and the HTML report show.

The album-artist string is not a feature of its own: a page *is* the album-artist string (pages are
keyed by it, :mod:`artdb.core.names`), so it is equal for every album of a page, and between two
pages it is the synonym search's name score.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from artdb.db.models import Album, ArtistPage, Genre, Label, Track, TrackCredit

# The features, in the order of :func:`pair_features` (the fusion adds "audio" in front).
FEATURES = ("label", "isrc_registrant", "isrc_country", "upc_prefix", "year", "genre", "script",
            "credits")
# Digits of a UPC/EAN taken as the company prefix (GS1 prefixes are 6-10 digits: 6 is the part
# every one of them shares).
UPC_PREFIX_DIGITS = 6
# A fact whose feature moves the fusion's logit by less than this is not worth a reason.
MIN_CONTRIBUTION = 0.05
# Year boundary before the fusion has learnt one (years apart at which a pair is neutral).
DEFAULT_YEAR_BOUNDARY = 10.0


@dataclass(frozen=True)
class AlbumMeta:
    """What the catalog's tags say about one album (``None`` / empty = unknown)."""

    album_id: int
    label: str | None = None
    year: int | None = None  # first year: tagged, or its ISRCs' when earlier (reissues)
    genre: str | None = None
    upc_prefix: str | None = None
    registrants: frozenset[str] = frozenset()  # ISRC country + registrant, e.g. "GB-ABC"
    countries: frozenset[str] = frozenset()  # ISRC country codes
    script: str | None = None  # the main Unicode script of the album and track titles
    credits: frozenset[str] = frozenset()  # names of credited pages other than the album's own

    @property
    def known(self) -> bool:
        """Whether any fact is known (a catalog of untagged files has none)."""
        return any((self.label, self.year, self.genre, self.upc_prefix, self.registrants,
                    self.credits))


# -- reading single values -------------------------------------------------------------------------
def isrc_parts(isrc: str | None) -> tuple[str, str] | None:
    """``(country, registrant)`` of an ISRC (ISO 3901: CC-XXX-YY-NNNNN, 12 characters, hyphens
    optional): the 2-letter country and the 3-character registrant code. None if malformed."""
    if not isrc:
        return None
    code = isrc.replace("-", "").strip().upper()
    if len(code) != 12 or not code[:2].isalpha() or not code[2:5].isalnum() or not code[7:].isdigit():
        return None
    return code[:2], code[2:5]


def isrc_year(isrc: str | None, release_year: int | None = None) -> int | None:
    """The year of reference of an ISRC (its YY digits): the latest year ending in YY that is not
    after ``release_year`` (a recording is registered before or when it is released), or, without
    a release year, not after 2029. None if malformed."""
    if isrc_parts(isrc) is None:
        return None
    yy = int(isrc.replace("-", "").strip()[5:7])
    limit = release_year if release_year is not None else 2029
    year = (limit // 100) * 100 + yy
    return year if year <= limit else year - 100


def upc_prefix(upc: str | None, digits: int = UPC_PREFIX_DIGITS) -> str | None:
    """The company-prefix part of a UPC-A (12 digits) or EAN-13 (13; a leading 0 is the UPC-A's
    own), or None if it is not one."""
    if not upc:
        return None
    code = "".join(ch for ch in str(upc) if not ch.isspace())
    if not code.isdigit() or len(code) not in (12, 13):
        return None
    if len(code) == 13 and code[0] == "0":
        code = code[1:]
    return code[:digits]


def text_script(texts: Iterable[str]) -> str | None:
    """The Unicode script most letters of ``texts`` are written in ("LATIN", "CYRILLIC", "CJK",
    "HANGUL", "ARABIC", …: the first word of each letter's Unicode name); None without letters.
    Hiragana and katakana count as one "KANA"."""
    counts: Counter[str] = Counter()
    for text in texts:
        for ch in text or "":
            if not ch.isalpha():
                continue
            try:
                word = unicodedata.name(ch).split()[0]
            except ValueError:
                continue
            counts["KANA" if word in ("HIRAGANA", "KATAKANA") else word] += 1
    return counts.most_common(1)[0][0] if counts else None


# -- reading the catalog ---------------------------------------------------------------------------
def album_metadata(session, album_ids: Iterable[int] | None = None) -> dict[int, AlbumMeta]:
    """Album id -> :class:`AlbumMeta` for ``album_ids`` (every album when None)."""
    wanted = None if album_ids is None else sorted({int(a) for a in album_ids})
    rows: list = []
    tracks: list = []
    credits: list = []
    chunks = [None] if wanted is None else [wanted[i:i + 500] for i in range(0, len(wanted), 500)]
    for chunk in chunks:
        q = (select(Album.id, Album.title, Album.page_id, Album.year, Album.upc, Label.name,
                    Genre.name)
             .outerjoin(Label, Album.label_id == Label.id).outerjoin(Genre, Album.genre_id == Genre.id))
        tq = select(Track.album_id, Track.isrc, Track.title)
        cq = (select(Track.album_id, TrackCredit.page_id, ArtistPage.display_name)
              .join(TrackCredit, TrackCredit.track_id == Track.id)
              .join(ArtistPage, ArtistPage.id == TrackCredit.page_id))
        if chunk is not None:
            q, tq, cq = (q.where(Album.id.in_(chunk)), tq.where(Track.album_id.in_(chunk)),
                         cq.where(Track.album_id.in_(chunk)))
        rows += session.execute(q).all()
        tracks += session.execute(tq).all()
        credits += session.execute(cq).all()
    isrcs: dict[int, list[tuple[str, str]]] = {}
    codes: dict[int, list[str]] = {}
    titles: dict[int, list[str]] = {}
    for aid, isrc, title in tracks:
        parts = isrc_parts(isrc)
        if parts:
            isrcs.setdefault(aid, []).append(parts)
            codes.setdefault(aid, []).append(isrc)
        titles.setdefault(aid, []).append(title or "")
    page_of = {aid: pid for aid, _, pid, *_ in rows}
    credited: dict[int, set[str]] = {}
    for aid, pid, name in credits:
        if pid != page_of.get(aid):
            credited.setdefault(aid, set()).add(name)
    out = {}
    for aid, title, _pid, year, upc, label, genre in rows:
        parts = isrcs.get(aid, [])
        # the album's first year: its tagged year, or its recordings' ISRC year when earlier (a
        # reissue is tagged with its new date; its recordings keep their ISRCs)
        years = [y for y in [year or None, *(isrc_year(c, year or None) for c in codes.get(aid, []))]
                 if y is not None]
        out[aid] = AlbumMeta(
            album_id=aid, label=label or None, year=min(years) if years else None,
            genre=genre or None,
            upc_prefix=upc_prefix(upc), registrants=frozenset(f"{c}-{r}" for c, r in parts),
            countries=frozenset(c for c, _ in parts),
            script=text_script([title or "", *titles.get(aid, [])]),
            credits=frozenset(credited.get(aid, ())))
    return out


def catalog_has_metadata(session) -> bool:
    """Whether any album carries a label, a year or a genre, or any track an ISRC."""
    return session.execute(select(Album.id).where(
        (Album.label_id.is_not(None)) | (Album.year.is_not(None)) | (Album.genre_id.is_not(None))
    ).limit(1)).first() is not None or session.execute(
        select(Track.id).where(Track.isrc.is_not(None)).limit(1)).first() is not None


# -- evidence of a pair of albums ------------------------------------------------------------------
def _same(a: Any, b: Any) -> float:
    """+1 equal, -1 different, 0 if either is unknown."""
    if a is None or b is None:
        return 0.0
    return 1.0 if a == b else -1.0


def _overlap(a: frozenset, b: frozenset) -> float:
    """+1 the sets share a member, -1 they are disjoint, 0 if either is empty (unknown)."""
    if not a or not b:
        return 0.0
    return 1.0 if a & b else -1.0


def year_evidence(gap: float | None, boundary: float = DEFAULT_YEAR_BOUNDARY) -> float:
    """``clip((boundary - gap) / boundary, -1, 1)``; 0 for an unknown gap (= a gap of ``boundary``)."""
    if gap is None:
        return 0.0
    b = max(float(boundary), 1e-6)
    return float(np.clip((b - gap) / b, -1.0, 1.0))


def year_gap(a: AlbumMeta, b: AlbumMeta) -> int | None:
    return None if a.year is None or b.year is None else abs(a.year - b.year)


def pair_features(a: AlbumMeta, b: AlbumMeta,
                  year_boundary: float = DEFAULT_YEAR_BOUNDARY) -> np.ndarray:
    """The evidence that ``a`` and ``b`` are by one artist, one value per :data:`FEATURES` entry
    (+1 agree, -1 disagree, 0 unknown; "year" graded, "credits" only ever +1 or 0: two albums
    without a common guest say nothing)."""
    return np.array([
        _same(a.label, b.label),
        _overlap(a.registrants, b.registrants),
        _overlap(a.countries, b.countries),
        _same(a.upc_prefix, b.upc_prefix),
        year_evidence(year_gap(a, b), year_boundary),
        _same(a.genre, b.genre),
        _same(a.script, b.script),
        1.0 if a.credits & b.credits else 0.0,
    ], dtype=np.float64)


def pair_matrix(metas: Sequence[AlbumMeta], year_boundary: float = DEFAULT_YEAR_BOUNDARY
                ) -> np.ndarray:
    """``[n_pairs, len(FEATURES)]`` for every pair ``i < j`` of ``metas``, in SciPy's condensed
    order (row of pair (i, j) = the position of d(i, j) in a condensed distance matrix)."""
    n = len(metas)
    out = np.zeros((n * (n - 1) // 2, len(FEATURES)), dtype=np.float64)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            out[k] = pair_features(metas[i], metas[j], year_boundary)
            k += 1
    return out


def fit_year_boundary(gaps: np.ndarray, same: np.ndarray, default: float = DEFAULT_YEAR_BOUNDARY
                      ) -> float:
    """The year gap that best separates same-artist pairs (gap <= boundary) from the others
    (balanced accuracy over integer candidates 1..40); ``default`` without both kinds of pairs.
    Pairs with an unknown gap (NaN) are ignored."""
    gaps = np.asarray(gaps, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    ok = np.isfinite(gaps)
    g, s = gaps[ok], same[ok]
    if not s.any() or s.all():
        return float(default)
    best, best_acc = float(default), -1.0
    for cand in range(1, 41):
        acc = 0.5 * ((g[s] <= cand).mean() + (g[~s] > cand).mean())
        if acc > best_acc + 1e-12:
            best, best_acc = float(cand), acc
    return best


# -- two groups of albums, in words ----------------------------------------------------------------
@dataclass
class GroupComparison:
    """Facts about two groups of albums (``a`` and ``b``), each set ``None`` when one side is
    unknown, and the reasons they give, strongest first."""

    labels: tuple[list[str], list[str]] | None = None
    years: tuple[tuple[int, int], tuple[int, int]] | None = None
    registrants: tuple[list[str], list[str]] | None = None
    genres: tuple[list[str], list[str]] | None = None
    scripts: tuple[list[str], list[str]] | None = None
    upc_prefixes: tuple[list[str], list[str]] | None = None
    shared_credits: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def _sets(a: Iterable, b: Iterable) -> tuple[list, list] | None:
    sa, sb = sorted({x for x in a if x}), sorted({x for x in b if x})
    return (sa, sb) if sa and sb else None


def compare_groups(a: Sequence[AlbumMeta], b: Sequence[AlbumMeta]) -> GroupComparison:
    """What the tags of group ``a`` and group ``b`` have in common and where they differ."""
    ya = [m.year for m in a if m.year is not None]
    yb = [m.year for m in b if m.year is not None]
    shared = sorted(set().union(*(m.credits for m in a)) & set().union(*(m.credits for m in b))) \
        if a and b else []
    return GroupComparison(
        labels=_sets((m.label for m in a), (m.label for m in b)),
        years=((min(ya), max(ya)), (min(yb), max(yb))) if ya and yb else None,
        registrants=_sets((r for m in a for r in m.registrants), (r for m in b for r in m.registrants)),
        genres=_sets((m.genre for m in a), (m.genre for m in b)),
        scripts=_sets((m.script for m in a), (m.script for m in b)),
        upc_prefixes=_sets((m.upc_prefix for m in a), (m.upc_prefix for m in b)),
        shared_credits=shared)


def _names(values: list[str], limit: int = 3) -> str:
    return ", ".join(values[:limit]) + (" …" if len(values) > limit else "")


def _span(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}–{r[1]}"


def _shared_or_not(sides: tuple[list[str], list[str]], shared: str, differ: str) -> str:
    """"<shared> A" when the two sides have a value in common, else "<differ>: A vs B"."""
    a, b = sides
    common = sorted(set(a) & set(b))
    return f"{shared} {_names(common)}" if common else f"{differ}: {_names(a)} vs {_names(b)}"


def fact_sentences(c: GroupComparison) -> dict[str, str]:
    """One sentence per known fact, keyed by the :data:`FEATURES` entry it speaks for."""
    out: dict[str, str] = {}
    if c.labels:
        out["label"] = _shared_or_not(c.labels, "share label", "labels never overlap")
    if c.years:
        (a0, a1), (b0, b1) = c.years
        overlap = a0 <= b1 and b0 <= a1
        gap = 0 if overlap else max(a0, b0) - min(a1, b1)
        out["year"] = (f"years overlap: {_span(c.years[0])} and {_span(c.years[1])}" if overlap else
                       f"years {_span(c.years[0])} vs {_span(c.years[1])} "
                       f"({gap} year{'' if gap == 1 else 's'} apart)")
    if c.registrants:
        out["isrc_registrant"] = _shared_or_not(c.registrants, "share ISRC registrant",
                                                "ISRC registrants differ")
    if c.upc_prefixes:
        out["upc_prefix"] = _shared_or_not(c.upc_prefixes, "share UPC prefix", "UPC prefixes differ")
    if c.genres:
        out["genre"] = _shared_or_not(c.genres, "same genre", "genres differ")
    if c.scripts:
        sa, sb = c.scripts
        if not set(sa) & set(sb):
            out["script"] = f"titles in other scripts: {_names(sa)} vs {_names(sb)}"
    if c.shared_credits:
        out["credits"] = f"shared credits: {_names(c.shared_credits)}"
    return out


def reasons(comparison: GroupComparison, weights: Mapping[str, float] | None = None,
            audio: str | None = None, audio_weight: float | None = None,
            limit: int = 4, toward: int | None = None) -> list[str]:
    """The strongest reasons, in words, at most ``limit``.

    ``weights``: each feature's contribution to the fusion's logit for these groups (facts of a
    feature contributing less than :data:`MIN_CONTRIBUTION` are left out); without them the facts
    come in :data:`FEATURES` order after the ``audio`` sentence. ``audio_weight`` places the
    audio sentence among them.
    ``toward``: the decision the reasons explain, -1 "another artist" (a split), +1 "the same
    artist" (a placement): facts pointing that way come first, strongest first, and the ones
    against it follow, prefixed "but". Without ``toward``, by strength alone.
    """
    facts = fact_sentences(comparison)
    ranked: list[tuple[int, float, int, str]] = []
    for i, (key, text) in enumerate(facts.items()):
        w = float(weights.get(key, 0.0)) if weights else 0.0
        if weights is not None and abs(w) < MIN_CONTRIBUTION:
            continue  # a feature the decision (nearly) did not use is not a reason
        ranked.append((_side(w, toward), abs(w), -i, text))
    if audio:
        if audio_weight is None:
            ranked.append((1, float("inf"), 1, audio))
        else:
            ranked.append((_side(audio_weight, toward), abs(audio_weight), 1, audio))
    ranked.sort(reverse=True)
    return [("but " + text if side < 0 else text) for side, _, _, text in ranked[:limit]]


def _side(weight: float, toward: int | None) -> int:
    """1 if ``weight`` points the way of ``toward`` (or there is no way), -1 if against."""
    if toward is None or weight == 0.0:
        return 1
    return 1 if (weight > 0) == (toward > 0) else -1


def reason_lines(reasons_: Sequence[dict[str, Any]]) -> list[str]:
    """``"cluster 2 vs 1: labels never overlap: …; years …; audio margin +0.08"``, one per cluster."""
    return [f"cluster {r['cluster']} vs {r['versus']}: " + "; ".join(r["reasons"])
            for r in reasons_ if r.get("reasons")]


__all__ = [
    "DEFAULT_YEAR_BOUNDARY", "FEATURES", "AlbumMeta", "GroupComparison", "album_metadata",
    "catalog_has_metadata", "compare_groups", "fact_sentences", "fit_year_boundary", "isrc_parts",
    "isrc_year",
    "pair_features", "pair_matrix", "reason_lines", "reasons", "text_script", "upc_prefix", "year_evidence",
    "year_gap",
]
