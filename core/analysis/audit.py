"""Homonymy audit (``artdb audit``): artist pages whose albums form several audio clusters.

For every page with at least ``min_albums`` embedded albums, the album vectors (track vectors
averaged and re-normalised, :mod:`artdb.core.vectors.aggregate`) are clustered agglomeratively with a
distance threshold (:func:`artdb.core.analysis.clustering.cluster_with_threshold`). The number of artists
on a page is never given: the threshold decides it. The threshold comes from the model's
``config["audit"]`` (fitted on held-out training artists' artificial homonym groups) or from
:func:`calibrate_threshold` (k-fold cross-validation over artificial groups formed from the
catalog's own pages).

Each audited page gets a *split margin* (``score``): with ``t`` the threshold and ``h`` the
smallest merge height the cut refused (pages with >= 2 clusters) or the largest merge height it
accepted (one cluster), ``score = (h - t) / t``. Positive = split, and the larger the safer;
negative = kept whole, and the more negative the safer. Pages with >= 2 clusters are stored as
:class:`~artdb.db.models.AuditFinding` rows of one :class:`~artdb.db.models.AuditRun`, unless a
curator rejected the same evidence (same albums, same partition) before. Findings are stable
(:func:`~artdb.core.analysis.findings.reconcile`): a page whose open finding has the same evidence
keeps that finding (its id, its ref ``h12``; the row moves to the new run with the new score),
and only changed evidence makes a new finding, which records the one it replaces. The stored proposal is
a :class:`~artdb.core.analysis.findings.Partition`; labels, evidence hashes and threshold resolution
are :mod:`artdb.core.analysis.findings`'.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist, pdist
from sqlalchemy import select, update

from artdb.core.analysis.clustering import (
    check_linkage,
    cut_tree,
    cv_thresholds,
    distance_tree,
    fit_threshold,
    linkage_tree,
    make_homonym_groups,
    mean_ari,
)
from artdb.core.analysis.findings import (
    Partition,
    StoredFinding,
    audit_method,
    canonical_labels,
    cluster_number,
    mark_superseded,
    page_label,
    partition_hash,
    reconcile,
    rejected_evidence,
    resolve_pages,
    resolve_threshold,
)
from artdb.core.analysis.fusion import Fusion, check_evidence, fit_fusion
from artdb.core.analysis.metadata import (
    MIN_CONTRIBUTION,
    AlbumMeta,
    album_metadata,
    catalog_has_metadata,
    compare_groups,
    pair_features,
    pair_matrix,
    reasons,
)
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC, Paths
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.executor import make_executor
from artdb.core.progress import Progress, report as report_progress
from artdb.core.vectors.index import open_level_index, open_track_index
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, Model, Track
from artdb.db.session import Catalog

log = logging.getLogger(__name__)

# Below this many pages a worker pool costs more than it saves (measured, docs/audit.md).
PARALLEL_MIN_PAGES = 20000
CHUNK_PAGES = 2000


# -- the pure part: one page -----------------------------------------------------------------------
def merge_heights(vectors: np.ndarray, linkage: str = DEFAULT_LINKAGE,
                  metric: str = DEFAULT_METRIC) -> np.ndarray:
    """The sorted heights at which agglomerative clustering merges (same merges as scikit-learn)."""
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(0)
    return np.sort(linkage_tree(x, linkage, metric)[:, 2])


def split_margin(heights: np.ndarray, threshold: float) -> float:
    """``(h - t) / t``: ``h`` = smallest refused merge if any (> 0), else largest accepted (< 0)."""
    if len(heights) == 0 or threshold <= 0:
        return float("-inf") if len(heights) == 0 else 0.0
    refused = heights[heights >= threshold]
    h = refused[0] if len(refused) else heights[-1]
    return float((h - threshold) / threshold)


def cluster_page(vectors: np.ndarray, threshold: float, linkage: str = DEFAULT_LINKAGE,
                 metric: str = DEFAULT_METRIC) -> tuple[np.ndarray, float]:
    """``(canonical labels, split margin)`` of one page's album vectors.

    The hierarchy is built once with SciPy and cut below ``threshold``
    (:func:`~artdb.core.analysis.clustering.cut_tree`): the same partition as
    :func:`artdb.core.analysis.clustering.cluster_with_threshold` (scikit-learn; identical merges,
    checked in tests/test_audit.py) at a seventh of the cost per page (0.07 vs 0.53 ms, 5 albums),
    and the merge heights for the margin come with it.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(len(x), dtype=np.int64), float("-inf")
    check_linkage(linkage, metric)
    z = linkage_tree(x, linkage, metric)
    return canonical_labels(cut_tree(z, threshold)), split_margin(np.sort(z[:, 2]), threshold)


