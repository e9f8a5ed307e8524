"""``artdb index`` as one library call: the catalog, its features and the active model's index.

``index_catalog`` = ingest (``artdb.core.ingest``) + the feature stage (front-end + feature
store) + bringing the active model's vector index in line with the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from artdb.core.config import Paths
from artdb.core.errors import AudioError
from artdb.core.features.frontend.pipeline import FeatureExtractor
from artdb.core.features.store import open_feature_store
from artdb.core.ingest.pipeline import IngestOptions, IngestSummary, ingest
from artdb.core.learn.registry import default_frontend_config
from artdb.core.progress import Progress
from artdb.core.vectors.index import sync_active_index
from artdb.db.session import Catalog


class StoreFeatureStage:
    """Ingest's ``FeatureStage``: the front-end's worker pool writing into the feature store."""

    def __init__(self, store, extractor, progress: Progress | None = None):
        self.store = store  # the FeatureStore
        self.extractor = extractor
        self.progress = progress
        self.extracted = 0

    def missing(self, track_ids: Sequence[int]) -> set[int]:
        return {int(t) for t in track_ids if int(t) not in self.store}

    def extract(self, paths: Sequence[str]) -> list[np.ndarray | str]:
        out: list[np.ndarray | str] = [""] * len(paths)
        for index, _path, result in self.extractor.extract(list(paths)):
            out[index] = result.reason if isinstance(result, AudioError) else result
        self.extracted += len(paths)
        return out

    def save(self, track_ids: Sequence[int], features: Sequence[np.ndarray]) -> None:
        self.store.put_many(list(track_ids), np.stack(features))

    def remove(self, track_ids: Sequence[int]) -> None:
        self.store.delete(list(track_ids))


def index_catalog(catalog: Catalog, paths: Paths, root: str | Path,
                  options: IngestOptions | None = None, with_features: bool = True,
                  device: str = "cpu", progress: Progress | None = None) -> IngestSummary:
    """Ingest ``root``; with features, extract log-mels for new/changed tracks and embed them with
    the active model (if any) into its index."""
    options = options or IngestOptions()
    if not with_features:
        return ingest(catalog, root, options, features=None, progress=progress)
    config = default_frontend_config(catalog)
    with open_feature_store(paths, config) as store, \
            FeatureExtractor(config, workers=options.workers, device=device) as extractor:
        stage = StoreFeatureStage(store, extractor)
        summary = ingest(catalog, root, options, features=stage, progress=progress)
    sync_active_index(catalog, paths, device=device, progress=progress)
    return summary
