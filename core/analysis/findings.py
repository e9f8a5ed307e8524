"""What the analysis stages share: one home for each concept their findings are made of.

- :class:`Partition`: the audit's proposed split of a page (album -> cluster, 0 = largest), with
  its one writer (:meth:`Partition.to_proposal`) and one reader (:meth:`Partition.from_proposal`)
  of the JSON stored in ``AuditFinding.proposal``. The audit writes it; synonyms, placement,
  curation and the report read it.
- Page labels: a page is shown as ``"Name"``, ``"Name [n]"`` (a page a split numbered) or
  ``"Name (comment)"`` (one a curator named) (:func:`page_label`); :func:`parse_page_label` reads
  one back, :func:`find_pages` / :func:`resolve_pages` find the pages a label, a name or an id
  stands for, and :func:`no_page_error` suggests labels that do name a page.
- Evidence hashes (what a curator judged, so that a rejection holds until the evidence changes):
  :func:`partition_hash` for a homonym finding (these albums, split this way) and
  :func:`page_pair_hash` for a synonym candidate (these two pages with these albums, under this
  model's audio).
- Stable findings (:func:`reconcile`): a finding's identity is its subject (a page, a pair of
  pages) and its evidence hash. A rerun keeps the open finding whose evidence is unchanged (same
  id, so a curator's ``h12`` stays valid), replaces one whose evidence changed (the new finding
  records ``replaces_id``) and supersedes those it no longer finds; :func:`rejected_evidence` is
  what curators rejected, never raised again while unchanged.
- Cluster numbers: stored partitions number clusters from 0 (the largest); people see them from 1
  (:func:`cluster_number`), in every listing, report and JSON output.
- Threshold resolution: :func:`resolve_threshold` picks the distance threshold, linkage and metric
  an audit or a placement uses (given, else the model's stored ``config["audit"]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
from rapidfuzz import fuzz, process
from sqlalchemy import func, select, update

from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.names import page_key
from artdb.db.models import ArtistPage, CuratorDecision, Model

# -- page labels -----------------------------------------------------------------------------------
# How many close names an error suggests, and how close (rapidfuzz WRatio, 0-100) they must be.
SUGGESTIONS = 3
SUGGEST_CUTOFF = 70


def page_label(display_name: str, disambiguation: str | None) -> str:
    """How a page is shown and named: ``"Name"``; ``"Name [n]"`` for a page a split numbered
    (disambiguation ``n``); ``"Name (comment)"`` for one a curator named, as MusicBrainz's
    disambiguation comments ("Eclipse (Swedish band)")."""
    if not disambiguation:
        return display_name
    if disambiguation.isdigit():
        return f"{display_name} [{disambiguation}]"
    return f"{display_name} ({disambiguation})"


def parse_page_label(text: str) -> tuple[str, str | None]:
    """``"Name [n]"`` -> ``("Name", "n")``, ``"Name (comment)"`` -> ``("Name", "comment")``; a plain
    name -> ``(name, None)`` (no disambiguation given)."""
    for open_, close in (" [", "]"), (" (", ")"):
        if text.endswith(close) and open_ in text:
            base, _, dis = text[:-1].rpartition(open_)
            if base.strip() and dis.strip():
                return base, dis.strip()
    return text, None


def find_pages(session, ref: str | int) -> list[int]:
    """The pages ``ref`` names, best first; empty if none.

    An id names that page; a label names the page shown so (``"Eclipse"`` the page without
    disambiguation, ``"Eclipse [2]"``, ``"Eclipse (Swedish band)"``); a name whose every page is
    disambiguated (older splits numbered every page) names them all. A name that merely ends in
    brackets ("Sunn O)))") is also tried whole.
    """
    text = str(ref).strip()
    if text.isdigit() and session.get(ArtistPage, int(text)) is not None:
        return [int(text)]
    base, dis = parse_page_label(text)
    if dis is not None:
        ids = session.scalars(select(ArtistPage.id).where(
            ArtistPage.normalized_name == page_key(base),
            func.lower(ArtistPage.disambiguation) == dis.lower())).all()
        if ids:
            return list(ids)
    rows = session.execute(select(ArtistPage.id, ArtistPage.disambiguation)
                           .where(ArtistPage.normalized_name == page_key(text))
                           .order_by(ArtistPage.disambiguation, ArtistPage.id)).all()
    bare = [pid for pid, d in rows if not d]
    return bare or [pid for pid, _ in rows]


def suggest_pages(session, text: str, limit: int = SUGGESTIONS) -> list[str]:
    """Labels of pages whose names are close to ``text`` (for "no page named ..." errors); each
    label names its page, so a suggestion can be typed as is."""
    rows = session.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.disambiguation)
                           .where(ArtistPage.merged_into_id.is_(None))).all()
    labels = {pid: page_label(name, dis) for pid, name, dis in rows}
    found = process.extract(page_key(text), {pid: page_key(lab) for pid, lab in labels.items()},
                            scorer=fuzz.WRatio, limit=limit, score_cutoff=SUGGEST_CUTOFF)
    return [labels[pid] for _, _, pid in found]


def no_page_error(session, text: str) -> CatalogError:
    """"no artist page named X", with close names that do name a page."""
    close = suggest_pages(session, text)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        " (artdb ls lists the pages)"
    return CatalogError(f"no artist page named {text!r}{hint}")


def resolve_pages(session, names: Sequence[str | int]) -> list[int]:
    """Page ids for ids, labels or names (:func:`find_pages`); a CatalogError naming close names
    when one names no page."""
    out: list[int] = []
    for name in names:
        ids = find_pages(session, name)
        if not ids:
            raise no_page_error(session, str(name).strip())
        out.extend(ids)
    return sorted(set(out))


# -- partitions ------------------------------------------------------------------------------------
def canonical_labels(labels: Sequence[int]) -> np.ndarray:
    """Relabel clusters 0, 1, … by decreasing size, ties by first appearance (order-free labels)."""
    labels = np.asarray(labels)
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], first[i]))
    remap = {uniq[i]: rank for rank, i in enumerate(order)}
    return np.array([remap[v] for v in labels], dtype=np.int64)


def partition_hash(album_ids: Sequence[int], labels: Sequence[int]) -> str:
    """Evidence of a homonym finding: hash of the sorted album ids and the (order-free) partition.

    Same albums split the same way (whatever the album order and cluster names), same hash.
    """
    pairs = sorted(zip((int(a) for a in album_ids), (int(c) for c in labels)))
    canon = canonical_labels([c for _, c in pairs]).tolist()
    payload = json.dumps([[a for a, _ in pairs], canon], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Partition:
    """A proposed split of one page: each album's cluster (0 = the largest), and how it was made.

    ``assignment`` holds ``(album id, cluster)`` pairs in album order. The provenance fields
    (threshold, linkage, metric, model name) are what the audit stored beside it; they may be
    ``None`` for rows written by hand.
    """

    assignment: tuple[tuple[int, int], ...] = ()
    threshold: float | None = None
    linkage: str | None = None
    metric: str | None = None
    model: str | None = None

    @classmethod
    def from_labels(cls, album_ids: Sequence[int], labels: Sequence[int], **provenance: Any
                    ) -> Partition:
        return cls(tuple((int(a), int(c)) for a, c in zip(album_ids, labels)), **provenance)

    @classmethod
    def from_proposal(cls, proposal: Any) -> Partition:
        """Read ``AuditFinding.proposal``: ``{"partition": {album id: cluster}, "threshold": t,
        "linkage": ..., "metric": ..., "model": ...}`` (what :meth:`to_proposal` writes, and what
        the audit has always stored). Anything else reads as an empty partition."""
        if not isinstance(proposal, Mapping) or not isinstance(proposal.get("partition"), Mapping):
            return cls()
        try:
            pairs = tuple((int(a), int(c)) for a, c in proposal["partition"].items())
        except (TypeError, ValueError):
            return cls()
        t = proposal.get("threshold")
        return cls(pairs, float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None,
                   proposal.get("linkage"), proposal.get("metric"), proposal.get("model"))

    def to_proposal(self) -> dict[str, Any]:
        """The JSON stored in ``AuditFinding.proposal`` (read back by :meth:`from_proposal`)."""
        return {"partition": {str(a): c for a, c in self.assignment}, "threshold": self.threshold,
                "linkage": self.linkage, "metric": self.metric, "model": self.model}

    def __bool__(self) -> bool:
        return bool(self.assignment)

    @property
    def album_ids(self) -> list[int]:
        return [a for a, _ in self.assignment]

    @property
    def labels(self) -> list[int]:
        return [c for _, c in self.assignment]

    @property
    def cluster_of(self) -> dict[int, int]:
        """album id -> cluster."""
        return dict(self.assignment)

    @property
    def n_clusters(self) -> int:
        """Clusters proposed (the largest label + 1; 0 for an empty partition)."""
        return max(self.labels) + 1 if self.assignment else 0

    def clusters(self) -> dict[int, list[int]]:
        """cluster -> its album ids (sorted), in cluster order."""
        out: dict[int, list[int]] = {}
        for a, c in sorted(self.assignment, key=lambda p: (p[1], p[0])):
            out.setdefault(c, []).append(a)
        return out

    @property
    def evidence_hash(self) -> str:
        return partition_hash(self.album_ids, self.labels)


# -- synonym evidence ------------------------------------------------------------------------------
def page_pair_hash(model_id: int, page_a: int, page_b: int, albums_a: Sequence[int],
                   albums_b: Sequence[int]) -> str:
    """Evidence of a synonym candidate: these two pages with these albums, under this model's
    audio (the order of the pages and of their albums is irrelevant)."""
    if page_a > page_b:
        page_a, page_b, albums_a, albums_b = page_b, page_a, albums_b, albums_a
    doc = {"model": model_id, "pages": [page_a, page_b],
           "albums": [sorted(albums_a), sorted(albums_b)]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# -- stable findings -------------------------------------------------------------------------------
K = TypeVar("K")


class StoredFinding(NamedTuple, Generic[K]):
    """What :func:`reconcile` needs of a stored finding: its row id, subject, evidence and status."""

    id: int
    subject: K  # a page id, or a (page a, page b) pair
    evidence_hash: str
    status: str


@dataclass
class Reconciled(Generic[K]):
    """How a new run's findings relate to the stored ones (see :func:`reconcile`)."""

    kept: dict[K, int]  # subject -> the open finding with the same evidence (kept, same id)
    replaces: dict[K, int]  # subject -> the finding a new one replaces (changed evidence)
    superseded: list[int]  # open findings that are no longer current