def cluster_distances(condensed: np.ndarray, n: int, threshold: float,
                      linkage: str = DEFAULT_LINKAGE) -> tuple[np.ndarray, float]:
    """:func:`cluster_page` for ``n`` albums given their precomputed (fused) condensed distances."""
    if n < 2:
        return np.zeros(n, dtype=np.int64), float("-inf")
    z = distance_tree(condensed, linkage)
    return canonical_labels(cut_tree(z, threshold)), split_margin(np.sort(z[:, 2]), threshold)


def _cluster_chunk(chunk: list[tuple[int, np.ndarray]], threshold: float, linkage: str,
                   metric: str, precomputed: bool = False) -> list[tuple[int, np.ndarray, float]]:
    """Cluster each ``(page, data)``: album vectors, or with ``precomputed`` ``(n, condensed)``."""
    if precomputed:
        return [(pid, *cluster_distances(d[1], d[0], threshold, linkage)) for pid, d in chunk]
    return [(pid, *cluster_page(v, threshold, linkage, metric)) for pid, v in chunk]


# -- reports ---------------------------------------------------------------------------------------
@dataclass
class PageAudit:
    page_id: int
    page: str  # display name, with " [n]" for a split page
    album_ids: list[int]
    albums: list[str]
    labels: list[int]  # cluster of each album (0 = largest)
    n_clusters: int
    score: float  # split margin, see module doc
    evidence_hash: str  # partition_hash(album_ids, labels)
    finding_id: int | None = None  # the open finding (kept or new), or the rejected one
    suppressed: bool = False  # a curator rejected this very evidence before
    # "new", "unchanged" (the open finding with this evidence is kept) or "rejected"; None for a
    # page kept whole. Set by the store (or, for a dry run, as a store would set it).
    change: str | None = None
    replaces_id: int | None = None  # the page's earlier finding a new one replaces
    # Why, in words, for each cluster after the first: {"cluster": n, "versus": 1, "reasons": [...]}
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_albums(self) -> int:
        return len(self.album_ids)

    @property
    def flagged(self) -> bool:
        return self.n_clusters >= 2 and not self.suppressed

    def partition(self, report: AuditReport | None = None) -> Partition:
        """The proposed split (with the run's threshold and method when ``report`` is given)."""
        provenance = {} if report is None else {
            "threshold": report.threshold, "linkage": report.linkage, "metric": report.metric,
            "model": report.model}
        return Partition.from_labels(self.album_ids, self.labels, **provenance)

    def clusters(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.n_clusters)]
        for aid, lab in zip(self.album_ids, self.labels):
            out[lab].append(aid)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id, "page": self.page, "n_albums": self.n_albums,
            "n_clusters": self.n_clusters, "score": self.score, "flagged": self.flagged,
            "suppressed": self.suppressed, "finding_id": self.finding_id,
            "ref": f"h{self.finding_id}" if self.finding_id else None, "change": self.change,
            "replaces": f"h{self.replaces_id}" if self.replaces_id else None,
            "evidence_hash": self.evidence_hash, "reasons": self.reasons,
            "clusters": [{"cluster": cluster_number(c),
                          "albums": [{"album_id": a, "title": self.albums[self.album_ids.index(a)]}
                                     for a in members]}
                         for c, members in enumerate(self.clusters())],
        }


@dataclass
class AuditReport:
    run_id: int | None
    model: str
    threshold: float
    linkage: str
    metric: str
    threshold_source: str
    pages: list[PageAudit] = field(default_factory=list)  # every audited page, ranked by score
    seconds: float = 0.0
    evidence: str = "audio"  # what the distance weighs: audio, metadata or both
    fusion: Fusion | None = None  # the fitted fusion (evidence metadata/both)
    evidence_note: str | None = None  # why the evidence is not what was asked, if it is not

    @property
    def findings(self) -> list[PageAudit]:
        return [p for p in self.pages if p.flagged]

    @property
    def suppressed(self) -> list[PageAudit]:
        return [p for p in self.pages if p.suppressed]

    def changes(self) -> dict[str, int]:
        """How many flagged pages kept their finding, got a new one, replaced an earlier one."""
        return {"unchanged": sum(p.change == "unchanged" for p in self.findings),
                "new": sum(p.change == "new" for p in self.findings),
                "replacing": sum(p.replaces_id is not None for p in self.findings)}

    def to_dict(self, all_pages: bool = False, top: int | None = None) -> dict[str, Any]:
        shown = self.pages if all_pages else self.findings
        return {
            "run_id": self.run_id, "model": self.model, "threshold": self.threshold,
            "linkage": self.linkage, "metric": self.metric,
            "threshold_source": self.threshold_source, "evidence": self.evidence,
            "evidence_note": self.evidence_note,
            "fusion": self.fusion.to_dict() if self.fusion else None,
            "pages_audited": len(self.pages),
            "findings": len(self.findings), "suppressed": len(self.suppressed),
            **self.changes(), "seconds": round(self.seconds, 3),
            "pages": [p.to_dict() for p in (shown[:top] if top else shown)],
        }


