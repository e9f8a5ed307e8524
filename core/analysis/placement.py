"""Release placement (``artdb place ALBUM``): which artist of an ambiguous name made this album?

An album delivered under a name that several artists share is compared with every candidate:
each page with the same normalized name (the ingest page and the numbered pages a split made,
"Name [1]", "Name [2]", …), and, for a page with an open homonym finding, each of its proposed
clusters. The distance between the album and a candidate is the *linkage* distance the audit uses
(average linkage: mean distance from the album to the candidate's albums), so "within the audit
threshold" means "the audit would have put it in that cluster". The best candidate within the
threshold is the match; if none is, the answer is "new artist".

:func:`apply_placement` is the policy of ``artdb place --apply``: a match on another page moves
the album there (an undoable curator decision); "new artist", or a match on the album's own page,
changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sqlalchemy import func, select

from artdb.core.analysis.audit import (
    album_vectors,
    audio_reason,
    default_evidence,
    fit_catalog_fusion,
    run_audit,
)
from artdb.core.analysis.findings import Partition, cluster_number, page_label, resolve_threshold
from artdb.core.analysis.fusion import Fusion, check_evidence
from artdb.core.analysis.metadata import (
    AlbumMeta,
    album_metadata,
    compare_groups,
    pair_features,
    reasons,
)
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC, Paths
from artdb.core.curation.common import Decision
from artdb.core.curation.place import move_album
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.vectors.neighbors import resolve_query
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, Model, Track
from artdb.db.session import Catalog


def linkage_distance(x: np.ndarray, cluster: np.ndarray, linkage: str = DEFAULT_LINKAGE,
                     metric: str = DEFAULT_METRIC) -> float:
    """Distance at which agglomerative clustering would merge vector ``x`` with ``cluster`` rows.

    average: mean pairwise distance; complete: max; single: min; ward (euclidean):
    ``sqrt(2 n / (n + 1)) * ||x - mean(cluster)||`` (SciPy's Ward merge height).
    """
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    y = np.asarray(cluster, dtype=np.float64)
    if len(y) == 0:
        raise ConfigError("linkage_distance: empty cluster")
    if linkage == "ward":
        n = len(y)
        return float(np.sqrt(2.0 * n / (n + 1)) * np.linalg.norm(x[0] - y.mean(axis=0)))
    d = cdist(x, y, metric=metric)[0]
    if linkage == "average":
        return float(d.mean())
    if linkage == "complete":
        return float(d.max())
    if linkage == "single":
        return float(d.min())
    raise ConfigError(f"unknown linkage {linkage!r}")


@dataclass
class Candidate:
    page_id: int
    page: str
    cluster: int | None  # cluster of a flagged page as people see it (1 = largest), else None
    album_ids: list[int]
    distance: float
    margin: float  # (threshold - distance) / threshold: > 0 within the threshold
    reasons: list[str] = field(default_factory=list)  # what speaks for and against, in words

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Placement:
    album_id: int
    album: str
    page_id: int
    page: str
    threshold: float
    linkage: str
    metric: str
    best: Candidate | None  # None: "new artist"
    candidates: list[Candidate] = field(default_factory=list)
    evidence: str = "audio"

    @property
    def decision(self) -> str:
        return "new artist" if self.best is None else "match"

    def to_dict(self) -> dict[str, Any]:
        return {"album_id": self.album_id, "album": self.album, "page_id": self.page_id,
                "page": self.page, "decision": self.decision, "threshold": self.threshold,
                "linkage": self.linkage, "metric": self.metric, "evidence": self.evidence,
                "best": self.best.to_dict() if self.best else None,
                "candidates": [c.to_dict() for c in self.candidates]}


def resolve_album(catalog: Catalog, album: str | int) -> int:
    """An album id from an id, "Artist - Title", a title, or a folder of ingested audio files."""
    text = str(album)
    if not text.isdigit() and os.path.isdir(text):
        root = os.path.abspath(text).rstrip(os.sep) + os.sep
        with catalog.session() as s:
            paths = s.execute(select(Track.album_id, Track.audio_path)).all()
        ids = sorted({a for a, p in paths if p.startswith(root)})
        if not ids:
            raise CatalogError(f"no ingested tracks under {text!r}: run `artdb index {text}` first")
        if len(ids) > 1:
            raise CatalogError(f"the files under {text!r} belong to {len(ids)} albums ({ids[:10]}); "
                               "name one album (id or 'Artist - Title')")
        return ids[0]
    return resolve_query(catalog, text, "album")


def stored_fusion(catalog: Catalog, model: Model, evidence: str) -> Fusion | None:
    """The fusion stored with the model's latest homonym audit run that weighed ``evidence``."""
    with catalog.session() as s:
        runs = s.scalars(select(AuditRun).where(AuditRun.model_id == model.id,
                                                AuditRun.kind == "homonym")
                         .order_by(AuditRun.id.desc())).all()
        for run in runs:
            params = run.params or {}
            if params.get("evidence") == evidence and isinstance(params.get("fusion"), dict):
                return Fusion.from_dict(params["fusion"])
    return None


def _fused_distance(fusion: Fusion, x: np.ndarray, mx: AlbumMeta, ys: np.ndarray,
                    metas: list[AlbumMeta]) -> tuple[float, dict[str, float]]:
    """Average-linkage fused distance from one album to a group, and the features' mean
    contributions over those pairs."""
    audio = cdist(x.reshape(1, -1), ys, metric=fusion.metric)[0] if fusion.uses_audio else None
    meta = np.stack([pair_features(mx, m, fusion.year_boundary) for m in metas])
    return float(fusion.distance(audio, meta).mean()), fusion.contributions(audio, meta)


def place_album(catalog: Catalog, paths: Paths, model: Model, album: str | int,
                threshold: float | None = None, evidence: str = "audio",
                fusion: Fusion | None = None,
                vectors: dict[int, np.ndarray] | None = None) -> Placement:
    """Compare ``album`` with every candidate artist of its name; the best within the threshold.

    ``evidence`` "metadata"/"both": the distance is the fused one (``fusion``, else the one stored
    with the model's latest audit run that weighed the same evidence, else one fitted on the
    catalog now) and the threshold is the fusion's. Each candidate says why, in words.
    ``vectors``: the model's album vectors when the caller has them already (many placements).
    """
    check_evidence(evidence)
    if threshold is not None and evidence != "audio":
        raise ConfigError("--threshold is an audio distance: give it with --evidence audio")
    vectors = album_vectors(catalog, paths, model) if vectors is None else vectors
    if evidence != "audio" and fusion is None:
        fusion = stored_fusion(catalog, model, evidence) or fit_catalog_fusion(
            catalog, vectors, evidence)
    try:
        t_audio, link, met, _ = resolve_threshold(model, threshold)
    except ConfigError:
        if fusion is None:
            raise
        t_audio, link, met = None, fusion.linkage, fusion.metric
    t = fusion.threshold if fusion is not None else t_audio
    aid = resolve_album(catalog, album)
    if aid not in vectors:
        raise CatalogError(f"album {aid} has no vector for model {model.name} (not embedded yet?)")
    with catalog.session() as s:
        alb = s.get(Album, aid)
        home = s.get(ArtistPage, alb.page_id)
        pages = s.scalars(select(ArtistPage).where(ArtistPage.normalized_name == home.normalized_name,
                                                   ArtistPage.merged_into_id.is_(None))
                          .order_by(ArtistPage.disambiguation, ArtistPage.id)).all()
        groups: list[tuple[ArtistPage, int | None, list[int]]] = []
        for p in pages:
            albums = [a for a in s.scalars(select(Album.id).where(Album.page_id == p.id).order_by(Album.id))
                      if a != aid and a in vectors]
            finding = s.scalars(select(AuditFinding).where(AuditFinding.page_id == p.id,
                                                           AuditFinding.status == "open")
                                .order_by(AuditFinding.id.desc())).first()
            part = Partition.from_proposal(finding.proposal).cluster_of if finding else {}
            if part:
                for c in sorted(set(part.values())):
                    members = [a for a in albums if part.get(a) == c]
                    if members:
                        groups.append((p, cluster_number(c), members))
            elif albums:
                groups.append((p, None, albums))
        meta = album_metadata(s, [aid] + [a for _, _, m in groups for a in m])
        out = Placement(aid, alb.title, home.id, page_label(home.display_name, home.disambiguation),
                        t, link, met, None, evidence=evidence)
        x = vectors[aid]
        for p, c, members in groups:
            ys = np.stack([vectors[a] for a in members])
            weights = audio_weight = None
            if fusion is None:
                d = linkage_distance(x, ys, link, met)
            else:
                d, weights = _fused_distance(fusion, x, meta[aid], ys, [meta[a] for a in members])
                audio_weight = weights.get("audio") if fusion.uses_audio else None
            audio_text = None
            if fusion is None or fusion.uses_audio:
                mean_audio = float(cdist(x.reshape(1, -1), ys, metric=met)[0].mean())
                audio_text = audio_reason(mean_audio, t_audio)
            why = reasons(compare_groups([meta[aid]], [meta[a] for a in members]), weights,
                          audio=audio_text, audio_weight=audio_weight, toward=1)
            out.candidates.append(Candidate(p.id, page_label(p.display_name, p.disambiguation), c,
                                            members, d, (t - d) / t, why))
    out.candidates.sort(key=lambda c: c.distance)
    if out.candidates and out.candidates[0].distance < t:
        out.best = out.candidates[0]
    return out


def apply_placement(catalog: Catalog, placement: Placement, note: str | None = None,
                    dry_run: bool = False) -> Decision | None:
    """Move the album where ``placement`` says it belongs: only for a match on another page.

    Returns the curator decision (``artdb undo`` reverts it), or None when nothing moves ("new
    artist", or the best candidate is the album's own page). ``dry_run``: what would move, and
    nothing changed.
    """
    best = placement.best
    if best is None or best.page_id == placement.page_id:
        return None
    return move_album(catalog, placement.album_id, best.page_id,
                      note=note if note is not None else f"artdb place: distance {best.distance:.4f}",
                      dry_run=dry_run)


# -- at ingest: new releases under a split name ----------------------------------------------------
@dataclass
class IngestPlacement:
    """What ingest did with one new release delivered under a name several pages share.

    ``outcome``: "placed" (moved to the page it sounds like: a curator decision, ``artdb undo``
    reverts it), "stays" (it sounds like the page it landed on), or "flagged" (no page of the
    name is within the threshold: it stays where it landed and a page-restricted audit raised
    ``finding`` on that page, when the album's albums split there)."""

    album_id: int
    album: str
    landed_page_id: int
    landed_page: str
    outcome: str
    reason: str
    page_id: int | None = None  # where it is now
    page: str | None = None
    distance: float | None = None
    threshold: float | None = None
    decision_id: int | None = None
    finding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def new_releases_under_shared_names(catalog: Catalog, track_ids: Sequence[int]) -> list[int]:
    """Albums all of whose tracks are among ``track_ids`` (releases new to the catalog) and whose
    page shares its name with another page (the pages a split made), by id."""
    ids = sorted({int(t) for t in track_ids})
    if not ids:
        return []
    with catalog.session() as s:
        albums: set[int] = set()
        for start in range(0, len(ids), 500):
            albums |= set(s.scalars(select(Track.album_id).where(Track.id.in_(ids[start:start + 500]))))
        new = set(ids)
        out = []
        for aid in sorted(albums):
            tracks = set(s.scalars(select(Track.id).where(Track.album_id == aid)))
            if not tracks <= new:
                continue  # an album the catalog had before: a curator may have placed it
            page = s.get(ArtistPage, s.get(Album, aid).page_id)
            shared = s.scalar(select(func.count()).select_from(ArtistPage).where(
                ArtistPage.normalized_name == page.normalized_name, ArtistPage.merged_into_id.is_(None)))
            if shared >= 2:
                out.append(aid)
    return out


def place_new_releases(catalog: Catalog, paths: Paths, model: Model, album_ids: Sequence[int],
                       note: str = "placed at ingest", evidence: str | None = None
                       ) -> list[IngestPlacement]:
    """Place each album as ``artdb place --apply`` would (:func:`place_album`,
    :func:`apply_placement`): moved to the page of its name it is closest to, kept where it
    landed, or flagged when none is within the threshold (a page-restricted audit of the page it
    landed on then stores the finding a curator reviews). ``evidence``: as ``artdb place``
    (default: both when the catalog has metadata); one fusion serves every album of the run."""
    if not album_ids:
        return []
    vectors = album_vectors(catalog, paths, model)
    evidence = evidence or default_evidence(catalog)
    fusion = None
    if evidence != "audio":
        fusion = stored_fusion(catalog, model, evidence) or fit_catalog_fusion(catalog, vectors, evidence)
    like = "sounds like" if evidence == "audio" else "by sound and tags is like"
    out: list[IngestPlacement] = []
    for aid in album_ids:
        if aid not in vectors:
            continue  # not embedded (its files gave no features): nothing to compare
        p = place_album(catalog, paths, model, aid, vectors=vectors, evidence=evidence, fusion=fusion)
        res = IngestPlacement(aid, p.album, p.page_id, p.page, "stays", "", p.page_id, p.page,
                              threshold=p.threshold)
        best = p.best or (p.candidates[0] if p.candidates else None)
        if best is not None:
            res.distance = best.distance
        if p.best is None:
            res.outcome = "flagged"
            nearest = (f"nearest {best.page}{_cluster_words(best)} at distance {best.distance:.3f}"
                       if best else "no other page has embedded albums")
            res.reason = (f"{like} none of the {len({c.page_id for c in p.candidates}) or 1} "
                          f"pages named {p.page!r} ({nearest}, beyond the threshold "
                          f"{p.threshold:.3f}); left on {p.page!r} for review")
            audit = run_audit(catalog, paths, model, pages=[p.page_id], evidence=evidence,
                              fusion=fusion)
            flagged = [x for x in audit.findings if x.page_id == p.page_id]
            if flagged:
                res.finding = f"h{flagged[0].finding_id}"
        elif p.best.page_id == p.page_id:
            res.reason = (f"{like} its own page{_cluster_words(p.best)} (distance "
                          f"{p.best.distance:.3f} within the threshold {p.threshold:.3f})")
        else:
            d = apply_placement(catalog, p, note=f"{note}: distance {p.best.distance:.4f} to "
                                                 f"{p.best.page} (threshold {p.threshold:.4f})")
            res.outcome, res.decision_id = "placed", d.id if d else None
            res.page_id, res.page = p.best.page_id, p.best.page
            res.reason = (f"{like} {p.best.page} (distance {p.best.distance:.3f} within the "
                          f"threshold {p.threshold:.3f}; {p.page!r} was at "
                          f"{_distance_to(p, p.page_id)})")
        why = (p.best or best).reasons if (p.best or best) is not None else []
        if why:
            res.reason += "; why: " + "; ".join(why)
        out.append(res)
    return out


def _cluster_words(c: Candidate) -> str:
    return f" cluster {c.cluster}" if c.cluster is not None else ""


def _distance_to(p: Placement, page_id: int) -> str:
    own = [c.distance for c in p.candidates if c.page_id == page_id]
    return f"{min(own):.3f}" if own else "no comparable album"


__all__ = ["Candidate", "IngestPlacement", "Placement", "apply_placement", "linkage_distance",
           "new_releases_under_shared_names", "place_album", "place_new_releases", "resolve_album",
           "stored_fusion"]
