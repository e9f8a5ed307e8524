"""Vectors beside the catalog: aggregation across levels, the FAISS index kept in step with the
catalog, nearest neighbours, and embedding files in and out.

- :mod:`.aggregate`: excerpt → track → album → artist page, one rule;
- :mod:`.index`: one index per model and level, consistent with the catalog (repairs itself);
- :mod:`.neighbors`: nearest tracks, albums or pages (``artdb neighbors``);
- :mod:`.export`: ``artdb export`` and reading anyone's embedding files;
- :mod:`.indexer_errors`: ``artdb.indexer``'s exceptions become :mod:`artdb.core.errors` here.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "aggregate": ["excerpts_to_tracks", "l2_normalize", "mean_normalized"],
    "index": ["LEVELS", "SyncReport", "bump_page_changes", "index_path", "level_vectors",
              "open_level_index", "open_track_index", "rebuild_index", "sync_active_index",
              "sync_model_index", "track_groups"],
    "neighbors": ["Neighbor", "describe", "nearest", "page_of", "resolve_query"],
    "export": ["Embeddings", "EmbeddingsFileError", "export_vectors", "match_rows",
               "read_embeddings", "write_embeddings"],
})