# -- reading the catalog ---------------------------------------------------------------------------
def album_vectors(catalog: Catalog, paths: Paths, model: Model) -> dict[int, np.ndarray]:
    """Album id -> album vector (mean of its embedded tracks, re-normalised)."""
    index = open_level_index(catalog, paths, model, "album")
    ids = index.index_ids()
    if len(ids) == 0:
        return {}
    vecs = index.reconstruct(ids)
    return {int(a): vecs[i] for i, a in enumerate(ids)}


# -- evidence beside audio ------------------------------------------------------------------------
def default_evidence(catalog: Catalog) -> str:
    """``"both"`` when the catalog has metadata (a label, year or genre on an album, an ISRC on a
    track), else ``"audio"``: what ``artdb audit`` weighs unless told."""
    with catalog.session() as s:
        return "both" if catalog_has_metadata(s) else "audio"


@dataclass
class TrustedUnits:
    """The albums of trusted pages (>= ``min_albums`` embedded albums, no open homonym finding)
    and the artificial homonym groups formed from them: what calibrates the threshold and fits
    the fusion."""

    album_ids: np.ndarray
    labels: np.ndarray  # page of each album
    vectors: np.ndarray
    groups: list[np.ndarray]
    singles: list[np.ndarray]  # each trusted page alone
    rng: np.random.Generator  # the seeded stream, after drawing the groups (folds draw next)

    @property
    def pages(self) -> int:
        return len(set(self.labels.tolist()))


GROUPINGS = ("random", "genre")
# Whether the fusion's threshold also scores each trusted page alone (docs/audit.md, measured).
FUSION_SINGLES = False
# Fits of the fusion: after each, the trusted pages it would itself split are set aside and it is
# fitted again without them (docs/audit.md, measured); 1 = fitted once on every trusted page.
FUSION_ROUNDS = 1
# Artificial groups the metadata fusion needs before its splits make a page suspect for training.
SUSPECT_MIN_GROUPS = 6


def trusted_units(catalog: Catalog, vectors: dict[int, np.ndarray] | None, min_albums: int = 2,
                  seed: int = 0, grouping: str = "random",
                  set_aside: frozenset[int] = frozenset()) -> TrustedUnits:
    """Trusted pages' albums and their artificial groups of 2-4 pages (:func:`make_homonym_groups`).

    ``grouping`` "random" draws the groups from all trusted pages; "genre" first within each
    genre (a page's most frequent album genre), like the homonyms that are hard to tell apart.
    ``set_aside``: pages not trusted either (ids), beside those with an open finding.
    ``vectors`` None: every album (for a fusion of metadata alone).
    """
    if grouping not in GROUPINGS:
        raise ConfigError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    with catalog.session() as s:
        flagged = _open_finding_pages(s) | set(set_aside)
        rows = s.execute(select(Album.id, Album.page_id, Album.genre_id).order_by(Album.id)).all()
    genres: dict[int, Counter] = {}
    for _, p, g in rows:
        if g is not None:
            genres.setdefault(p, Counter())[g] += 1
    rows = [(a, p) for a, p, _ in rows if (vectors is None or a in vectors) and p not in flagged]
    counts: dict[int, int] = {}
    for _, p in rows:
        counts[p] = counts.get(p, 0) + 1
    rows = [(a, p) for a, p in rows if counts[p] >= min_albums]
    if not rows:
        raise CatalogError("no trusted pages with >= 2 embedded albums to calibrate on")
    album_ids = np.array([a for a, _ in rows], dtype=np.int64)
    labels = np.array([p for _, p in rows], dtype=np.int64)
    # metadata alone needs no audio: a placeholder column keeps the units' shape
    X = np.zeros((len(album_ids), 1)) if vectors is None else np.stack([vectors[int(a)] for a in album_ids])
    rng = np.random.default_rng(seed)
    strata = {p: c.most_common(1)[0][0] for p, c in genres.items()} if grouping == "genre" else None
    groups = make_homonym_groups(labels, rng, sizes=(2, 4), min_albums=min_albums, strata=strata)
    singles = [np.array([p]) for p in sorted(counts) if counts[p] >= min_albums]
    return TrustedUnits(album_ids, labels, X, groups, singles, rng)


