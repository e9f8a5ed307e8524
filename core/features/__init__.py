"""Features: what the models read, computed once per track at ingest and kept.

- :mod:`.frontend`: decode → excerpts → batched log-mel, one config stored beside every model;
- :mod:`.store`: the memory-mapped feature store (one per front-end config);
- :mod:`.musicnn`: the pretrained musicnn backbone in torch (its checkpoint reader, network and
  input pipeline).

Names are re-exported lazily: worker processes that import ``features.frontend.decode`` load
neither torch nor the store.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "store": ["FORMAT_VERSION", "FeatureStore", "FeatureStoreError", "feature_store_dir",
              "open_feature_store", "store_bytes"],
})
