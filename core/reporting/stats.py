"""Catalog statistics for ``artdb stats``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from artdb.core.recovery import mark_interrupted_runs
from artdb.db.models import (
    Album,
    ArtistPage,
    Embedding,
    Genre,
    IngestFile,
    IngestRun,
    Label,
    Model,
    Track,
)
from artdb.db.session import Catalog


def catalog_stats(catalog: Catalog, last_runs: int = 5) -> dict[str, Any]:
    mark_interrupted_runs(catalog)  # a killed run is not shown "running" forever
    with catalog.session() as s:
        def count(model) -> int:
            return s.scalar(select(func.count()).select_from(model))

        embedded = s.execute(
            select(Model.name, Model.kind, Model.active, func.count(Embedding.track_id))
            .outerjoin(Embedding, Embedding.model_id == Model.id)
            .group_by(Model.id, Model.name, Model.kind, Model.active)
            .order_by(Model.id)
        ).all()
        runs = s.scalars(select(IngestRun).order_by(IngestRun.id.desc()).limit(last_runs)).all()
        run_ids = [r.id for r in runs]
        errors: dict[int, list[dict[str, str]]] = {r: [] for r in run_ids}
        if run_ids:
            for run_id, path, reason in s.execute(
                select(IngestFile.run_id, IngestFile.path, IngestFile.reason)
                .where(IngestFile.run_id.in_(run_ids), IngestFile.outcome == "error")
                .order_by(IngestFile.id)
            ):
                errors[run_id].append({"path": path, "reason": reason})
        return {
            "database": catalog.url,
            "artist_pages": s.scalar(select(func.count()).select_from(ArtistPage)
                                     .where(ArtistPage.merged_into_id.is_(None))),
            "albums": count(Album),
            "tracks": count(Track),
            "genres": count(Genre),
            "labels": count(Label),
            "hours_of_audio": round((s.scalar(select(func.sum(Track.duration))) or 0.0) / 3600, 2),
            "models": [
                {"name": n, "kind": k, "active": bool(a), "embedded_tracks": c}
                for n, k, a, c in embedded
            ],
            "last_runs": [
                {
                    "id": r.id, "root": r.root, "status": r.status,
                    "started_at": r.started_at.isoformat() if r.started_at else None,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "counts": r.counts, "errors": errors[r.id],
                }
                for r in runs
            ],
        }


# What each per-file outcome of an ingest run (``IngestSummary.counts``) means, in words.
OUTCOME_WORDS = {
    "added": ("track added", "tracks added"),
    "updated": ("track updated (its file changed)", "tracks updated (their files changed)"),
    "moved": ("track re-linked to its moved file", "tracks re-linked to their moved files"),
    "unchanged": ("file unchanged", "files unchanged"),
    "duplicate": ("duplicate recording skipped", "duplicate recordings skipped"),
    "error": ("file could not be used (listed below)", "files could not be used (listed below)"),
    "pruned": ("track pruned (its file is gone)", "tracks pruned (their files are gone)"),
}


def counts_in_words(counts: dict[str, int]) -> str:
    """An ingest run's outcome counts as a phrase: ``"268 tracks added, 1 file unchanged"``."""
    parts = []
    for key in [*OUTCOME_WORDS, *sorted(set(counts) - set(OUTCOME_WORDS))]:
        n = counts.get(key, 0)
        if n:
            one, many = OUTCOME_WORDS.get(key, (key, key))
            parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts) or "nothing to do"