def fit_catalog_fusion(catalog: Catalog, vectors: dict[int, np.ndarray] | None, evidence: str = "both",
                       *, min_albums: int = 2, seed: int = 0, folds: int = 5,
                       linkage: str = DEFAULT_LINKAGE, metric: str = DEFAULT_METRIC,
                       grouping: str = "genre", singles: bool = FUSION_SINGLES,
                       rounds: int = FUSION_ROUNDS) -> Fusion:
    """Fit the fusion (:func:`~artdb.core.analysis.fusion.fit_fusion`) on the catalog's trusted
    pages, grouped as :func:`calibrate_threshold` groups them (:func:`trusted_units`) but, by
    default, within genres first: groups of random pages differ in genre far more often than real
    homonyms do, and a fusion fitted on them learns that a shared genre means "one artist"
    (measured in docs/audit.md). ``vectors`` None (metadata alone): every album.

    ``rounds``: after each fit the trusted pages the fusion would split are set aside and it is
    fitted again without them (``calibration["set_aside_pages"]``; those the last fit would still
    split: ``calibration["would_split_pages"]``)."""
    fitted, set_aside = None, set()
    for _ in range(max(1, rounds)):
        units = trusted_units(catalog, vectors, min_albums, seed, grouping, frozenset(set_aside))
        if len(units.groups) < 2:
            if fitted is not None:  # setting pages aside left too few: keep the previous fit
                break
            raise CatalogError(f"only {len(units.groups)} artificial groups from {units.pages} "
                               "trusted pages: too few to fit the fusion (use --evidence audio)")
        with catalog.session() as s:
            meta = album_metadata(s, units.album_ids.tolist())
        metas = [meta[int(a)] for a in units.album_ids]
        fusion = fit_fusion(units.vectors, metas, units.labels, units.groups, evidence,
                            linkage=linkage, metric=metric, folds=folds, seed=seed, singles=singles)
        split = _pages_split_by(fusion, units, metas)
        fusion.calibration.update(pages=units.pages, grouping=grouping,
                                  set_aside_pages=sorted(set_aside), would_split_pages=sorted(split))
        fitted = fusion
        if not split:
            break
        # a page the fusion itself splits is a likely homonym: fitted as "one artist" it would
        # teach that disagreeing tags and distant sound still mean one artist
        set_aside |= split
    return fitted


def suspect_pages(catalog: Catalog, *, tags: bool = False, min_albums: int = 2, seed: int = 0,
                  min_groups: int = SUSPECT_MIN_GROUPS) -> dict[int, str]:
    """Pages not to learn "one artist" from, each with why: an open homonym finding, and with
    ``tags`` (when the catalog has metadata) the pages whose albums the fusion of metadata alone,
    fitted on the catalog's own pages (:func:`fit_catalog_fusion`), would split. A page mixing
    homonyms teaches a model that what tells its artists apart is one artist's variation
    (``artdb train --leave-out``; measured in docs/audit.md)."""
    with catalog.session() as s:
        out = {int(p): "an open homonym finding" for p in _open_finding_pages(s)}
    if not tags or default_evidence(catalog) == "audio":
        return out
    try:
        # two fits: pages a first fit would split do not teach the second what one artist is
        fusion = fit_catalog_fusion(catalog, None, "metadata", min_albums=min_albums, seed=seed,
                                    folds=0, rounds=2)
    except (CatalogError, ConfigError):  # too few pages with 2+ albums to learn from the tags
        return out
    if fusion.calibration["groups"] < min_groups:  # weights fitted on a few pairs are no evidence
        return out
    for p in fusion.calibration["set_aside_pages"] + fusion.calibration["would_split_pages"]:
        out.setdefault(int(p), "its albums' tags look like more than one artist")
    return out


def _pages_split_by(fusion: Fusion, units: TrustedUnits, metas) -> set[int]:
    """The trusted pages the fusion itself would split (their albums alone, its threshold), when
    the evidence between the parts points to other artists: a split made by the intercept alone
    (tags unknown or agreeing) is no evidence (missing values are neutral)."""
    out = set()
    for p in np.unique(units.labels):
        idx = np.flatnonzero(units.labels == p)
        if len(idx) < 2:
            continue
        sub = [metas[i] for i in idx]
        d = fusion.condensed(units.vectors[idx], sub)
        parts = cut_tree(distance_tree(d, fusion.linkage), fusion.threshold)
        if len(set(parts.tolist())) < 2:
            continue
        iu = np.triu_indices(len(idx), k=1)
        cross = parts[iu[0]] != parts[iu[1]]
        audio = pdist(units.vectors[idx], fusion.metric)[cross] if fusion.uses_audio else None
        meta = pair_matrix(sub, fusion.year_boundary)[cross]
        if sum(fusion.contributions(audio, meta).values()) < -MIN_CONTRIBUTION:
            out.add(int(p))
    return out


def audio_reason(distance: float, threshold: float | None) -> str:
    """"audio margin 0.08" (the mean cross distance beyond the audio threshold, relative to it), or
    the distance itself when no audio threshold is known."""
    if threshold:
        return f"audio margin {(distance - threshold) / threshold:+.2f} (distance {distance:.3f})"
    return f"audio distance {distance:.3f}"


