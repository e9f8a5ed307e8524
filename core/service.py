"""Commands' library entry points that compose several stages (what the CLI calls).

``index_catalog`` = ingest (``artdb.core.ingest``) + the feature stage (front-end + feature
store) + bringing the active model's vector index in line with the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from artdb.core.config import Paths
from artdb.core.errors import AudioError
from artdb.core.ingest import IngestOptions, IngestSummary, ingest
from artdb.db.session import Catalog

ProgressFn = Callable[[str, int, int], None]


def default_frontend_config(catalog: Catalog):
    """The front-end config of the active model, else the default one."""
    from artdb.core.frontend import FrontendConfig
    from artdb.core.registry import active_model

    model = active_model(catalog)
    if model is not None and model.config.get("frontend"):
        return FrontendConfig.from_dict(model.config["frontend"])
    return FrontendConfig()


def feature_store_dir(paths: Paths, config) -> Path:
    """One store per front-end config: a model with other parameters gets its own."""
    return paths.features / config.fingerprint()[:16]


def open_feature_store(paths: Paths, config, mode: str = "a"):
    from artdb.core.featurestore import FeatureStore

    return FeatureStore.open(feature_store_dir(paths, config), config, mode=mode)


class StoreFeatureStage:
    """Ingest's ``FeatureStage``: the front-end's worker pool writing into the feature store."""

    def __init__(self, store, extractor, progress: ProgressFn | None = None):
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
                  device: str = "cpu", progress: ProgressFn | None = None) -> IngestSummary:
    """Ingest ``root``; with features, extract log-mels for new/changed tracks and embed them with
    the active model (if any) into its index."""
    options = options or IngestOptions()
    if not with_features:
        return ingest(catalog, root, options, features=None, progress=progress)
    from artdb.core.frontend import FeatureExtractor

    config = default_frontend_config(catalog)
    with open_feature_store(paths, config) as store, \
            FeatureExtractor(config, workers=options.workers, device=device) as extractor:
        stage = StoreFeatureStage(store, extractor)
        summary = ingest(catalog, root, options, features=stage, progress=progress)
    from artdb.core.vectors import sync_active_index

    sync_active_index(catalog, paths, device=device, progress=progress)
    return summary