def reconcile(stored: Sequence[StoredFinding], found: Mapping[K, str]) -> Reconciled:
    """Match a run's findings (``found``: subject -> evidence hash) with the ``stored`` findings of
    the subjects the run looked at.

    - An open finding with the same subject and evidence is *kept* (its id stays the finding's).
    - Otherwise the run's finding is new; it *replaces* the subject's newest open finding (which is
      superseded) or, failing one, its newest rejected finding (which stays rejected: the curator
      rejected that evidence, not this one).
    - Every other open finding of those subjects is superseded (evidence gone or changed, or the
      subject no longer flagged).
    """
    by_subject: dict[Any, list[StoredFinding]] = {}
    for row in sorted(stored, key=lambda r: r.id):
        by_subject.setdefault(row.subject, []).append(row)
    kept: dict[Any, int] = {}
    replaces: dict[Any, int] = {}
    current: set[int] = set()
    for subject, evidence in found.items():
        rows = by_subject.get(subject, [])
        same = [r for r in rows if r.status == "open" and r.evidence_hash == evidence]
        if same:
            kept[subject] = same[-1].id
            current.add(same[-1].id)
            continue
        earlier = [r for r in rows if r.status == "open"] or [r for r in rows if r.status == "rejected"]
        if earlier:
            replaces[subject] = earlier[-1].id
    superseded = [r.id for r in stored if r.status == "open" and r.id not in current]
    return Reconciled(kept, replaces, sorted(superseded))