def cluster_reasons(album_ids: Sequence[int], labels: Sequence[int], vectors: np.ndarray,
                    metas: Sequence[AlbumMeta], fusion: Fusion | None, audio_threshold: float | None,
                    metric: str = DEFAULT_METRIC) -> list[dict[str, Any]]:
    """For each cluster after the first, why it is not the first (cluster 1): its tags compared
    with cluster 1's, ranked by the fusion's contribution over the cross pairs (without a fusion,
    the audio first), and the audio margin."""
    labels = np.asarray(labels)
    base = np.flatnonzero(labels == 0)
    out = []
    for c in range(1, int(labels.max()) + 1 if len(labels) else 0):
        other = np.flatnonzero(labels == c)
        d = cdist(vectors[base], vectors[other], metric=metric)
        weights = audio_weight = None
        if fusion is not None:  # the cross pairs, in the order of d's cells
            meta = np.stack([pair_features(metas[i], metas[j], fusion.year_boundary)
                             for i in base for j in other])
            weights = fusion.contributions(d.reshape(-1), meta)
            audio_weight = weights.get("audio", 0.0) if fusion.uses_audio else None
        text = reasons(compare_groups([metas[i] for i in base], [metas[i] for i in other]), weights,
                       audio=audio_reason(float(d.mean()), audio_threshold)
                       if fusion is None or fusion.uses_audio else None, audio_weight=audio_weight,
                       toward=-1)
        out.append({"cluster": c + 1, "versus": 1, "reasons": text})
    return out


def _resolve_evidence(catalog: Catalog, vectors, evidence: str, fusion: Fusion | None,
                      threshold: float | None, min_albums: int, seed: int,
                      link: str, met: str, grouping: str) -> tuple[str, Fusion | None, str | None]:
    """The evidence the audit will weigh, its fusion, and a note when it falls back to audio.

    ``"auto"``: "both" when the catalog has metadata and no audio ``threshold`` is given, falling
    back to audio (with the reason in the note) when the catalog cannot fit a fusion."""
    if evidence == "auto":
        if threshold is not None or fusion is not None or default_evidence(catalog) == "audio":
            return _resolve_evidence(catalog, vectors, "audio" if fusion is None else fusion.evidence,
                                     fusion, threshold, min_albums, seed, link, met, grouping)
        try:
            return _resolve_evidence(catalog, vectors, "both", None, None, min_albums, seed, link,
                                     met, grouping)
        except (CatalogError, ConfigError) as e:
            return "audio", None, f"audio only: no fusion ({e})"
    check_evidence(evidence)
    if evidence == "audio":
        return "audio", None, None
    if fusion is not None:
        return fusion.evidence, fusion, None
    if threshold is not None:
        raise ConfigError("--threshold is an audio distance: give it with --evidence audio")
    if link == "ward":
        raise ConfigError("the fused distance needs average (or complete/single) linkage, not ward")
    return evidence, fit_catalog_fusion(catalog, vectors, evidence, min_albums=min_albums,
                                        seed=seed, linkage=link, metric=met, grouping=grouping), None


