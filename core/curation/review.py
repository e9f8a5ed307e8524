"""What a curator reviews (``artdb review``): the open homonym findings and synonym candidates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from artdb.core.analysis.findings import Partition, cluster_number
from artdb.core.analysis.metadata import reason_lines
from artdb.core.analysis.synonyms import synonym_candidates
from artdb.core.curation.common import label
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun
from artdb.db.session import Catalog


def live_pages(session) -> int:
    """Pages not merged into another (what the catalog counts as artists)."""
    return session.scalar(select(func.count()).select_from(ArtistPage)
                          .where(ArtistPage.merged_into_id.is_(None))) or 0


def finding_reasons(proposal: Any) -> dict[str, Any]:
    """``{"evidence", "reasons", "why"}`` of a stored finding's proposal: the evidence the audit
    weighed, its reasons per cluster and the same in words (empty for findings stored before
    reasons existed)."""
    proposal = proposal if isinstance(proposal, dict) else {}
    reasons = proposal.get("reasons") if isinstance(proposal.get("reasons"), list) else []
    return {"evidence": proposal.get("evidence", "audio"), "reasons": reasons,
            "why": reason_lines(reasons)}


def open_findings(catalog: Catalog, top: int | None = None, min_score: float | None = None,
                  kind: str | None = None) -> dict[str, Any]:
    """Open homonym findings (best score first) and open synonym candidates.

    ``top`` shows only the first N of each list; the synonym list shows by default no more
    candidates than the catalog has pages (a list longer than the catalog is not worth reading).
    ``min_score`` and ``kind`` ("variant"/"alias") filter the synonym candidates. The counts of
    everything open are returned beside the lists (``homonyms_open``, ``synonyms_open``).
    """
    with catalog.session() as s:
        rows = s.execute(
            select(AuditFinding, ArtistPage, AuditRun.created_at)
            .join(ArtistPage, ArtistPage.id == AuditFinding.page_id)
            .join(AuditRun, AuditRun.id == AuditFinding.run_id)
            .where(AuditFinding.status == "open")
            .order_by(AuditFinding.score.desc(), AuditFinding.id)).all()
        partitions = {f.id: Partition.from_proposal(f.proposal) for f, _, _ in rows}
        album_ids = {a for p in partitions.values() for a in p.album_ids}
        titles = dict(s.execute(select(Album.id, Album.title).where(Album.id.in_(album_ids))).all()) \
            if album_ids else {}
        homonyms = []
        for f, page, when in rows:
            clusters = [{"cluster": cluster_number(c),
                         "albums": [{"album_id": a, "title": titles.get(a, "(gone)")} for a in albums]}
                        for c, albums in partitions[f.id].clusters().items()]
            homonyms.append({
                "ref": f"h{f.id}", "id": f.id, "run_id": f.run_id, "audited_at": when,
                "page_id": page.id, "page": label(page), "n_clusters": f.n_clusters,
                "score": f.score, "replaces": f"h{f.replaces_id}" if f.replaces_id else None,
                "clusters": clusters, **finding_reasons(f.proposal)})
        pages = live_pages(s)
    cands = synonym_candidates(catalog, status="open", min_score=min_score, kind=kind)
    synonyms = [{
        "ref": c.ref, "id": c.id, "run_id": c.run_id, "kind": c.kind,
        "page_a_id": c.page_a_id, "page_a": c.page_a, "page_b_id": c.page_b_id, "page_b": c.page_b,
        "score": c.score, "audio_score": c.audio_score, "name_score": c.name_score,
        "metadata_score": c.metadata_score,
        "replaces": f"s{c.replaces_id}" if c.replaces_id else None} for c in cands]
    syn_top = top if top is not None else max(pages, 1)
    return {"homonyms": homonyms[:top] if top is not None else homonyms,
            "synonyms": synonyms[:syn_top], "homonyms_open": len(homonyms),
            "synonyms_open": len(synonyms), "pages": pages}


__all__ = ["finding_reasons", "live_pages", "open_findings"]
