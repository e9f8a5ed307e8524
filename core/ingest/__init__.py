"""Catalog ingest (``artdb index``): see ``pipeline``.

Imported lazily so that worker processes running ``analyze`` do not load SQLAlchemy and the rest.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FeatureStage", "IngestOptions", "IngestSummary", "ingest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from artdb.core.ingest import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