# -- the audit ---------------------------------------------------------------------------------------
def run_audit(catalog: Catalog, paths: Paths, model: Model, min_albums: int = 2,
              pages: Sequence[str | int] | None = None, threshold: float | None = None,
              workers: int = 2, progress: Progress | None = None, *,
              linkage: str | None = None, metric: str | None = None,
              store: bool = True, evidence: str = "audio", fusion: Fusion | None = None,
              seed: int = 0, grouping: str = "genre", executor_backend: str = "process",
              scheduler_address: str | None = None) -> AuditReport:
    """Cluster the albums of every page with ``>= min_albums`` embedded albums; store findings.

    Args:
        pages: restrict to these pages (ids, names, "Name [n]").
        threshold: override the model's stored threshold (``linkage``/``metric`` likewise).
        workers: processes for the clustering when there are many pages (>= PARALLEL_MIN_PAGES).
        executor_backend, scheduler_address: where the pages are clustered
            (:func:`~artdb.core.executor.make_executor`; ``"dask"``: on a Dask cluster, every
            catalog size, CHUNK_PAGES pages per task).
        progress: called ``progress("audit pages", done, total)`` (:mod:`artdb.core.progress`).
        store: write an AuditRun with its findings (pages with >= 2 clusters). An audited page's
            open finding with the same evidence is kept (same id, moved to this run); one whose
            evidence changed, or a page no longer flagged, is ``superseded`` (the new finding's
            ``replaces_id`` names it). Without ``store`` the report says what a store would do.
        evidence: ``"audio"`` (the album vectors' distance and the model's threshold),
            ``"metadata"`` or ``"both"``: a fusion (:mod:`artdb.core.analysis.fusion`) fitted on
            the catalog's artificial groups (``seed``) unless ``fusion`` is given; it is stored
            with the run and its threshold replaces the audio one. ``grouping``: how its
            artificial groups are drawn (:func:`fit_catalog_fusion`). ``"auto"``: both when the
            catalog has metadata and can fit a fusion (else audio, saying why in
            ``report.evidence_note``).

    Returns:
        An :class:`AuditReport` with every audited page ranked by decreasing split margin, each
        flagged page with its reasons in words.
    """
    if min_albums < 2:
        raise ConfigError("min_albums must be >= 2 (one album cannot be split)")
    start = time.perf_counter()
    link, met = audit_method(model, linkage, metric)
    vectors = album_vectors(catalog, paths, model)
    evidence, fusion, note = _resolve_evidence(catalog, vectors, evidence, fusion, threshold,
                                               min_albums, seed, link, met, grouping)
    try:
        t_audio, link, met, source = resolve_threshold(model, threshold, linkage=link, metric=met)
    except ConfigError:
        if fusion is None:
            raise
        t_audio, source = None, "fusion"
    t = fusion.threshold if fusion is not None else t_audio
    if fusion is not None:
        link, met = fusion.linkage, fusion.metric
        source = f"fusion ({evidence}) fitted on {fusion.calibration.get('groups')} artificial groups"
    if not t > 0:
        raise ConfigError(f"threshold must be > 0, got {t}")
    with catalog.session() as s:
        wanted = resolve_pages(s, pages) if pages else None
        stmt = (select(Album.id, Album.title, Album.page_id, ArtistPage.display_name,
                       ArtistPage.disambiguation)
                .join(ArtistPage, ArtistPage.id == Album.page_id).order_by(Album.page_id, Album.id))
        if wanted is not None:
            stmt = stmt.where(Album.page_id.in_(wanted))
        rows = s.execute(stmt).all()
        rejected = rejected_evidence(s, "homonym", AuditFinding)
        meta = album_metadata(s, [r[0] for r in rows if r[0] in vectors])
    by_page: dict[int, list] = {}
    for aid, title, pid, name, dis in rows:
        if aid in vectors:
            by_page.setdefault(pid, []).append((aid, title, page_label(name, dis)))
    todo = [(pid, albums) for pid, albums in by_page.items() if len(albums) >= min_albums]
    stacked = [np.stack([vectors[a] for a, _, _ in albums]) for _, albums in todo]
    if fusion is None:
        work = [(pid, x) for (pid, _), x in zip(todo, stacked)]
    else:
        work = [(pid, (len(albums), fusion.condensed(x, [meta[a] for a, _, _ in albums])))
                for (pid, albums), x in zip(todo, stacked)]
    results = _cluster_all(work, t, link, met, workers, progress, precomputed=fusion is not None,
                           backend=executor_backend, scheduler_address=scheduler_address)
    report = AuditReport(None, model.name, t, link, met, source, evidence=evidence, fusion=fusion,
                         evidence_note=note)
    for (pid, albums), x, (_, labels, score) in zip(todo, stacked, results):
        ids = [a for a, _, _ in albums]
        h = partition_hash(ids, labels)
        n = int(labels.max()) + 1
        suppressed = n >= 2 and h in rejected
        why = cluster_reasons(ids, labels, x, [meta[a] for a in ids], fusion, t_audio, met) \
            if n >= 2 else []
        report.pages.append(PageAudit(
            page_id=pid, page=albums[0][2], album_ids=ids, albums=[x for _, x, _ in albums],
            labels=labels.tolist(), n_clusters=n, score=score, evidence_hash=h,
            suppressed=suppressed, finding_id=rejected[h] if suppressed else None,
            change="rejected" if suppressed else None, reasons=why))
    report.pages.sort(key=lambda p: (-p.score, p.page_id))
    audited = [pid for pid, _ in todo]
    if store:
        _store(catalog, model, report, min_albums, pages, audited)
    else:
        with catalog.session() as s:
            _reconcile(s, report, audited)
    report.seconds = time.perf_counter() - start
    return report


def _cluster_all(work, t, link, met, workers, progress: Progress | None, precomputed: bool = False,
                 backend: str = "process", scheduler_address: str | None = None):
    total = len(work)
    report_progress(progress, "audit pages", 0, total)
    chunks = [work[i:i + CHUNK_PAGES] for i in range(0, total, CHUNK_PAGES)]
    # Fewer pages than PARALLEL_MIN_PAGES: one worker, i.e. inline. Results come back in chunk
    # order either way. Workers keep their stderr (numpy/SciPy only, no decoder noise to silence).
    pool = workers if total >= PARALLEL_MIN_PAGES or backend == "dask" else 1
    out: list = []
    n = len(chunks)
    with make_executor(pool, backend, scheduler_address, initializer=None) as ex:
        for res in ex.map(_cluster_chunk, chunks, [t] * n, [link] * n, [met] * n, [precomputed] * n):
            out.extend(res)
            report_progress(progress, "audit pages", len(out), total)
    return out


