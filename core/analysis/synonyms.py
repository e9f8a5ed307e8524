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

Only pairs scoring at least a *cut* are kept, the cut calibrated on the catalog's own pages
(:func:`calibrate_min_score`: how close a page's nearest other-name page with an unrelated name
usually comes; a high quantile of that score over the catalog's trusted pages), so the list holds
pairs that stand out from ordinary neighbours, not every neighbour (``--min-score`` overrides it).

Results are stored as an ``AuditRun(kind="synonym")`` with one ``SynonymCandidate`` per pair above
the cut. Candidates are stable (:func:`artdb.core.analysis.findings.reconcile`): a pair whose
evidence (the two pages' album sets under the same model,
:func:`artdb.core.analysis.findings.page_pair_hash`) is unchanged keeps its open candidate (same
id, same ref ``s172``); changed evidence makes a new candidate that records the one it replaces. A
candidate a curator rejected is not raised again while its evidence is unchanged; pages already
merged into each other are never paired.

:func:`find_synonyms` runs in five stages, each a small function: neighbour units
(:func:`neighbour_units`), candidate pairs (:func:`candidate_pairs`), scoring (:func:`score_pairs`),
the cut (:func:`calibrate_min_score`) and storing (:func:`store_pairs`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, update

from artdb.core.analysis.findings import (
    Partition,
    StoredFinding,
    cluster_number,
    mark_superseded,
    page_label,
    page_pair_hash,
    reconcile,
    rejected_evidence,
)
from artdb.core.analysis.fusion import check_evidence
from artdb.core.analysis.metadata import AlbumMeta, album_metadata
from artdb.core.config import Paths
from artdb.core.errors import ConfigError
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
# The cut: this quantile of the trusted pages' nearest unrelated-name scores (calibrate_min_score).
MIN_SCORE_QUANTILE = 0.9
# ... measured on at least this many pages; below, DEFAULT_MIN_SCORE.
MIN_CALIBRATION_PAGES = 8
# A pair with no name similarity needs audio clearly above its units' usual neighbours (0.55 *
# audio >= 0.3: audio >= 0.55); a pair with equal loose names needs almost nothing more.
DEFAULT_MIN_SCORE = 0.3
# What a pair is, by its names: a variant spelling (some name similarity) or an alias (none).
KINDS = ("variant", "alias")


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
    id: int | None = None  # the SynonymCandidate row, when stored (or the one a store would keep)
    run_id: int | None = None
    change: str | None = None  # "new" or "unchanged" (the open candidate with this evidence kept)
    replaces_id: int | None = None  # the pair's earlier candidate a new one replaces

    @property
    def kind(self) -> str:
        """"variant" (a variant spelling: the names are alike) or "alias" (unrelated names)."""
        return pair_kind(self.name_score)

    @property
    def ref(self) -> str | None:
        return f"s{self.id}" if self.id is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ref": self.ref, "kind": self.kind,
                "replaces": f"s{self.replaces_id}" if self.replaces_id else None}


def pair_kind(name_score: float) -> str:
    """A pair with any name similarity is a variant spelling, one with none an alias."""
    return "variant" if name_score > 0 else "alias"


@dataclass
class SynonymSearch:
    """One synonym search: the pairs at or above the cut (best first) and how the cut was set."""

    pairs: list[SynonymPair]
    min_score: float  # the cut
    min_score_source: str  # how it was set, in words
    scored: int  # pairs scored before the cut
    run_id: int | None = None  # the AuditRun, when stored
    superseded: int = 0  # open candidates the search no longer finds (or replaced)

    def changes(self) -> dict[str, int]:
        return {"unchanged": sum(p.change == "unchanged" for p in self.pairs),
                "new": sum(p.change == "new" for p in self.pairs),
                "replacing": sum(p.replaces_id is not None for p in self.pairs),
                "superseded": self.superseded}

    def to_dict(self, top: int | None = None, kind: str | None = None) -> dict[str, Any]:
        shown = filter_pairs(self.pairs, top=top, kind=kind)
        return {"run_id": self.run_id, "min_score": self.min_score,
                "min_score_source": self.min_score_source, "scored": self.scored,
                "candidates": len(self.pairs), **self.changes(), "shown": len(shown),
                "pairs": [p.to_dict() for p in shown]}


def filter_pairs(pairs: list[SynonymPair], top: int | None = None, min_score: float | None = None,
                 kind: str | None = None) -> list[SynonymPair]:
    """The pairs of ``kind`` ("variant"/"alias") scoring at least ``min_score``, the first ``top``."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown synonym kind {kind!r}: use one of {', '.join(KINDS)}")
    out = [p for p in pairs if (kind is None or p.kind == kind)
           and (min_score is None or p.score >= min_score)]
    return out[:top] if top is not None else out


@dataclass
class Unit:
    """A candidate artist: a whole page (cluster None) or one proposed cluster of a flagged page."""

    page_id: int
    cluster: str | None  # the cluster as people see it ("1" = the largest), None for the page
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


def metadata_similarity(albums_a: Iterable[AlbumMeta], albums_b: Iterable[AlbumMeta]
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


def evidence_weights(evidence: str = "both") -> tuple[float, float, float]:
    """The (audio, name, metadata) weights for ``--evidence``: both = the defaults; audio drops the
    metadata part, metadata the audio part (the name always counts: it is what a synonym is
    about). Candidates are still found among audio neighbours and similar names either way."""
    check_evidence(evidence)
    return {"both": (W_AUDIO, W_NAME, W_META), "audio": (W_AUDIO, W_NAME, 0.0),
            "metadata": (0.0, W_NAME, W_META)}[evidence]


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
    """page id -> {cluster: album ids} for the open homonym findings; clusters as people see them
    ("1" = the largest, :func:`~artdb.core.analysis.findings.cluster_number`).

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
        clusters = {str(cluster_number(c)): albums
                    for c, albums in Partition.from_proposal(proposal).clusters().items()}
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


def _load_albums(s) -> tuple[dict[int, list[int]], dict[int, AlbumMeta]]:
    """Albums by page, and every album's tags (:func:`~artdb.core.analysis.metadata.album_metadata`,
    the one reader of album metadata)."""
    by_page: dict[int, list[int]] = defaultdict(list)
    for aid, pid in s.execute(select(Album.id, Album.page_id)):
        by_page[pid].append(aid)
    return {p: sorted(v) for p, v in by_page.items()}, album_metadata(s)


@dataclass
class _Snapshot:
    """What the search reads from the catalog, once."""

    pages: dict[int, _Page]
    albums_by_page: dict[int, list[int]]
    album_meta: dict[int, AlbumMeta]
    rejected: set[str]  # evidence hashes of rejected candidates

    @classmethod
    def read(cls, catalog: Catalog) -> _Snapshot:
        with catalog.session() as s:
            return cls(_load_pages(s), *_load_albums(s),
                       set(rejected_evidence(s, "synonym", SynonymCandidate)))


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


# -- stage 4: the cut --------------------------------------------------------------------------------
def calibrate_min_score(units: list[Unit], snap: _Snapshot, neighbours: Neighbours,
                        weights: tuple[float, float, float], quantile: float | None = None
                        ) -> tuple[float, str]:
    """The score a pair must reach to be a candidate, and how it was set, in words.

    Calibrated like the audit's threshold, on the catalog's own pages: every trusted page (a page
    unit of a page without an open homonym finding) is paired with its nearest page whose name is
    unrelated to its own (name similarity 0: mostly another artist, since variant spellings are
    what name similarity finds), and that pair is scored as any candidate would be. The cut is the
    ``quantile`` of those scores: a candidate must come closer than ``quantile`` of the pages come
    to an ordinary neighbour. With fewer than ``MIN_CALIBRATION_PAGES`` trusted pages the cut is
    ``DEFAULT_MIN_SCORE``.
    """
    quantile = MIN_SCORE_QUANTILE if quantile is None else quantile
    pages, meta_of = snap.pages, snap.album_meta
    flagged = {u.page_id for u in units if u.cluster is not None}
    samples = []
    for i, u in enumerate(units):
        if u.cluster is not None or u.page_id in flagged:
            continue
        for j, cos in neighbours.near.get(i, []):
            other = units[j].page_id
            if name_similarity(pages[u.page_id].name, pages[other].name)[0] > 0:
                continue
            audio = float(calibrate(np.array([cos]), neighbours.local_reference(i, j))[0])
            meta, _ = metadata_similarity([meta_of[x] for x in u.album_ids if x in meta_of],
                                          [meta_of[x] for x in units[j].album_ids if x in meta_of])
            samples.append(combine(audio, 0.0, meta, weights))
            break
    if len(samples) < MIN_CALIBRATION_PAGES:
        return DEFAULT_MIN_SCORE, (f"the default {DEFAULT_MIN_SCORE:g}: {len(samples)} trusted pages "
                                   f"are too few to calibrate on (need {MIN_CALIBRATION_PAGES})")
    cut = float(np.quantile(samples, quantile))
    return cut, (f"{quantile:.0%} of {len(samples)} trusted pages score below it with their nearest "
                 "page of an unrelated name")


# -- the search -------------------------------------------------------------------------------------
def find_synonyms(catalog: Catalog, paths: Paths, model: Model, page: str | int | None = None,
                  k: int = 10, store: bool = True, device: str = "cpu",
                  weights: tuple[float, float, float] | None = None,
                  min_score: float | None = None, evidence: str = "both") -> SynonymSearch:
    """Rank pairs of differently named pages that may be one artist, keeping those above the cut.

    Args:
        page: only pairs involving this page (id or name); the catalog is still searched whole.
        k: nearest units (on pages with another name) looked at per unit.
        weights: (audio, name, metadata) weights; default :func:`evidence_weights` of ``evidence``.
        evidence: "both" (default), "audio" or "metadata" (:func:`evidence_weights`).
        min_score: the cut; None calibrates it on the catalog (:func:`calibrate_min_score`), 0
            keeps every scored pair.
        store: record an ``AuditRun(kind="synonym")`` with one ``SynonymCandidate`` per pair
            above the cut: a pair's open candidate with the same evidence is kept (same id), changed
            evidence makes a new candidate (``replaces_id``: the pair's earlier one), and open
            candidates the search no longer finds (all, or the page's when ``page`` is given) are
            ``superseded``. Without ``store`` the pairs say what a store would do.

    Returns:
        A :class:`SynonymSearch`: pairs by decreasing score (ties: smaller page ids first;
        ``page_a_id < page_b_id``) and the cut.
    """
    weights = tuple(float(w) for w in (weights or evidence_weights(evidence)))
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"min_score must be between 0 and 1 (scores are), got {min_score}")
    snap = _Snapshot.read(catalog)
    focus = _focus_page(catalog, snap.pages, page)
    units, vectors = _build_units(catalog, paths, model, snap.pages, snap.albums_by_page, device)
    reference, pairs = 0.0, []
    cut, source = (min_score, "given") if min_score is not None else \
        (DEFAULT_MIN_SCORE, f"the default {DEFAULT_MIN_SCORE:g}: fewer than 2 pages with vectors")
    if len(units) >= 2:
        neighbours = neighbour_units(units, vectors, snap.pages, k, model.name)
        reference = neighbours.reference
        cand = candidate_pairs(units, vectors, snap.pages, neighbours)
        pairs = score_pairs(cand, units, snap, neighbours, model, weights, focus)
        if min_score is None:
            cut, source = calibrate_min_score(units, snap, neighbours, weights)
    search = SynonymSearch([p for p in pairs if p.score >= cut], cut, source, len(pairs))
    params = {"k": k, "page": page if page is None else str(page), "page_id": focus,
              "weights": dict(zip(("audio", "name", "metadata"), weights)), "evidence": evidence,
              "audio_reference": reference, "units": len(units), "model": model.name,
              "min_score": cut, "min_score_source": source, "scored": len(pairs)}
    return store_pairs(catalog, model, search, focus, params, write=store)


