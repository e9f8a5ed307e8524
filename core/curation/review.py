"""What a curator reviews (``artdb review``): the open homonym findings and synonym candidates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from artdb.core.analysis.findings import Partition
from artdb.core.curation.common import label
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, SynonymCandidate
from artdb.db.session import Catalog


def open_findings(catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """Open homonym findings (best score first) and open synonym candidates (if any)."""
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
            clusters: list[list[dict]] = [[] for _ in range(f.n_clusters)]
            for a, c in sorted(partitions[f.id].cluster_of.items()):
                clusters[c].append({"album_id": a, "title": titles.get(a, "(gone)")})
            homonyms.append({
                "ref": f"h{f.id}", "id": f.id, "run_id": f.run_id, "audited_at": when,
                "page_id": page.id, "page": label(page), "n_clusters": f.n_clusters,
                "score": f.score, "clusters": clusters})
        synonyms = []
        cands = s.scalars(select(SynonymCandidate).where(SynonymCandidate.status == "open")
                          .order_by(SynonymCandidate.score.desc(), SynonymCandidate.id)).all()
        if cands:
            ids = {c.page_a_id for c in cands} | {c.page_b_id for c in cands}
            pages = {p.id: label(p) for p in s.scalars(select(ArtistPage).where(ArtistPage.id.in_(ids)))}
            for c in cands:
                synonyms.append({
                    "ref": f"s{c.id}", "id": c.id, "run_id": c.run_id,
                    "page_a_id": c.page_a_id, "page_a": pages.get(c.page_a_id),
                    "page_b_id": c.page_b_id, "page_b": pages.get(c.page_b_id),
                    "score": c.score, "audio_score": c.audio_score, "name_score": c.name_score,
                    "metadata_score": c.metadata_score})
    return {"homonyms": homonyms, "synonyms": synonyms}


__all__ = ["open_findings"]