def _stored_findings(session, pages: list[int], lock: bool = False) -> list[StoredFinding]:
    """The open and rejected findings of ``pages`` (locked for update with ``lock``)."""
    out: list[StoredFinding] = []
    for start in range(0, len(pages), 500):
        q = (select(AuditFinding.id, AuditFinding.page_id, AuditFinding.evidence_hash,
                    AuditFinding.status)
             .where(AuditFinding.page_id.in_(pages[start:start + 500]),
                    AuditFinding.status.in_(("open", "rejected"))))
        if lock:
            q = q.with_for_update()
        out += [StoredFinding(*row) for row in session.execute(q)]
    return out


def _reconcile(session, report: AuditReport, audited: list[int], lock: bool = False):
    """Mark each flagged page of ``report`` unchanged (with its kept finding's id) or new (with
    the finding it replaces); return the reconciliation."""
    stored = _stored_findings(session, audited, lock)
    result = reconcile(stored, {p.page_id: p.evidence_hash for p in report.findings})
    for p in report.findings:
        p.finding_id = result.kept.get(p.page_id)
        p.change = "unchanged" if p.finding_id is not None else "new"
        p.replaces_id = result.replaces.get(p.page_id)
    return result


def _store(catalog: Catalog, model: Model, report: AuditReport, min_albums: int,
           pages: Sequence[str | int] | None, audited: list[int]) -> None:
    with catalog.session() as s:
        run = AuditRun(model_id=model.id, kind="homonym", params={
            "threshold": report.threshold, "linkage": report.linkage, "metric": report.metric,
            "threshold_source": report.threshold_source, "min_albums": min_albums,
            "pages": [str(p) for p in pages] if pages else None, "pages_audited": len(audited),
            "evidence": report.evidence, "evidence_note": report.evidence_note,
            "fusion": report.fusion.to_dict() if report.fusion else None,
        })
        s.add(run)
        s.flush()
        result = _reconcile(s, report, audited, lock=True)
        mark_superseded(s, AuditFinding, result.superseded)
        new = []
        for p in report.findings:
            values = dict(run_id=run.id, n_clusters=p.n_clusters, score=p.score,
                          proposal={**p.partition(report).to_proposal(),
                                    "evidence": report.evidence, "reasons": p.reasons})
            if p.finding_id is not None:  # same evidence: the finding stays, confirmed by this run
                s.execute(update(AuditFinding).where(AuditFinding.id == p.finding_id).values(**values))
                continue
            f = AuditFinding(page_id=p.page_id, evidence_hash=p.evidence_hash, status="open",
                             replaces_id=p.replaces_id, **values)
            s.add(f)
            new.append((p, f))
        s.flush()
        for p, f in new:
            p.finding_id = f.id
        report.run_id = run.id


# -- calibration -----------------------------------------------------------------------------------
def _open_finding_pages(session) -> set[int]:
    return set(session.scalars(select(AuditFinding.page_id).where(AuditFinding.status == "open")))


CALIBRATION_UNITS = ("auto", "album", "track")