def mark_superseded(session, table: Any, ids: Sequence[int], chunk: int = 500) -> None:
    """Set ``status = "superseded"`` on the rows ``ids`` of a findings table (audit findings or
    synonym candidates), ``chunk`` ids per statement (a bound-parameter limit on some back-ends)."""
    for start in range(0, len(ids), chunk):
        session.execute(update(table).where(table.id.in_(ids[start:start + chunk]))
                        .values(status="superseded"))


def rejected_evidence(session, kind: str, finding_row: Any) -> dict[str, int | None]:
    """Evidence hash -> the rejected finding's id, for the findings of ``kind`` ("homonym" or
    "synonym", stored in ``finding_row``) a curator rejected: rows whose status is ``rejected``
    and live reject decisions (not undone)."""
    out: dict[str, int | None] = {}
    for fid, h in session.execute(
            select(CuratorDecision.finding_id, CuratorDecision.evidence_hash).where(
                CuratorDecision.action == "reject", CuratorDecision.finding_kind == kind,
                CuratorDecision.undone_at.is_(None), CuratorDecision.evidence_hash.is_not(None))
            .order_by(CuratorDecision.id)):
        out[h] = fid
    for fid, h in session.execute(select(finding_row.id, finding_row.evidence_hash)
                                  .where(finding_row.status == "rejected").order_by(finding_row.id)):
        out[h] = fid
    return out


