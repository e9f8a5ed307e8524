"""Catalog ingest (``artdb index``): scan → analyse (pool) → plan → features → write.

- :mod:`.pipeline`: :func:`ingest` and its options, summary and ``FeatureStage`` protocol;
- :mod:`.service`: :func:`index_catalog`, ingest plus the feature store and the active model's
  index;
- :mod:`.scan`, :mod:`.tags`, :mod:`.analyze`, :mod:`.catalog_writer`: the stages.

Names are re-exported lazily so that worker processes running ``analyze`` do not load SQLAlchemy
and the rest.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "pipeline": ["FeatureStage", "IngestOptions", "IngestSummary", "ingest"],
    "service": ["StoreFeatureStage", "index_catalog"],
})
