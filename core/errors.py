"""One error hierarchy for artdb.

Library code raises these with a message that names the file/row and the reason; the CLI turns them
into a clean message and a non-zero exit status. Per-file failures during a batch are *recorded*
(see ``artdb.core.ingest``) rather than raised, so one bad file never aborts a run. The layers
below core have their own exceptions (``artdb.indexer.errors``, ``artdb.db.session.DatabaseError``)
and core wraps them into these where it calls them.
"""

from __future__ import annotations

from pathlib import Path


class ArtdbError(Exception):
    """Base class of every error artdb raises on purpose."""


class ConfigError(ArtdbError):
    """Bad configuration or option value."""


class AudioError(ArtdbError):
    """An audio file could not be used. ``path`` and ``reason`` are kept separately for reports."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MetadataError(ArtdbError):
    """Tags or manifest rows are missing or invalid (e.g. no artist)."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ManifestError(ArtdbError):
    """A manifest file or one of its rows is invalid."""


class CatalogError(ArtdbError):
    """The catalog database is missing something a command needs, is inconsistent, or cannot be
    opened or migrated (``artdb.db``'s ``DatabaseError``, wrapped where core or the CLI opens it)."""


class VectorIndexError(ArtdbError):
    """The vector index refused an operation or cannot be used.

    ``artdb.indexer`` imports nothing from core and raises its own exceptions;
    :func:`artdb.core.vectors.indexer_errors.indexer_errors` turns them into this family where core
    calls the indexer, so code above ``core.vectors`` catches one hierarchy.
    """


class IndexCorruptError(VectorIndexError):
    """An index file or its sidecar is missing, truncated, unreadable or disagrees with itself."""


class IndexMismatchError(VectorIndexError):
    """The vector index on disk does not match the catalog (model, dimension or counts)."""


class ModelMismatchError(ArtdbError):
    """A model checkpoint does not match the configuration it is used with (e.g. front-end)."""


class MissingExtraError(ArtdbError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"the optional dependency '{module}' is not installed: pip install 'artdb[{extra}]'"
        )