def cluster_number(label: int | str) -> int:
    """The cluster as people see it: stored label 0 (the largest cluster) is cluster 1."""
    return int(label) + 1


# -- thresholds ------------------------------------------------------------------------------------
class Threshold(NamedTuple):
    """The distance threshold an analysis cuts at, how distances are measured, and whence."""

    threshold: float
    linkage: str
    metric: str
    source: str


def _audit_config(model: Model) -> dict[str, Any]:
    return (model.config or {}).get("audit") or {}


def audit_method(model: Model, linkage: str | None = None, metric: str | None = None
                 ) -> tuple[str, str]:
    """``(linkage, metric)``: as given, else as stored with the model, else the defaults."""
    cfg = _audit_config(model)
    return (linkage or cfg.get("linkage", DEFAULT_LINKAGE),
            metric or cfg.get("metric", DEFAULT_METRIC))


def audit_threshold(model: Model) -> Threshold:
    """``(threshold, linkage, metric, source)`` stored with the model, or a ConfigError."""
    cfg = _audit_config(model)
    t = cfg.get("threshold")
    if t is None or not np.isfinite(float(t)):
        raise ConfigError(
            f"model {model.name!r} has no audit threshold: run `artdb audit --calibrate` "
            "(or pass --threshold)")
    return Threshold(float(t), *audit_method(model), cfg.get("source", "model config"))


def resolve_threshold(model: Model, threshold: float | None = None, *, linkage: str | None = None,
                      metric: str | None = None) -> Threshold:
    """The threshold to use: ``threshold`` if given (source "given"), else the model's stored one
    (:func:`audit_threshold`); ``linkage``/``metric`` override the model's (or the defaults)."""
    if threshold is None:
        t, link, met, source = audit_threshold(model)
    else:
        (link, met), t, source = audit_method(model), float(threshold), "given"
    return Threshold(t, linkage or link, metric or met, source)


__all__ = [
    "Partition", "Reconciled", "StoredFinding", "Threshold", "audit_method", "audit_threshold",
    "canonical_labels", "cluster_number", "find_pages", "no_page_error", "page_label",
    "page_pair_hash", "parse_page_label", "partition_hash", "reconcile", "rejected_evidence",
    "resolve_pages", "resolve_threshold", "suggest_pages",
]