def _trusted_tracks(catalog: Catalog, paths: Paths, model: Model, seed: int) -> TrustedUnits:
    """Like :func:`trusted_units`, with tracks as the units: every trusted page (no open finding)
    with two embedded tracks, its tracks' vectors, grouped into artificial homonym groups of 2-4
    pages — what ``artdb train`` fits its own threshold on, for catalogs where few artists have
    two albums."""
    index = open_track_index(catalog, paths, model)
    ids = index.index_ids()
    with catalog.session() as s:
        flagged = _open_finding_pages(s)
        page_of = dict(s.execute(select(Track.id, Album.page_id)
                                 .join(Album, Track.album_id == Album.id)).all())
    ids = np.array([t for t in ids if int(t) in page_of and page_of[int(t)] not in flagged], dtype=np.int64)
    if len(ids) == 0:
        raise CatalogError("no trusted pages with embedded tracks to calibrate on")
    labels = np.array([page_of[int(t)] for t in ids], dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups = make_homonym_groups(labels, rng, sizes=(2, 4), min_albums=2)
    pages, counts = np.unique(labels, return_counts=True)
    singles = [np.array([p]) for p, n in zip(pages, counts) if n >= 2]
    # the units are tracks here: ``album_ids`` holds track ids
    return TrustedUnits(ids, labels, index.reconstruct(ids), groups, singles, rng)


def calibrate_threshold(catalog: Catalog, paths: Paths, model: Model, folds: int = 5,
                        seed: int = 0, *, linkage: str | None = None, metric: str | None = None,
                        min_albums: int = 2, singles: bool = False, unit: str = "auto",
                        store: bool = True) -> dict[str, Any]:
    """Learn the audit threshold from the catalog by k-fold cross-validation over artificial groups.

    Every page with ``>= min_albums`` embedded albums and no open homonym finding is taken as one
    artist (trusted page); pages are drawn into artificial homonym groups of 2-4
    (:func:`make_homonym_groups`); the groups are split into ``folds`` folds; each fold's ARI is
    measured at the threshold fitted (:func:`fit_threshold`) on the other folds
    (:func:`~artdb.core.analysis.clustering.cv_thresholds`). The final threshold
    is fitted on all groups and, with ``store``, written to ``model.config["audit"]`` with its CV
    ARI.

    ``unit``: ``"album"`` clusters album vectors as above; ``"track"`` the tracks of every trusted
    page with two tracks (as ``artdb train`` fits its threshold); ``"auto"``: albums, or tracks
    when the album units form fewer than ``folds`` groups (a catalog of single-album artists —
    most real ones at a small size) — the result's ``unit`` and ``source`` say which.

    Returns:
        ``{"threshold", "linkage", "metric", "cv_ari", "fold_ari", "fold_thresholds", "train_ari",
        "groups", "pages", "folds", "seed", "unit", "source"}``.
    """
    link, met = audit_method(model, linkage, metric)
    if folds < 2:
        raise ConfigError("folds must be >= 2")
    if unit not in CALIBRATION_UNITS:
        raise ConfigError(f"unit must be one of {CALIBRATION_UNITS}, got {unit!r}")
    units, used = None, unit
    if unit in ("auto", "album"):
        try:
            units = trusted_units(catalog, album_vectors(catalog, paths, model), min_albums, seed)
            used = "album"
        except CatalogError:
            if unit == "album":
                raise
        if unit == "auto" and (units is None or len(units.groups) < folds):
            units, used = None, "track"
    if units is None:
        units = _trusted_tracks(catalog, paths, model, seed)
    labels, X, groups = units.labels, units.vectors, units.groups
    counts = {p: int((labels == p).sum()) for p in set(labels.tolist())}
    rng = units.rng
    if singles:
        # Most real pages hold one artist: scoring each trusted page alone (ARI 1 if kept whole,
        # 0 if split) makes the threshold pay for false splits too (measured in docs/audit.md).
        groups = groups + units.singles
    if len(groups) < folds:
        raise CatalogError(
            f"only {len(groups)} artificial groups from {len(counts)} trusted pages' {used}s: "
            f"need at least {folds} (use fewer --folds or a bigger catalog)")
    order = rng.permutation(len(groups))
    fold_of = np.empty(len(groups), dtype=np.int64)
    fold_of[order] = np.arange(len(groups)) % folds
    fold_ari, fold_t, weights = [], [], []
    for _, tk, test in cv_thresholds(groups, fold_of, X, labels, linkage=link, metric=met):
        fold_t.append(tk)
        fold_ari.append(mean_ari(test, X, labels, tk, linkage=link, metric=met))
        weights.append(len(test))
    t, train_ari, _ = fit_threshold(groups, X, labels, linkage=link, metric=met)
    cv = float(np.average(fold_ari, weights=weights))
    if not (np.isfinite(t) and np.isfinite(cv)):
        raise CatalogError(f"calibration failed (threshold {t}, CV ARI {cv}): too few usable groups")
    result = {
        "threshold": float(t), "linkage": link, "metric": met, "cv_ari": cv,
        "fold_ari": [float(a) for a in fold_ari], "fold_thresholds": [float(x) for x in fold_t],
        "train_ari": float(train_ari), "groups": len(groups), "pages": len(set(labels.tolist())),
        "folds": folds, "seed": seed, "singles": singles, "unit": used,
        "source": f"artdb audit --calibrate: {folds}-fold CV over {len(groups)} artificial groups "
                  f"of {len(set(labels.tolist()))} catalog pages' {used}s",
    }
    if store:
        with catalog.session() as s:
            row = s.get(Model, model.id)
            config = dict(row.config or {})
            config["audit"] = {"threshold": result["threshold"], "linkage": link, "metric": met,
                               "cv_ari": cv, "source": result["source"]}
            row.config = config
        model.config = config
    return result


__all__ = [
    "AuditReport", "PageAudit", "TrustedUnits", "album_vectors", "audio_reason",
    "calibrate_threshold", "cluster_distances", "cluster_page", "cluster_reasons",
    "default_evidence", "fit_catalog_fusion", "merge_heights", "run_audit",
    "split_margin", "suspect_pages", "trusted_units",
]
