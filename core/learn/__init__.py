"""Learning artist embeddings: networks, losses, samplers and miners, the training loop,
checkpoints, embedders (model → track vectors) and the model registry.

- :mod:`.networks`: the CNN on log-mel excerpts (:class:`ArtistNet`);
- :mod:`.losses`: triplet (ML), classification (CL), joint;
- :mod:`.sampling`: artist batch samplers and triplet miners (pytorch-metric-learning's mould);
- :mod:`.config`: :class:`TrainConfig` (every option and its default), :class:`TrainingData`,
  :class:`TrainResult`;
- :mod:`.loop`: :func:`train`, a short loop over a step function with hooks (index refresh, hard
  mining switch, collapse rollback, model selection);
- :mod:`.validation`: the artist-level split and the held-out artists' homonym-group ARI;
- :mod:`.checkpoint`: weights + every config needed to use them, written atomically;
- :mod:`.embedders`: stored features → track vectors for every model kind;
- :mod:`.registry`: which models exist, which one is active;
- :mod:`.catalog`: ``artdb train`` on the catalog (pages as noisy labels, features from the store);
- :mod:`.adapt`: a backbone model's standardisation refitted on the catalog it serves.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "config": ["DEFAULT_SIDE_INFO", "METHODS", "MININGS", "SIDE_INFO", "VAL_UNITS", "TrainConfig",
               "TrainResult", "TrainingData", "pick_device"],
    "adapt": ["fitted_on", "served_standardisation"],
    "catalog": ["CatalogTrainingSet", "catalog_training_set",
                "recalibrate_audit_threshold", "train_from_catalog"],
    "checkpoint": ["Checkpoint", "file_sha256", "load_checkpoint", "save_checkpoint"],
    "embedders": ["CNN_KINDS", "CheckpointEmbedder", "Embedder", "MfccEmbedder", "StatsEmbedder",
                  "fit_standardizer", "load_embedder", "stats_features"],
    "losses": ["ArtistLoss"],
    "loop": ["CollapseGuard", "TrainingCollapsedError", "train"],
    "networks": ["ArtistNet", "ModelConfig", "build_model", "count_parameters", "embed"],
    "registry": ["activate_model", "active_model", "default_frontend_config", "get_model",
                 "list_models", "register_mfcc_baseline", "register_model",
                 "register_stats_baseline", "resolve_model"],
    "sampling": ["MINING_TYPES", "ArtistBatchSampler", "NeighbourBatchSampler", "SearchIndex",
                 "SideInfoTripletMiner"],
    "validation": ["Validator", "album_centroids", "split_artists", "split_validation"],
})
