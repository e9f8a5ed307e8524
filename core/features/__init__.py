"""Features: what the models read, computed once per track at ingest and kept.

- :mod:`.frontend`: decode → excerpts → batched log-mel, one config stored beside every model;
- :mod:`.store`: the memory-mapped feature store (one per front-end or backbone config);
- :mod:`.musicnn`: the pretrained musicnn backbone in torch (its checkpoint reader, network and
  input pipeline);
- :mod:`.backbone`: backbone features, musicnn's patch vectors per track, computed with the
  front-end's decode pool and kept in a feature store of their own.

Names are re-exported lazily: worker processes that import ``features.frontend.decode`` load
neither torch nor the store.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "store": ["FORMAT_VERSION", "FeatureStore", "FeatureStoreError", "feature_store_dir",
              "StoreFeatureArray", "kind_of", "open_backbone_store", "open_feature_store", "store_bytes"],
    "backbone": ["BackboneConfig", "BackboneExtractor", "MusicnnLogMel", "backbone_store_dir",
                 "extract_backbone_features"],
})