# -- stage 5: storing -------------------------------------------------------------------------------
def _stored_candidates(s, focus: int | None, lock: bool) -> list[StoredFinding]:
    q = select(SynonymCandidate.id, SynonymCandidate.page_a_id, SynonymCandidate.page_b_id,
               SynonymCandidate.evidence_hash, SynonymCandidate.status).where(
        SynonymCandidate.status.in_(("open", "rejected")))
    if focus is not None:
        q = q.where((SynonymCandidate.page_a_id == focus) | (SynonymCandidate.page_b_id == focus))
    if lock:
        q = q.with_for_update()
    return [StoredFinding(cid, (min(a, b), max(a, b)), h, status)
            for cid, a, b, h, status in s.execute(q)]


def store_pairs(catalog: Catalog, model: Model, search: SynonymSearch, focus: int | None,
                params: dict[str, Any], write: bool = True) -> SynonymSearch:
    """Reconcile the search's pairs with the stored candidates (all, or ``focus``'s) and, with
    ``write``, record the run: an ``AuditRun(kind="synonym")`` with ``params``; kept candidates
    move to it with their new scores, new ones are added, the rest of the open ones are
    superseded. Sets each pair's ``id`` (kept or new), ``change`` and ``replaces_id``."""
    with catalog.session() as s:
        result = reconcile(_stored_candidates(s, focus, lock=write),
                           {(p.page_a_id, p.page_b_id): p.evidence_hash for p in search.pairs})
        for p in search.pairs:
            p.id = result.kept.get((p.page_a_id, p.page_b_id))
            p.change = "unchanged" if p.id is not None else "new"
            p.replaces_id = result.replaces.get((p.page_a_id, p.page_b_id))
        search.superseded = len(result.superseded)
        if not write:
            return search
        run = AuditRun(model_id=model.id, kind="synonym", params=params)
        s.add(run)
        s.flush()
        mark_superseded(s, SynonymCandidate, result.superseded)
        new = []
        for p in search.pairs:
            values = dict(run_id=run.id, audio_score=p.audio_score, name_score=p.name_score,
                          metadata_score=p.metadata_score, score=p.score, evidence=p.evidence)
            if p.id is not None:  # same evidence: the candidate stays, confirmed by this run
                s.execute(update(SynonymCandidate).where(SynonymCandidate.id == p.id).values(**values))
            else:
                row = SynonymCandidate(page_a_id=p.page_a_id, page_b_id=p.page_b_id,
                                       evidence_hash=p.evidence_hash, status="open",
                                       replaces_id=p.replaces_id, **values)
                s.add(row)
                new.append((p, row))
        s.flush()
        for p, row in new:
            p.id = row.id
        for p in search.pairs:
            p.run_id = run.id
        search.run_id = run.id
    return search


def synonym_candidates(catalog: Catalog, status: str | None = "open", run_id: int | None = None,
                       limit: int | None = None, min_score: float | None = None,
                       kind: str | None = None) -> list[SynonymPair]:
    """Stored candidates, best first: by ``status`` (None: any), ``run_id`` (None: any run),
    ``min_score`` and ``kind`` ("variant": names alike, "alias": unrelated names).

    The open candidates of all runs together are the current list: a run supersedes the open
    candidates it no longer finds (all of them, or one page's for a page-restricted run).
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown synonym kind {kind!r}: use one of {', '.join(KINDS)}")
    with catalog.session() as s:
        q = select(SynonymCandidate)
        if status is not None:
            q = q.where(SynonymCandidate.status == status)
        if run_id is not None:
            q = q.where(SynonymCandidate.run_id == run_id)
        if min_score is not None:
            q = q.where(SynonymCandidate.score >= min_score)
        if kind is not None:  # pair_kind: any name similarity makes a variant spelling
            q = q.where(SynonymCandidate.name_score > 0 if kind == "variant"
                        else SynonymCandidate.name_score <= 0)
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
                        r.evidence_hash, r.id, r.run_id, replaces_id=r.replaces_id) for r in rows]


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
