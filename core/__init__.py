"""artdb.core: audio front-end, models, training, clustering, audit, evaluation and the ingest pipeline.

`core` owns both the catalog (``artdb.db``) and the vector index (``artdb.indexer``) and is the only
layer that checks they agree.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("artdb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
