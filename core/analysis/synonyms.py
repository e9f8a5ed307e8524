"""Synonym discovery: pages with different names that sound like one artist.

A *unit* is something that may be one artist: an artist page (its page vector), and, for a page
flagged by the latest homonym audit (an open :class:`AuditFinding`), each proposed cluster of its
albums (the centroid of the cluster's album vectors) — a page mixing two artists has two candidate
artists of its own. Units go into a FAISS index; each unit's nearest units on pages with another
name, plus pages whose loose names (:func:`artdb.core.names.match_key`) are equal, are candidate
pairs. A pair of pages is scored by its best pair of units:

    score = W_AUDIO * audio + W_NAME * name + W_META * metadata      (each part in [0, 1])

``audio`` is the cosine similarity rescaled against the two units' usual neighbour similarity (see
:func:`calibrate`), ``name`` the loose-name similarity (1 for equal match keys), ``metadata`` the
mean of shared label, close release years and shared genre. The reasons for the weights and the
measured recall of planted pairs are in docs/synonyms.md. Audio carries most of the weight so that
an unrelated alias (no name similarity at all) still ranks high when the audio is strong, while a
similar name with unrelated audio does not.

Results are stored as an ``AuditRun(kind="synonym")`` with one ``SynonymCandidate`` per returned
pair. A candidate a curator rejected is not raised again while its evidence (the two pages' album
sets under the same model, :func:`artdb.core.analysis.findings.page_pair_hash`) is unchanged; pages
already merged into each other are never paired.

:func:`find_synonyms` runs in four stages, each a small function: neighbour units
(:func:`neighbour_units`), candidate pairs (:func:`candidate_pairs`), scoring (:func:`score_pairs`)
and storing (:func:`store_pairs`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, update

from artdb.core.analysis.findings import Partition, page_label, page_pair_hash
from artdb.core.config import Paths
from artdb.core.names import match_key, page_key
from artdb.core.vectors.aggregate import l2_normalize, mean_normalized
from artdb.core.vectors.index import open_level_index
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.core.vectors.neighbors import resolve_query
from artdb.db.models import (
    Album,
    ArtistPage,
    AuditFinding,
    AuditRun,
    CuratorDecision,
    Genre,
    Label,
    Model,
    SynonymCandidate,
)
from artdb.db.session import Catalog
from artdb.indexer import FaissIndex

log = logging.getLogger(__name__)

# Weights of the three parts of the score (sum to 1); see docs/synonyms.md.
W_AUDIO = 0.55
W_NAME = 0.35
W_META = 0.1
# Fuzzy name similarity below this (rapidfuzz, 0..1) counts as no similarity at all.
NAME_FLOOR = 0.6
# A fuzzy name match never scores as much as equal loose keys.
NAME_FUZZY_MAX = 0.9
# Release-year ranges this many years apart (or less) count as adjacent.
YEAR_ADJACENT = 2
YEAR_FADE = 8  # ... and the year evidence fades to 0 over this many further years
# Pages sharing a loose name are paired directly only in groups up to this size.
MAX_NAME_GROUP = 20


@dataclass
class SynonymPair:
    """Two pages that may be one artist, with the parts of their score."""

    page_a_id: int
    page_a: str
    page_b_id: int
    page_b: str
    score: float
    audio_score: float
    name_score: float
    metadata_score: float
    evidence: dict[str, Any] = field(default_factory=dict)
    evidence_hash: str = ""
    id: int | None = None  # the SynonymCandidate row, when stored
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Unit:
    """A candidate artist: a whole page (cluster None) or one proposed cluster of a flagged page."""

    page_id: int
    cluster: str | None
    album_ids: list[int]


@dataclass
class _Page:
    id: int
    name: str
    key: str  # the catalog key (normalized_name)
    loose: str  # match_key
    disambiguation: str
    root: int  # the page it is merged into (itself if not merged)

    @property
    def label(self) -> str:
        return page_label(self.name, self.disambiguation)


# -- parts of the score -----------------------------------------------------------------------------
def name_similarity(a: str, b: str) -> tuple[float, dict[str, Any]]:
    """Similarity of two page names in [0, 1] and its evidence.

    1.0 when their loose keys are equal ("Youssou N'Dour" / "Youssou Ndour"); otherwise the best of
    rapidfuzz's ``ratio`` and ``token_set_ratio`` on the loose keys, mapped linearly from
    ``NAME_FLOOR`` (0) to 1.0 (``NAME_FUZZY_MAX``), so unrelated names score exactly 0.
    """
    from rapidfuzz import fuzz

    ka, kb = match_key(a), match_key(b)
    ratio = fuzz.ratio(ka, kb) / 100.0
    token_set = fuzz.token_set_ratio(ka, kb) / 100.0
    # "Orbit-Meridian" keys to "orbitmeridian": spacing alone does not make two names differ.
    equal = bool(ka) and (ka == kb or ka.replace(" ", "") == kb.replace(" ", ""))
    if equal:
        score = 1.0
    else:
        best = max(ratio, token_set)
        score = NAME_FUZZY_MAX * float(np.clip((best - NAME_FLOOR) / (1.0 - NAME_FLOOR), 0.0, 1.0))
    return score, {"key_a": ka, "key_b": kb, "equal": equal, "ratio": round(ratio, 4),
                   "token_set_ratio": round(token_set, 4)}


@dataclass
class _AlbumMeta:
    year: int | None
    label: str | None
    genre: str | None


def metadata_similarity(albums_a: Iterable[_AlbumMeta], albums_b: Iterable[_AlbumMeta]
                        ) -> tuple[float, dict[str, Any]]:
    """Mean of three indicators in [0, 1]: a shared label, overlapping or adjacent release years
    (fading beyond ``YEAR_ADJACENT`` years apart), a shared genre. Unknown facts count 0."""
    a, b = list(albums_a), list(albums_b)
    labels = sorted({m.label for m in a if m.label} & {m.label for m in b if m.label})
    genres = sorted({m.genre for m in a if m.genre} & {m.genre for m in b if m.genre})
    ya = [m.year for m in a if m.year]
    yb = [m.year for m in b if m.year]
    gap = None
    year_part = 0.0
    if ya and yb:
        gap = max(0, max(min(ya), min(yb)) - min(max(ya), max(yb)))
        year_part = float(np.clip(1.0 - max(0, gap - YEAR_ADJACENT) / YEAR_FADE, 0.0, 1.0))
    label_part = 1.0 if labels else 0.0
    genre_part = 1.0 if genres else 0.0
    score = (label_part + year_part + genre_part) / 3.0
    return score, {
        "shared_labels": labels, "shared_genres": genres,
        "years_a": [min(ya), max(ya)] if ya else None, "years_b": [min(yb), max(yb)] if yb else None,
        "year_gap": gap, "label": label_part, "years": round(year_part, 4), "genre": genre_part,
    }


def calibrate(similarities: np.ndarray, reference: float | np.ndarray) -> np.ndarray:
    """Cosine similarities rescaled so ``reference`` maps to 0 and identical vectors to 1.

    An embedding's absolute cosine values depend on the model (the MFCC baseline puts nearly every
    pair of pages above 0.9), so only the excess over what an ordinary neighbour reaches is
    evidence. :func:`find_synonyms` uses, for a pair of units, the mean of the two units' *levels*
    (each unit's mean similarity to its ``k`` nearest units on other-name pages): a unit close to
    everything (a hub: generic production, a big mixed page) needs a closer match than a
    distinctive one. Values below the reference clip to 0.
    """
    s = np.asarray(similarities, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    span = np.maximum(1.0 - ref, 1e-6)
    return np.clip((s - ref) / span, 0.0, 1.0)


def combine(audio: float, name: float, metadata: float,
            weights: tuple[float, float, float] | None = None) -> float:
    wa, wn, wm = weights or (W_AUDIO, W_NAME, W_META)
    return wa * audio + wn * name + wm * metadata


# -- homonym findings as units ----------------------------------------------------------------------
def latest_homonym_run(catalog: Catalog, model: Model | None = None) -> AuditRun | None:
    """The newest homonym audit run (of ``model`` when it has one, else of any model)."""
    with catalog.session() as s:
        q = select(AuditRun).where(AuditRun.kind == "homonym").order_by(
            AuditRun.created_at.desc(), AuditRun.id.desc())
        if model is not None:
            run = s.scalars(q.where(AuditRun.model_id == model.id)).first()
            if run is not None:
                return run
        return s.scalars(q).first()


def homonym_clusters(catalog: Catalog) -> dict[int, dict[str, list[int]]]:
    """page id -> {cluster: album ids} for the open homonym findings.

    The audit keeps one open finding per page (a rerun supersedes the pages it audits), so every
    open finding counts, whichever run made it; a page with several (not expected) takes its newest.
    """
    with catalog.session() as s:
        rows = s.execute(select(AuditFinding.page_id, AuditFinding.proposal)
                         .join(AuditRun, AuditFinding.run_id == AuditRun.id)
                         .where(AuditRun.kind == "homonym", AuditFinding.status == "open")
                         .order_by(AuditFinding.id)).all()
    out = {}
    for page_id, proposal in rows:
        clusters = {str(c): albums for c, albums in Partition.from_proposal(proposal).clusters().items()}
        if len(clusters) >= 2:
            out[int(page_id)] = clusters
        elif proposal:
            log.debug("finding on page %s: proposal not understood, page vector only", page_id)
    return out


# -- reading the catalog ------------------------------------------------------------------------------
def _load_pages(s) -> dict[int, _Page]:
    rows = s.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.normalized_name,
                            ArtistPage.disambiguation, ArtistPage.merged_into_id)).all()
    parent = {r[0]: r[4] for r in rows}

    def root(pid: int) -> int:
        seen = set()
        while parent.get(pid) is not None and pid not in seen:
            seen.add(pid)
            pid = parent[pid]
        return pid

    return {r[0]: _Page(r[0], r[1], r[2], match_key(r[1]), r[3] or "", root(r[0])) for r in rows}


def _load_albums(s) -> tuple[dict[int, list[int]], dict[int, _AlbumMeta]]:
    rows = s.execute(
        select(Album.id, Album.page_id, Album.year, Label.name, Genre.name)
        .outerjoin(Label, Album.label_id == Label.id).outerjoin(Genre, Album.genre_id == Genre.id)
    ).all()
    by_page: dict[int, list[int]] = defaultdict(list)
    meta = {}
    for aid, pid, year, label, genre in rows:
        by_page[pid].append(aid)
        meta[aid] = _AlbumMeta(year, label, genre)
    return {p: sorted(v) for p, v in by_page.items()}, meta


def _rejected_hashes(s) -> set[str]:
    hashes = set(s.scalars(select(SynonymCandidate.evidence_hash)
                           .where(SynonymCandidate.status == "rejected")))
    hashes |= {h for h in s.scalars(
        select(CuratorDecision.evidence_hash).where(
            CuratorDecision.action == "reject", CuratorDecision.finding_kind == "synonym",
            CuratorDecision.undone_at.is_(None))) if h}
    return hashes


@dataclass
class _Snapshot:
    """What the search reads from the catalog, once."""

    pages: dict[int, _Page]
    albums_by_page: dict[int, list[int]]
    album_meta: dict[int, _AlbumMeta]
    rejected: set[str]  # evidence hashes of rejected candidates

    @classmethod
    def read(cls, catalog: Catalog) -> _Snapshot:
        with catalog.session() as s:
            return cls(_load_pages(s), *_load_albums(s), _rejected_hashes(s))


def _focus_page(catalog: Catalog, pages: dict[int, _Page], page: str | int | None) -> int | None:
    """The page a search is restricted to (the page it was merged into, if any)."""
    if page is None:
        return None
    focus = resolve_query(catalog, str(page), "artist")
    return pages[focus].root if focus in pages else focus


def _build_units(catalog, paths, model, pages, albums_by_page, device) -> tuple[list[Unit], np.ndarray]:
    page_index = open_level_index(catalog, paths, model, "artist", device=device)
    page_ids = page_index.index_ids()
    units: list[Unit] = []
    vectors = []
    live = np.array([int(p) in pages and pages[int(p)].root == int(p) for p in page_ids], dtype=bool)
    page_ids = page_ids[live]
    if len(page_ids):
        vectors.append(page_index.reconstruct(page_ids))
        units += [Unit(int(p), None, albums_by_page.get(int(p), [])) for p in page_ids]
    clusters = homonym_clusters(catalog)
    clusters = {p: c for p, c in clusters.items() if p in pages and pages[p].root == p}
    if clusters:
        album_index = open_level_index(catalog, paths, model, "album", device=device)
        wanted = np.array(sorted({a for c in clusters.values() for albums in c.values() for a in albums}),
                          dtype=np.int64)
        have = wanted[album_index.contains(wanted)] if len(wanted) else wanted
        album_vec = dict(zip(have.tolist(), album_index.reconstruct(have))) if len(have) else {}
        for pid, cl in sorted(clusters.items()):
            for label, albums in sorted(cl.items()):
                albums = [a for a in albums if a in album_vec]
                if not albums:
                    continue
                _, centroid = mean_normalized(np.stack([album_vec[a] for a in albums]),
                                              np.zeros(len(albums), dtype=np.int64))
                units.append(Unit(pid, label, albums))
                vectors.append(centroid)
    if not units:
        return [], np.zeros((0, model.dim), dtype=np.float32)
    return units, l2_normalize(np.concatenate(vectors))


def _other_name(pages: dict[int, _Page], a: int, b: int) -> bool:
    pa, pb = pages[a], pages[b]
    return a != b and pa.root != pb.root and pa.key != pb.key


# -- stage 1: neighbour units -----------------------------------------------------------------------
@dataclass
class Neighbours:
    """Each unit's nearest units on other-name pages, and the audio levels derived from them."""

    near: dict[int, list[tuple[int, float]]]  # unit -> [(unit, cosine)], nearest first
    level: dict[int, float]  # unit -> mean cosine to its neighbours (its usual similarity)
    reference: float  # the median level: for units without neighbours
    rank: dict[tuple[int, int], int]  # (unit, neighbour) -> 1-based rank

    def local_reference(self, i: int, j: int) -> float:
        """The cosine an ordinary neighbour of units ``i`` and ``j`` reaches (see :func:`calibrate`)."""
        return (self.level.get(i, self.reference) + self.level.get(j, self.reference)) / 2


@indexer_errors()  # the FAISS build and searches: the indexer's exceptions become core's
def neighbour_units(units: list[Unit], vectors: np.ndarray, pages: dict[int, _Page], k: int,
                    model_name: str) -> Neighbours:
    """The ``k`` nearest units on pages with another name, for every unit.

    Exact search for small catalogs, IVF (nprobe tuned for recall) for large ones: choose_index.
    Units of the same page and pages with the same catalog key are skipped, so more are asked for
    (doubling until every unit has ``k`` or all units were seen).
    """
    index = FaissIndex.build(vectors, np.arange(len(units), dtype=np.int64), model=model_name,
                             name="synonym-units")
    per_page = max(sum(1 for u in units if u.page_id == p) for p in {u.page_id for u in units})
    want = min(len(units), k + per_page + 1)
    near: dict[int, list[tuple[int, float]]] = {}
    while True:
        sims, ids = index.search(vectors, want)
        short = False
        for i, (row_s, row_i) in enumerate(zip(sims, ids)):
            keep = [(int(j), float(sc)) for j, sc in zip(row_i, row_s)
                    if j >= 0 and _other_name(pages, units[i].page_id, units[int(j)].page_id)]
            near[i] = keep[:k]
            short |= len(keep) < k
        if not short or want >= len(units):
            break
        want = min(len(units), want * 2)
    level = {i: float(np.mean([sc for _, sc in nb])) for i, nb in near.items() if nb}
    reference = float(np.median(list(level.values()))) if level else 0.0
    rank = {(i, j): r for i, nb in near.items() for r, (j, _) in enumerate(nb, 1)}
    return Neighbours(near, level, reference, rank)


# -- stage 2: candidate pairs -----------------------------------------------------------------------
@dataclass
class CandidatePair:
    """The best pair of units of two pages (``page_a < page_b``) and how it was found."""

    unit_a: int
    unit_b: int
    cosine: float
    source: str  # "audio" (a neighbour) or "name" (equal loose names)


def candidate_pairs(units: list[Unit], vectors: np.ndarray, pages: dict[int, _Page],
                    neighbours: Neighbours) -> dict[tuple[int, int], CandidatePair]:
    """Pairs of pages to score: audio neighbours, plus pages with equal loose names.

    Each pair of pages keeps its most similar pair of units; its source is the first that found it.
    """
    cand: dict[tuple[int, int], CandidatePair] = {}
    for i, nb in neighbours.near.items():
        for j, sim in nb:
            a, b = units[i].page_id, units[j].page_id
            ui, uj = (i, j) if a <= b else (j, i)
            a, b = min(a, b), max(a, b)
            best = cand.get((a, b))
            if best is None or sim > best.cosine:
                cand[(a, b)] = CandidatePair(ui, uj, sim, "audio" if best is None else best.source)
    units_of: dict[int, list[int]] = defaultdict(list)
    for i, u in enumerate(units):
        units_of[u.page_id].append(i)
    by_loose: dict[str, list[int]] = defaultdict(list)
    for pid in units_of:
        if pages[pid].loose:
            by_loose[pages[pid].loose].append(pid)
    for group in by_loose.values():
        if not 2 <= len(group) <= MAX_NAME_GROUP:
            continue
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                a, b = sorted((group[x], group[y]))
                if (a, b) in cand or not _other_name(pages, a, b):
                    continue
                ua, ub = units_of[a], units_of[b]
                sim = vectors[ua] @ vectors[ub].T
                i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
                cand[(a, b)] = CandidatePair(ua[i], ub[j], float(sim[i, j]), "name")
    return cand


# -- stage 3: scoring -------------------------------------------------------------------------------
def score_pair(a: int, b: int, c: CandidatePair, units: list[Unit], snap: _Snapshot,
               neighbours: Neighbours, model: Model, weights: tuple[float, float, float],
               ev_hash: str) -> SynonymPair:
    """The pair of pages ``a < b`` scored on its best units' audio, the names and the metadata."""
    i, j, sim, pages, meta_of = c.unit_a, c.unit_b, c.cosine, snap.pages, snap.album_meta
    local = neighbours.local_reference(i, j)
    audio = float(calibrate(np.array([sim]), local)[0])
    name, name_ev = name_similarity(pages[a].name, pages[b].name)
    meta, meta_ev = metadata_similarity([meta_of[x] for x in units[i].album_ids if x in meta_of],
                                        [meta_of[x] for x in units[j].album_ids if x in meta_of])
    evidence = {
        "source": c.source,
        "audio": {"cosine": round(sim, 6), "reference": round(local, 6),
                  "rank_a": neighbours.rank.get((i, j)), "rank_b": neighbours.rank.get((j, i)),
                  "unit_a": {"cluster": units[i].cluster, "albums": units[i].album_ids},
                  "unit_b": {"cluster": units[j].cluster, "albums": units[j].album_ids}},
        "name": name_ev,
        "metadata": meta_ev,
        "weights": dict(zip(("audio", "name", "metadata"), weights)),
        "model": model.name,
    }
    return SynonymPair(a, pages[a].label, b, pages[b].label, combine(audio, name, meta, weights),
                       audio, name, meta, evidence, ev_hash)


def score_pairs(cand: dict[tuple[int, int], CandidatePair], units: list[Unit], snap: _Snapshot,
                neighbours: Neighbours, model: Model, weights: tuple[float, float, float],
                focus: int | None = None) -> list[SynonymPair]:
    """Every candidate scored, best first (ties: smaller page ids first), leaving out pairs
    without ``focus`` (when given) and pairs whose evidence a curator rejected."""
    pairs = []
    for (a, b), c in cand.items():
        if focus is not None and focus not in (a, b):
            continue
        ev_hash = page_pair_hash(model.id, a, b, snap.albums_by_page.get(a, []),
                                 snap.albums_by_page.get(b, []))
        if ev_hash in snap.rejected:
            continue
        pairs.append(score_pair(a, b, c, units, snap, neighbours, model, weights, ev_hash))
    pairs.sort(key=lambda p: (-p.score, p.page_a_id, p.page_b_id))
    return pairs


# -- the search -------------------------------------------------------------------------------------
def find_synonyms(catalog: Catalog, paths: Paths, model: Model, top: int | None = 50,
                  page: str | int | None = None, k: int = 10, store: bool = True,
                  device: str = "cpu", weights: tuple[float, float, float] | None = None
                  ) -> list[SynonymPair]:
    """Rank pairs of differently named pages that may be one artist.

    Args:
        top: how many pairs to return (and store); None for all scored pairs.
        page: only pairs involving this page (id or name); the catalog is still searched whole.
        k: nearest units (on pages with another name) looked at per unit.
        weights: (audio, name, metadata) weights; default ``(W_AUDIO, W_NAME, W_META)``.
        store: record an ``AuditRun(kind="synonym")`` and one ``SynonymCandidate`` per pair; the
            open candidates it replaces (all, or the page's when ``page`` is given) are marked
            ``superseded``.

    Returns:
        Pairs by decreasing score (ties: smaller page ids first); ``page_a_id < page_b_id``.
    """
    weights = tuple(float(w) for w in (weights or (W_AUDIO, W_NAME, W_META)))
    snap = _Snapshot.read(catalog)
    focus = _focus_page(catalog, snap.pages, page)
    units, vectors = _build_units(catalog, paths, model, snap.pages, snap.albums_by_page, device)
    if len(units) < 2:
        return store_pairs(catalog, model, [], page, focus, k, top, 0.0, len(units), weights) \
            if store else []
    neighbours = neighbour_units(units, vectors, snap.pages, k, model.name)
    cand = candidate_pairs(units, vectors, snap.pages, neighbours)
    pairs = score_pairs(cand, units, snap, neighbours, model, weights, focus)
    if top is not None:
        pairs = pairs[:top]
    if store:
        return store_pairs(catalog, model, pairs, page, focus, k, top, neighbours.reference,
                           len(units), weights)
    return pairs


# -- stage 4: storing -------------------------------------------------------------------------------
def store_pairs(catalog: Catalog, model: Model, pairs: list[SynonymPair], page: str | int | None,
                focus: int | None, k: int, top: int | None, reference: float, n_units: int,
                weights: tuple[float, float, float]) -> list[SynonymPair]:
    """Record the search as an ``AuditRun(kind="synonym")`` with one open ``SynonymCandidate`` per
    pair (ids set on ``pairs``); the open candidates it replaces (all, or ``focus``'s) are
    superseded."""
    params = {"k": k, "top": top, "page": page if page is None else str(page), "page_id": focus,
              "weights": dict(zip(("audio", "name", "metadata"), weights)),
              "audio_reference": reference, "units": n_units, "model": model.name}
    with catalog.session() as s:
        stale = update(SynonymCandidate).where(SynonymCandidate.status == "open")
        if focus is not None:
            stale = stale.where((SynonymCandidate.page_a_id == focus) | (SynonymCandidate.page_b_id == focus))
        s.execute(stale.values(status="superseded"))
        run = AuditRun(model_id=model.id, kind="synonym", params=params)
        s.add(run)
        s.flush()
        rows = [SynonymCandidate(run_id=run.id, page_a_id=p.page_a_id, page_b_id=p.page_b_id,
                                 audio_score=p.audio_score, name_score=p.name_score,
                                 metadata_score=p.metadata_score, score=p.score,
                                 evidence=p.evidence, evidence_hash=p.evidence_hash, status="open")
                for p in pairs]
        s.add_all(rows)
        s.flush()
        for p, row in zip(pairs, rows):
            p.id, p.run_id = row.id, run.id
    return pairs


def synonym_candidates(catalog: Catalog, status: str | None = "open", run_id: int | None = None,
                       limit: int | None = None) -> list[SynonymPair]:
    """Stored candidates, best first: by ``status`` (None: any) and ``run_id`` (None: any run).

    The open candidates of all runs together are the current list: a run supersedes the open
    candidates it replaces (all of them, or one page's for a page-restricted run).
    """
    with catalog.session() as s:
        q = select(SynonymCandidate)
        if status is not None:
            q = q.where(SynonymCandidate.status == status)
        if run_id is not None:
            q = q.where(SynonymCandidate.run_id == run_id)
        q = q.order_by(SynonymCandidate.score.desc(), SynonymCandidate.id)
        if limit is not None:
            q = q.limit(limit)
        rows = s.scalars(q).all()
        ids = {r.page_a_id for r in rows} | {r.page_b_id for r in rows}
        pages = {pid: page_label(name, dis) for pid, name, dis in s.execute(
            select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
            .where(ArtistPage.id.in_(ids)))} if ids else {}
    return [SynonymPair(r.page_a_id, pages.get(r.page_a_id, "?"), r.page_b_id, pages.get(r.page_b_id, "?"),
                        r.score, r.audio_score, r.name_score, r.metadata_score, r.evidence or {},
                        r.evidence_hash, r.id, r.run_id) for r in rows]


def planted_recall(catalog: Catalog, pairs: list[SynonymPair], planted: Iterable[tuple[str, str]],
                   cutoffs: Iterable[int] = (10,)) -> dict[int, float]:
    """Share of planted name pairs (compared by catalog key) among the first N ranked pairs."""
    want = {frozenset((page_key(a), page_key(b))) for a, b in planted}
    ids = {p.page_a_id for p in pairs} | {p.page_b_id for p in pairs}
    with catalog.session() as s:
        key = dict(s.execute(select(ArtistPage.id, ArtistPage.normalized_name)
                             .where(ArtistPage.id.in_(ids))).all()) if ids else {}
    got = [frozenset((key.get(p.page_a_id), key.get(p.page_b_id))) for p in pairs]
    return {int(n): (len(want & set(got[:n])) / len(want) if want else float("nan")) for n in cutoffs}
